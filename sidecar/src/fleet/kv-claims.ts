import { connect, type KV, type NatsConnection } from 'nats';
import { serverCredentials } from '../bus/nats-connection.js';
import type { Logger } from '../log.js';

// Fleet-wide "first one wins" claims on a NATS JetStream key-value bucket, shared by every
// process of every sidecar on the same NATS. A claim is one atomic `kv.create` (it fails when the
// key exists), and entries expire with the bucket's TTL. Used for handoff nonces (kong/); kept
// generic so other fleet-wide state (e.g. per-consumer quotas) can reuse the connection logic.
//
// The interface is small on purpose:
//   claim(key)  -> 'claimed'   the key was free and is now ours until the TTL ends
//               -> 'taken'     someone (any process) claimed it before
//               throws ClaimsUnavailable when the store cannot answer (not connected, bucket
//               missing, no answer within timeoutMs): the caller decides (Kong mode fails closed)
//   close()

export type ClaimResult = 'claimed' | 'taken';

export interface FleetClaims {
  claim(key: string): Promise<ClaimResult>;
  close(): Promise<void>;
}

/** The store could not answer; `message` is for logs (no credentials). */
export class ClaimsUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClaimsUnavailable';
  }
}

export interface KvClaimsOptions {
  /** NATS server URLs (user info is used as credentials, as for the bus). */
  servers: readonly string[];
  /** The KV bucket; created with `ttlMs` when missing. */
  bucket: string;
  /** How long a claim lasts (the bucket's max age). */
  ttlMs: number;
  /** Limit for one claim round trip (default 1,000 ms). */
  timeoutMs?: number;
  reconnectWaitMs?: number;
  name: string;
  log: Logger;
}

/** FleetClaims on a JetStream KV bucket. Connects in the background; claims fail fast until connected. */
export class KvClaims implements FleetClaims {
  private nc: NatsConnection | undefined;
  private kv: Promise<KV> | undefined;
  private isConnected = false;
  private isClosed = false;
  private readonly connecting: Promise<void>;
  private readonly timeoutMs: number;

  constructor(private readonly options: KvClaimsOptions) {
    this.timeoutMs = options.timeoutMs ?? 1000;
    this.connecting = this.start();
  }

  private async start(): Promise<void> {
    const { servers, credentials } = serverCredentials(this.options.servers);
    try {
      const nc = await connect({
        servers, ...credentials, name: this.options.name, waitOnFirstConnect: true,
        maxReconnectAttempts: -1, reconnectTimeWait: this.options.reconnectWaitMs ?? 1000, timeout: this.timeoutMs * 2,
      });
      if (this.isClosed) {
        await nc.close();
        return;
      }
      this.nc = nc;
      this.isConnected = true;
      // Open (or create) the bucket now, so the first claim does not pay for it.
      this.bucket(nc).catch((err: unknown) => {
        this.kv = undefined;
        this.options.log.warn({ err: String(err) }, 'fleet claims: the KV bucket could not be opened yet');
      });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect') this.isConnected = false;
          else if (s.type === 'reconnect') this.isConnected = true;
        }
      })();
      void nc.closed().then(() => { this.isConnected = false; });
    } catch (err) {
      if (!this.isClosed) this.options.log.error({ err: String(err) }, 'fleet claims: NATS connection failed');
    }
  }

  private bucket(nc: NatsConnection): Promise<KV> {
    this.kv ??= nc.jetstream({ timeout: this.timeoutMs }).views.kv(this.options.bucket, { ttl: this.options.ttlMs, history: 1 });
    return this.kv;
  }

  async claim(key: string): Promise<ClaimResult> {
    if (this.nc === undefined && !this.isClosed) {
      // Just started: wait for the first connection, at most one timeout.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.connecting, new Promise((resolve) => { timer = setTimeout(resolve, this.timeoutMs); })]);
      clearTimeout(timer);
    }
    const nc = this.nc;
    if (nc === undefined || !this.isConnected) throw new ClaimsUnavailable('not connected to NATS');
    let timer: NodeJS.Timeout | undefined;
    const attempt = (async (): Promise<ClaimResult> => {
      const kv = await this.bucket(nc).catch((err: unknown) => {
        this.kv = undefined; // opened again on the next claim
        throw err;
      });
      try {
        await kv.create(key, EMPTY);
        return 'claimed';
      } catch (err) {
        if (isKeyExists(err)) return 'taken';
        if (isBucketMissing(err)) this.kv = undefined;
        throw err;
      }
    })();
    try {
      return await Promise.race([
        attempt,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
    } catch (err) {
      attempt.catch(() => undefined);
      throw err instanceof ClaimsUnavailable ? err : new ClaimsUnavailable(err instanceof Error ? err.message : String(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.isClosed = true;
    const nc = this.nc;
    this.nc = undefined;
    // A connect still under way closes its connection when it completes (start()).
    if (nc !== undefined) await nc.close().catch(() => undefined);
  }
}

const EMPTY = new Uint8Array(0);

function isKeyExists(err: unknown): boolean {
  const e = err as { message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(String(e?.message));
}

function isBucketMissing(err: unknown): boolean {
  const e = err as { message?: string; code?: string };
  return /stream not found|no responders|503/i.test(String(e?.message)) || e?.code === '503';
}
