import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KV } from 'nats';
import type { Logger } from '../log.js';
import { KvBucket, StoreUnavailable, isWrongRevision, type KvBucketOptions } from './kv-bucket.js';
import { applyBatch, decodeLeaseTable, encodeLeaseTable } from './lease-table.js';

// Fleet-wide connection counts with per-process leases, on a JetStream KV bucket
// (fleet/kv-bucket.ts). One key per quota; its value says how many connections each process
// holds and until when (fleet/lease-table.ts). A process changes the key only by compare-and-set
// (kv.update with the revision it read), so two processes can never both take the last slot:
// the count never goes over the limit, however many open at once on however many sidecars.
//
// Per key, one operation is in flight per process at a time; opens and closes that arrive
// meanwhile are decided together by the next one (one read and one write for a burst), so
// contention on a key is between processes, not connections. Each process rewrites its own
// count and lease on every write, and renews the lease of every key it holds connections on
// every leaseMs / 3. A process that dies stops renewing: its connections stop counting when its
// lease runs out (at most leaseMs later), and the next writer drops its entry.
//
// Leases are judged by the reader's clock against the writer's: clocks must agree to within
// leaseMs / 3 or so, or a live process's connections stop counting early (the fleet then
// admits up to that process's count over the limit until its next renewal).

export type AcquireResult = 'granted' | 'refused';

export interface FleetLeases {
  /** One slot of `key`'s limit. Rejects with StoreUnavailable when the store cannot decide. */
  acquire(key: string, limit: number): Promise<AcquireResult>;
  /** Gives back a granted slot (written in the background, retried until it is). */
  release(key: string): void;
  /** Writes what is pending (bounded by the store timeout), then closes the connection. */
  close(): Promise<void>;
}

export interface ConnectionLeasesOptions extends Omit<KvBucketOptions, 'ttlMs'> {
  /** How long a process's count stays valid without renewal. */
  leaseMs: number;
  /** Epoch ms (tests replace it). */
  now?: () => number;
}

/**
 * After a lost compare-and-set, wait a random 0 to 2^attempt ms (at most 32) before reading
 * again, so processes contending for one key do not keep colliding in step.
 */
function jitter(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(32, 2 ** attempt)));
}

interface Waiter {
  limit: number;
  resolve: (result: AcquireResult) => void;
  reject: (err: unknown) => void;
}

/** What this process knows of one key. */
interface KeyState {
  /** Slots this process holds (granted, not released). */
  held: number;
  /** Of `held`, how many the store has not been told are given back. */
  released: number;
  waiting: Waiter[];
  /** The lease is due for renewal (or a write failed and must be made again). */
  isDue: boolean;
  isBusy: boolean;
}

export class ConnectionLeases implements FleetLeases {
  /** This process in every table it writes: host, pid and a random part (pids are reused). */
  readonly holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly store: KvBucket;
  private readonly keys = new Map<string, KeyState>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly renewTimer: NodeJS.Timeout;
  private readonly now: () => number;
  private isClosed = false;

  constructor(private readonly options: ConnectionLeasesOptions) {
    // A key nobody has written for a lease time holds no live count: the bucket may drop it.
    this.store = new KvBucket({ ...options, ttlMs: options.leaseMs });
    this.now = options.now ?? Date.now;
    this.renewTimer = setInterval(this.renewAll, Math.max(100, Math.floor(options.leaseMs / 3)));
    this.renewTimer.unref();
  }

  acquire(key: string, limit: number): Promise<AcquireResult> {
    if (this.isClosed) return Promise.reject(new StoreUnavailable('connection leases closed'));
    const state = this.state(key);
    return new Promise((resolve, reject) => {
      state.waiting.push({ limit, resolve, reject });
      this.pump(key, state);
    });
  }

  release(key: string): void {
    const state = this.keys.get(key);
    if (state === undefined || state.held - state.released <= 0) return;
    state.released++;
    this.pump(key, state);
  }

  async close(): Promise<void> {
    this.isClosed = true;
    clearInterval(this.renewTimer);
    await this.settled();
    await this.store.close();
  }

  /** Resolves once no round is in flight (what was pending has been written, or has failed). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Slots held here over every key (for tests and metrics). */
  heldCount(): number {
    let n = 0;
    for (const s of this.keys.values()) n += s.held - s.released;
    return n;
  }

  private state(key: string): KeyState {
    let state = this.keys.get(key);
    if (state === undefined) {
      state = { held: 0, released: 0, waiting: [], isDue: false, isBusy: false };
      this.keys.set(key, state);
    }
    return state;
  }

  private readonly renewAll = (): void => {
    for (const [key, state] of this.keys) {
      if (state.held > 0) {
        state.isDue = true;
        this.pump(key, state);
      }
    }
  };

  private pump(key: string, state: KeyState): void {
    if (state.isBusy) return;
    state.isBusy = true;
    const run = this.drain(key, state).then((isDone) => {
      this.inFlight.delete(run);
      state.isBusy = false;
      // What arrived between the drain's last check and now (a caller resumed by the last round
      // runs before this) gets its round; after a failed round, releases wait for the renewal.
      if (state.waiting.length > 0 || (isDone && state.released > 0)) this.pump(key, state);
      else if (state.held === 0) this.keys.delete(key);
    });
    this.inFlight.add(run);
  }

  /** Writes until nothing is pending for `key`; a failed write leaves releases for the next renewal. */
  private async drain(key: string, state: KeyState): Promise<boolean> {
    while (state.waiting.length > 0 || state.released > 0 || state.isDue) {
      const batch = state.waiting.splice(0);
      const released = state.released;
      state.isDue = false;
      try {
        const grants = await this.store.run((kv, run) => this.write(kv, run, key, state.held - released, batch.map((w) => w.limit)));
        state.held -= released;
        state.released -= released;
        let granted = 0;
        batch.forEach((w, i) => {
          if (grants[i] === true) granted++;
          w.resolve(grants[i] === true ? 'granted' : 'refused');
        });
        state.held += granted;
      } catch (err) {
        for (const w of batch) w.reject(err);
        // Our count is rewritten whole by the next successful write; the renewal timer retries.
        return false;
      }
    }
    return true;
  }

  /**
   * One compare-and-set round: read the table, decide the batch, write it back (retried on a
   * conflict). Once the round has timed out it writes nothing more: the next round, which may
   * already run, starts from what the caller knows, and a late write from this one with its
   * older count would undo it.
   */
  private async write(kv: KV, run: { isTimedOut: boolean }, key: string, mine: number, limits: number[]): Promise<boolean[]> {
    // Bounded by the store timeout (KvBucket.run), which ends the round as unavailable.
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await jitter(attempt);
      if (run.isTimedOut) throw new StoreUnavailable('timed out');
      const entry = await kv.get(key);
      if (run.isTimedOut) throw new StoreUnavailable('timed out');
      const isLive = entry !== null && entry.operation === 'PUT';
      const { table, dropped } = decodeLeaseTable(isLive ? entry.value : undefined);
      if (dropped > 0) this.options.log.warn({ key, dropped }, 'connection leases: unreadable entries dropped');
      const now = this.now();
      const next = applyBatch(table, this.holder, mine, limits, now, now + this.options.leaseMs);
      if (next.table.size === 0 && !isLive) return next.grants; // nothing to write, nothing there
      try {
        if (entry === null) await kv.create(key, encodeLeaseTable(next.table));
        else await kv.update(key, encodeLeaseTable(next.table), entry.revision);
        return next.grants;
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
        // Another process wrote first: read again.
      }
    }
  }
}
