import { KvClaims, type FleetClaims } from '../fleet/kv-claims.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { CLOCK_SKEW_SEC, type NonceStore } from './handoff-verifier.js';

// The fleet-wide handoff nonce store: one key per accepted nonce in the JetStream KV bucket
// `kong-grip-nonces` (docs/kong.md, "Replays"), kept for maxAgeSec + CLOCK_SKEW_SEC, the whole
// time its token could still be accepted. An unavailable store makes Kong mode refuse requests
// (503, fail closed); the outage is counted per refused request and logged once.

export const NONCE_BUCKET = 'kong-grip-nonces';

/** A claim round trip longer than this counts as the store being unavailable. */
export const NONCE_CLAIM_TIMEOUT_MS = 1000;

export class FleetNonceStore implements NonceStore {
  private isOutage = false;

  constructor(private readonly claims: FleetClaims, private readonly metrics: Metrics, private readonly log: Logger) {}

  static connect(options: { servers: readonly string[]; maxAgeSec: number; reconnectWaitMs: number; metrics: Metrics; log: Logger }): FleetNonceStore {
    const claims = new KvClaims({
      servers: options.servers, bucket: NONCE_BUCKET, ttlMs: (options.maxAgeSec + CLOCK_SKEW_SEC) * 1000,
      timeoutMs: NONCE_CLAIM_TIMEOUT_MS, reconnectWaitMs: options.reconnectWaitMs,
      name: `kong-grip nonces pid ${process.pid}`, log: options.log,
    });
    return new FleetNonceStore(claims, options.metrics, options.log);
  }

  async claimNonce(nonce: string): Promise<boolean> {
    try {
      const result = await this.claims.claim(nonce);
      if (this.isOutage) {
        this.isOutage = false;
        this.metrics.handoffStoreOutage.set(0);
        this.log.info('handoff nonce store available again');
      }
      return result === 'claimed';
    } catch (err) {
      this.metrics.handoffStoreUnavailable.inc();
      if (!this.isOutage) {
        this.isOutage = true;
        this.metrics.handoffStoreOutage.set(1);
        this.log.error({ code: 'KG_ERR_HANDOFF_STORE', err: err instanceof Error ? err.message : String(err) },
          'handoff nonce store unavailable: refusing handed-off requests until it answers again');
      }
      throw err;
    }
  }

  close(): Promise<void> {
    return this.claims.close();
  }
}
