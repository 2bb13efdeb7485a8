import { KgError } from '../errors.js';
import { ConnectionLeases, type FleetLeases } from '../fleet/connection-leases.js';
import type { HandoffLimits } from '../kong/handoff-format.js';
import type { HandoffIdentity } from '../kong/handoff-verifier.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

// max_connections_per_consumer (docs/kong.md, "Connection quota"): how many connections one
// consumer may hold at once through one grip plugin entity, counted across every worker of
// every sidecar by per-process leases in the JetStream KV bucket `kong-grip-leases`
// (fleet/connection-leases.ts). Checked after the handoff is verified, before any origin request.
//
// Anonymous requests (no consumer in the handoff) are not counted. When the lease store does not
// answer, the connection is admitted uncounted (the quota protects capacity, not identity):
// counted in kong_grip_quota_store_unavailable_total and logged once per outage.

export const LEASE_BUCKET = 'kong-grip-leases';
/** A lease round trip longer than this counts as the store being unavailable. */
export const LEASE_TIMEOUT_MS = 1000;
/** What a refused client is told to wait: slots free only when other connections of its consumer close. */
export const QUOTA_RETRY_AFTER_SEC = 5;

/** A counted connection's place in its consumer's quota; release() once it ends (later calls do nothing). */
export interface QuotaSlot {
  release(): void;
}

/** The lease key of a quota: the plugin entity and the consumer, each base64url (KV keys allow few characters). */
export function quotaKey(pluginId: string, consumerId: string): string {
  return `c.${Buffer.from(pluginId, 'utf8').toString('base64url')}.${Buffer.from(consumerId, 'utf8').toString('base64url')}`;
}

class LeaseSlot implements QuotaSlot {
  private isReleased = false;
  constructor(private readonly leases: FleetLeases, private readonly key: string) {}
  release(): void {
    if (this.isReleased) return;
    this.isReleased = true;
    this.leases.release(this.key);
  }
}

export class ConnectionQuota {
  private isOutage = false;

  constructor(private readonly leases: FleetLeases, private readonly metrics: Metrics, private readonly log: Logger) {}

  static connect(options: { servers: readonly string[]; leaseSec: number; reconnectWaitMs: number; metrics: Metrics; log: Logger }): ConnectionQuota {
    const leases = new ConnectionLeases({
      servers: options.servers, bucket: LEASE_BUCKET, leaseMs: options.leaseSec * 1000, timeoutMs: LEASE_TIMEOUT_MS,
      reconnectWaitMs: options.reconnectWaitMs, name: `kong-grip leases pid ${process.pid}`, log: options.log,
    });
    return new ConnectionQuota(leases, options.metrics, options.log);
  }

  /**
   * A slot for a connection of `identity` under `limits`, or undefined when it is not counted (no limit, no
   * consumer, or the store did not answer). Rejects with KG_ERR_QUOTA_EXCEEDED (429) when the
   * consumer is at its limit.
   */
  async admit(identity: HandoffIdentity, limits: HandoffLimits): Promise<QuotaSlot | undefined> {
    const limit = limits.maxConnectionsPerConsumer;
    if (limit === 0 || identity.consumer === null) return undefined;
    const key = quotaKey(identity.pluginId, identity.consumer.id);
    let result: 'granted' | 'refused';
    try {
      result = await this.leases.acquire(key, limit);
    } catch (err) {
      this.metrics.quotaStoreUnavailable.inc();
      if (!this.isOutage) {
        this.isOutage = true;
        this.metrics.quotaStoreOutage.set(1);
        this.log.error({ err: err instanceof Error ? err.message : String(err) },
          'connection lease store unavailable: connection quotas are not enforced until it answers again');
      }
      return undefined;
    }
    if (this.isOutage) {
      this.isOutage = false;
      this.metrics.quotaStoreOutage.set(0);
      this.log.info('connection lease store available again: connection quotas enforced');
    }
    if (result === 'refused') {
      this.metrics.quotaRefused.inc();
      throw new KgError('KG_ERR_QUOTA_EXCEEDED',
        `Too Many Requests: this consumer already has ${limit} open connection${limit === 1 ? '' : 's'} (max_connections_per_consumer); close one and retry.`);
    }
    return new LeaseSlot(this.leases, key);
  }

  close(): Promise<void> {
    return this.leases.close();
  }
}
