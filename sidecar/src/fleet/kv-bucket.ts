import { connect, type KV, type NatsConnection } from 'nats';
import { serverCredentials } from '../bus/nats-connection.js';
import type { Logger } from '../log.js';

// One JetStream key-value bucket on its own NATS connection, for fleet-wide state shared by
// every process of every sidecar (handoff nonces, connection leases). It owns the connection
// handling all such stores share: connect in the background, open (or create) the bucket once,
// and run each operation within a time limit. An operation that cannot be answered (not
// connected, bucket missing, no answer in time) rejects with StoreUnavailable; the caller
// decides what that means (nonces fail closed, connection quotas fail open).

/** The store could not answer; `message` is for logs (no credentials). */
export class StoreUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailable';
  }
}

export interface KvBucketOptions {
  /** NATS server URLs (user info is used as credentials, as for the bus). */
  servers: readonly string[];
  /** The KV bucket; created with `ttlMs` when missing. */
  bucket: string;
  /** How long an entry lasts without being written again (the bucket's max age). */
  ttlMs: number;
  /** Limit for one operation (default 1,000 ms). */
  timeoutMs?: number;
  reconnectWaitMs?: number;
  name: string;
  log: Logger;
}

export class KvBucket {
  private nc: NatsConnection | undefined;
  private kv: Promise<KV> | undefined;
  private isConnected = false;
  private isClosed = false;
  private readonly connecting: Promise<void>;
  readonly timeoutMs: number;

  constructor(private readonly options: KvBucketOptions) {
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
      // Open (or create) the bucket now, so the first operation does not pay for it.
      this.bucket(nc).catch((err: unknown) => {
        this.kv = undefined;
        this.options.log.warn({ err: String(err), bucket: this.options.bucket }, 'fleet store: the KV bucket could not be opened yet');
      });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect') this.isConnected = false;
          else if (s.type === 'reconnect') this.isConnected = true;
        }
      })();
      void nc.closed().then(() => { this.isConnected = false; });
    } catch (err) {
      if (!this.isClosed) this.options.log.error({ err: String(err), bucket: this.options.bucket }, 'fleet store: NATS connection failed');
    }
  }

  private bucket(nc: NatsConnection): Promise<KV> {
    // Processes starting together race to create the bucket; a loser's create can fail while the
    // winner's is in progress ("subjects overlap"). One more try binds to the bucket made.
    const open = (): Promise<KV> => nc.jetstream({ timeout: this.timeoutMs }).views.kv(this.options.bucket, { ttl: this.options.ttlMs, history: 1 });
    this.kv ??= open().catch(open);
    return this.kv;
  }

  /**
   * Runs `op` on the bucket within timeoutMs. Errors `op` expects (a refused create or update)
   * are its own to handle; anything else reaching here, and a timeout, reject with StoreUnavailable.
   * After a timeout `op` may still be running: `run.isTimedOut` becomes true, and an `op` of
   * several steps checks it before each write, so it writes nothing its caller has given up on.
   */
  async run<T>(op: (kv: KV, run: { isTimedOut: boolean }) => Promise<T>): Promise<T> {
    const state = { isTimedOut: false };
    if (this.nc === undefined && !this.isClosed) {
      // Just started: wait for the first connection, at most one timeout.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.connecting, new Promise((resolve) => { timer = setTimeout(resolve, this.timeoutMs); })]);
      clearTimeout(timer);
    }
    const nc = this.nc;
    if (nc === undefined || !this.isConnected) throw new StoreUnavailable('not connected to NATS');
    let timer: NodeJS.Timeout | undefined;
    const attempt = (async (): Promise<T> => {
      const kv = await this.bucket(nc).catch((err: unknown) => {
        this.kv = undefined; // opened again on the next operation
        throw err;
      });
      try {
        return await op(kv, state);
      } catch (err) {
        if (isBucketMissing(err)) this.kv = undefined;
        throw err;
      }
    })();
    try {
      return await Promise.race([
        attempt,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            state.isTimedOut = true;
            reject(new Error(`no answer within ${this.timeoutMs} ms`));
          }, this.timeoutMs);
        }),
      ]);
    } catch (err) {
      attempt.catch(() => undefined);
      throw err instanceof StoreUnavailable ? err : new StoreUnavailable(err instanceof Error ? err.message : String(err), { cause: err });
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

/** A create or update refused because the key's revision is not the one expected. */
export function isWrongRevision(err: unknown): boolean {
  const e = err as { message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(String(e?.message));
}

function isBucketMissing(err: unknown): boolean {
  const e = err as { message?: string; code?: string };
  return /stream not found|no responders|503/i.test(String(e?.message)) || e?.code === '503';
}
