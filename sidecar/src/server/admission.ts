import type { Clock, Timer } from '../holds/clock.js';
import { CONNECTION_LIMIT, SHUTTING_DOWN, type Refusal } from './refusals.js';

// The one gate every client connection passes, plain request or WebSocket upgrade: refused
// while draining or over limits.maxConnections, else counted until released. Idle connections
// (no complete request yet) are bounded apart, by IdleConnections below.

export type ConnectionKind = 'http' | 'ws';

export class Admission {
  private readonly active: Record<ConnectionKind, number> = { http: 0, ws: 0 };
  /** Both kinds together: what maxConnections bounds. */
  private total = 0;
  private isDraining = false;

  constructor(private readonly maxConnections: number) {}

  /** Undefined when admitted (then counted until release(kind)); otherwise the answer to give. */
  admit(kind: ConnectionKind): Refusal | undefined {
    if (this.isDraining) return SHUTTING_DOWN;
    // One count for plain requests and WebSocket sessions.
    if (this.total >= this.maxConnections) return CONNECTION_LIMIT;
    this.active[kind]++;
    this.total++;
    return undefined;
  }

  release(kind: ConnectionKind): void {
    this.active[kind]--;
    this.total--;
  }

  /** Admitted and not yet released: of one kind, or of both when no kind is given. */
  count(kind?: ConnectionKind): number {
    return kind === undefined ? this.total : this.active[kind];
  }

  /** From now on every new connection is refused with SHUTTING_DOWN. */
  startDrain(): void {
    this.isDraining = true;
  }

  get draining(): boolean {
    return this.isDraining;
  }
}

export interface IdleConnectionsOptions<C> {
  /** limits.maxIdleConnections. */
  max: number;
  /** limits.headerTimeoutMs: how long a connection may stay idle. */
  timeoutMs: number;
  clock: Clock;
  /** Closes a connection that was idle when a newer one made the count pass `max`. */
  onEvicted: (connection: C) => void;
  /** Closes a connection that has been idle for `timeoutMs`. */
  onTimedOut: (connection: C) => void;
}

/**
 * Client connections with no complete request: new, or kept alive between requests (a request
 * head arriving byte by byte included). Each may stay idle for `timeoutMs` from when it became
 * idle, however many bytes it trickles in meanwhile, and at most `max` are idle at once.
 *
 * Over `max`, the OLDEST idle connection is closed (as nginx reuses its oldest keep-alive
 * connections when it runs out). Closing the newest instead would let whoever opens `max` idle
 * connections first turn every later client away until they time out; closing the oldest, a
 * flood of new connections only shortens the idle time of the others, and a legitimate client
 * loses its connection only if `max` newer ones arrive while it sends its head. The oldest is
 * also the one nearest its deadline, and HTTP clients expect a kept-alive connection to be
 * closed while idle (they retry on a new one). A connection with a request in progress is
 * never here, so never closed by this.
 */
export class IdleConnections<C> {
  /** Each idle connection with when it became idle; a Map keeps insertion order, so oldest first. */
  private readonly since = new Map<C, number>();
  /** One timer, for the oldest idle connection's deadline (re-armed for the next one when it runs). */
  private timer: Timer | undefined;

  constructor(private readonly options: IdleConnectionsOptions<C>) {}

  /** `connection` has no complete request from now on (a new one, or its last response is done). */
  add(connection: C): void {
    this.since.delete(connection);
    this.since.set(connection, this.options.clock.now());
    if (this.since.size > this.options.max) {
      const oldest = this.since.keys().next().value as C;
      this.since.delete(oldest);
      this.options.onEvicted(oldest);
    }
    if (this.timer === undefined && this.since.size > 0) this.arm();
  }

  /** `connection` has a complete request in progress, or has closed. */
  remove(connection: C): void {
    this.since.delete(connection);
  }

  has(connection: C): boolean {
    return this.since.has(connection);
  }

  get size(): number {
    return this.since.size;
  }

  /** Stops the timer (the connections themselves are the server's to close). */
  close(): void {
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    const oldest = this.since.values().next().value as number;
    const delay = Math.max(1, oldest + this.options.timeoutMs - this.options.clock.now());
    this.timer = this.options.clock.setTimeout(this.expire, delay);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const deadline = this.options.clock.now() - this.options.timeoutMs;
    for (const [connection, since] of this.since) {
      if (since > deadline) break;
      this.since.delete(connection);
      this.options.onTimedOut(connection);
    }
    if (this.since.size > 0) this.arm();
  };
}
