import type { WsSettings } from '../config.js';
import { isKgError } from '../errors.js';
import { applyAcceptance, CONTENT_BYTES_REPLAYED, parseContentBytesAccepted } from '../grip/ws-acceptance.js';
import { decodeWsEvents, encodeWsEvents, type DecodedWsEvent, type WsEvent } from '../grip/ws-events.js';
import {
  applySetMeta, firstHeader, isWsEventsContentType, parseKeepAliveInterval, replayedHandshakeHeaders, wsRequestHeaders, type WsMeta,
} from '../grip/ws-headers.js';
import type { HeaderList } from '../grip/types.js';
import type { HoldLog } from './lazy-log.js';
import type { Metrics } from '../metrics.js';
import type { PostWsEvents, WsOriginOutcome } from '../origin/ws-origin.js';
import type { Clock, Timer } from './clock.js';
import type { KeepAliveMember, KeepAliveWheel } from './keep-alive-wheel.js';

// The origin side of one WebSocket session (docs/websocket.md): the client's events go to the origin as
// short POSTs of websocket-events, one request in flight at a time so order holds, and what
// arrives meanwhile waits for the next batch. The link knows nothing of the client socket: it
// tells its owner (the session) what the origin said, and the owner tells it what the client did.
//
//   opening ──OPEN accepted──▶ open ──mute() / detach()──▶ muted
//      │                        │                            │
//      └────────────────────────┴──── close(farewell) ───────┴──▶ closed
//
// opening: OPEN is posted (again after each Keep-Alive-Interval, while the origin answers empty).
// open: replies are handed to the owner; refreshes and keep-alive requests go out. muted: the
// owner no longer wants the origin's replies (its CLOSE was relayed, or the session detached);
// client events still go out. closed: at most one farewell POST, sent after any request in flight.
//
// A reply may accept only part of what was sent (Content-Bytes-Accepted, grip/ws-acceptance.ts):
// the rest is kept and goes first in the next request, with Content-Bytes-Replayed. The next
// request waits for new client events (the origin asked to wait for more), a refresh or a
// keep-alive, unless the kept rest alone fills maxPendingBytes: then it goes at once, and an
// origin that accepted none of it fails the connection (nothing new could ever be sent).

export type OriginReply = Extract<WsOriginOutcome, { type: 'reply' }>;

/** Why the origin did not accept OPEN: its own answer (not 200), or unreachable or unusable (502). */
export type OpenRefusal = { type: 'refused'; reply: OriginReply } | { type: 'failed' };

/** What the link reports to its session. */
export interface OriginLinkOwner {
  /** The origin accepted OPEN: its reply headers and events, OPEN first. */
  originAccepted(headers: HeaderList, events: DecodedWsEvent[]): void;
  originRefused(refusal: OpenRefusal): void;
  /** The events of a reply while open, in order. */
  originEvents(events: DecodedWsEvent[]): void;
  /** The origin failed or answered something unusable: the session ends, with `closeReason` for the client. */
  originFailed(closeReason: string): void;
  /** Too much is waiting for the origin: stop reading the client until the batch is on its way. */
  pauseClient(): void;
  resumeClient(): void;
  /** A bug in an async step: the session must end, not the process. */
  linkFailed(err: unknown): void;
}

export interface WsOriginLinkDeps {
  post: PostWsEvents;
  metrics: Metrics;
  ws: WsSettings;
  /** The origin's Keep-Alive-Interval runs on the shared wheel. */
  keepAlives: KeepAliveWheel;
  /** Retries' waits. */
  clock: Clock;
}

type LinkState = 'opening' | 'open' | 'muted' | 'closed';

const OPEN_EVENTS: readonly WsEvent[] = [{ type: 'OPEN' }];
const OPEN_FAILED: OpenRefusal = { type: 'failed' };
const CLOSE_NO_STATUS: WsEvent = { type: 'CLOSE', reason: '' };
const NO_META: WsMeta = new Map();

function payloadLength(event: WsEvent): number {
  return event.type === 'TEXT' || event.type === 'BINARY' || event.type === 'PING' || event.type === 'PONG' ? event.content.length : 0;
}

export class WsOriginLink implements KeepAliveMember {
  private state: LinkState = 'opening';
  private pending: WsEvent[] = [];
  private pendingBytes = 0;
  private isClientPaused = false;
  /** A POST (or a retry's wait) is outstanding; nothing else is sent until it completes. */
  private inFlight = false;
  /** Send a POST even with no events (origin keep-alive, publish refresh). */
  private refreshWanted = false;
  private retries = 0;
  private retryTimer: Timer | undefined;
  private retryEvents: readonly WsEvent[] = OPEN_EVENTS;
  private keepAliveMs: number | undefined;
  private farewell: WsEvent[] | undefined;
  /** What the origin did not accept of the last request: sent again first, with how many content bytes it replays. */
  private replay: WsEvent[] = [];
  private replayBytes = 0;
  /** Content-Bytes-Replayed of the request in flight (kept for its retries) and of the farewell. */
  private inFlightReplayBytes = 0;
  private farewellReplayBytes = 0;
  /** Made with the first Set-Meta-* reply header: an empty Map is ~180 bytes a session, and most never get one. */
  private meta: WsMeta | undefined;
  private readonly replayed: HeaderList;
  keepAliveMark = 0;
  keepAliveTicks = 0;
  keepAliveSlot = -1;

  constructor(
    private readonly deps: WsOriginLinkDeps,
    private readonly owner: OriginLinkOwner,
    private readonly url: URL,
    clientHeaders: HeaderList,
    private readonly connectionId: string,
    private readonly log: HoldLog,
  ) {
    this.replayed = replayedHandshakeHeaders(clientHeaders);
  }

  /** Posts OPEN; the owner hears originAccepted or originRefused. */
  open(): void {
    void this.postOpen();
  }

  /** A client event for the origin (batched). */
  send(event: WsEvent): void {
    if (this.state !== 'open' && this.state !== 'muted') return;
    this.pending.push(event);
    this.pendingBytes += payloadLength(event);
    if (this.pendingBytes + this.replayBytes >= this.deps.ws.maxPendingBytes && !this.isClientPaused) {
      this.isClientPaused = true;
      this.owner.pauseClient();
    }
    this.pump();
  }

  /** Asks the origin for anything new with a request even if nothing is pending (docs/grip.md, "Long-polling", refresh action). */
  refresh(): void {
    if (this.state !== 'open') return;
    this.refreshWanted = true;
    this.pump();
  }

  /** The origin's replies are no longer acted on; client events still go out. */
  mute(): void {
    if (this.state !== 'open') return;
    this.state = 'muted';
    this.deps.keepAlives.remove(this);
  }

  /** Closes the origin side (CLOSE without status, after anything pending) while the client stays. */
  detach(): void {
    if (this.state !== 'open') return;
    this.pending.push(CLOSE_NO_STATUS);
    this.mute();
    this.pump();
  }

  /**
   * Ends the link. A CLOSE farewell goes after the events still pending, a DISCONNECT alone;
   * either is posted once any request in flight has completed.
   */
  close(farewell: WsEvent | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.deps.keepAlives.remove(this);
    if (this.retryTimer !== undefined) {
      this.deps.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.inFlight = false;
    }
    const isClose = farewell?.type === 'CLOSE';
    this.farewell = farewell === undefined ? undefined : isClose ? [...this.replay, ...this.pending, farewell] : [farewell];
    this.farewellReplayBytes = isClose ? this.replayBytes : 0;
    this.pending = [];
    this.replay = [];
    this.replayBytes = 0;
    this.pump();
  }

  /** The origin's Keep-Alive-Interval has passed with no request (called by the wheel). */
  sendKeepAlive(): void {
    this.deps.keepAlives.remove(this);
    if (this.state === 'opening') {
      void this.postOpen();
      return;
    }
    this.refreshWanted = true;
    this.pump();
  }

  private async postOpen(): Promise<void> {
    try {
      this.inFlight = true;
      const outcome = await this.post(OPEN_EVENTS);
      this.inFlight = false;
      if (this.state === 'closed') {
        // The client left while the origin was deciding; if it accepted, tell it the client is gone.
        if (outcome.type === 'reply' && outcome.status === 200) this.sendFarewell();
        else this.farewell = undefined;
        return;
      }
      if (outcome.type === 'failed') {
        this.deps.metrics.originErrors.inc({ kind: 'ws' });
        this.log.warn({ err: outcome.error.message, code: outcome.error.code }, 'origin unreachable for WebSocket OPEN');
        this.owner.originRefused(OPEN_FAILED);
        return;
      }
      if (outcome.status !== 200) {
        this.log.info({ status: outcome.status }, 'origin refused WebSocket');
        this.owner.originRefused({ type: 'refused', reply: outcome });
        return;
      }
      // A 200 that is not websocket-events is not an answer to OPEN (an origin that knows nothing of
      // WebSocket-over-HTTP): 502, as docs/websocket.md says, not a WebSocket opened on it.
      const contentType = firstHeader(outcome.headers, 'Content-Type');
      if (!isWsEventsContentType(contentType)) {
        this.deps.metrics.originErrors.inc({ kind: 'ws' });
        this.log.warn({ contentType }, 'origin answered WebSocket OPEN with a 200 that is not websocket-events');
        this.owner.originRefused(OPEN_FAILED);
        return;
      }
      const events = this.decodeReply(outcome);
      if (events === undefined) {
        this.owner.originRefused(OPEN_FAILED);
        return;
      }
      if (events.length === 0 && this.keepAliveMs !== undefined) {
        // An empty first reply with keep-alives defers the decision: ask again after the interval.
        this.deps.keepAlives.add(this, this.keepAliveMs);
        return;
      }
      if (events[0]?.type !== 'OPEN') {
        this.log.warn({ first: events[0]?.type ?? 'none' }, 'origin reply to OPEN does not start with OPEN');
        this.deps.metrics.originErrors.inc({ kind: 'ws' });
        this.owner.originRefused(OPEN_FAILED);
        return;
      }
      this.state = 'open';
      this.owner.originAccepted(outcome.headers, events);
      this.afterExchange();
    } catch (err) {
      this.owner.linkFailed(err);
    }
  }

  /** Sends what is pending when nothing is in flight: one request at a time keeps order. */
  private pump(): void {
    if (this.inFlight) return;
    if (this.state === 'closed') {
      this.sendFarewell();
      return;
    }
    if (this.state === 'opening') return;
    const isReplayDue = this.replayBytes >= this.deps.ws.maxPendingBytes;
    if (this.pending.length === 0 && !isReplayDue && !(this.refreshWanted && this.state === 'open')) return;
    const events = this.replay.length === 0 ? this.pending : [...this.replay, ...this.pending];
    this.inFlightReplayBytes = this.replayBytes;
    this.replay = [];
    this.replayBytes = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.refreshWanted = false;
    if (this.isClientPaused) {
      this.isClientPaused = false;
      this.owner.resumeClient();
    }
    this.deps.keepAlives.remove(this);
    void this.exchange(events);
  }

  private async exchange(events: readonly WsEvent[]): Promise<void> {
    try {
      this.inFlight = true;
      const outcome = await this.post(events, this.inFlightReplayBytes);
      this.inFlight = false;
      if (this.isClosed()) {
        this.sendFarewell();
        return;
      }
      if (outcome.type === 'failed') {
        this.deps.metrics.originErrors.inc({ kind: 'ws' });
        if (outcome.retryable && this.retries < this.deps.ws.retries) {
          const base = this.deps.ws.retryBaseMs;
          const delayMs = base * 2 ** this.retries + Math.floor(Math.random() * base);
          this.retries++;
          this.log.debug({ err: outcome.error.message, attempt: this.retries, delayMs }, 'origin unreachable; retrying');
          this.inFlight = true;
          this.retryEvents = events;
          this.retryTimer = this.deps.clock.setTimeout(WsOriginLink.retryDue, delayMs, this);
          return;
        }
        const isUnreachable = outcome.error.code === 'KG_ERR_ORIGIN_UNREACHABLE';
        this.log.warn({ err: outcome.error.message, code: outcome.error.code, retries: this.retries }, 'origin request failed; closing WebSocket');
        this.owner.originFailed(isUnreachable ? 'origin unreachable' : 'origin error');
        return;
      }
      this.retries = 0;
      const contentType = firstHeader(outcome.headers, 'Content-Type');
      if (outcome.status !== 200 || !isWsEventsContentType(contentType)) {
        this.deps.metrics.originErrors.inc({ kind: 'ws' });
        this.log.warn({ status: outcome.status, contentType }, 'origin answered WebSocket events with a non-events reply');
        this.owner.originFailed('origin error');
        return;
      }
      if (!this.keepUnaccepted(events, outcome)) return;
      const replyEvents = this.decodeReply(outcome);
      if (replyEvents === undefined) {
        this.owner.originFailed('origin sent invalid events');
        return;
      }
      // Once muted (detached, or the origin's CLOSE relayed) Pushpin drops what the origin sends.
      if (this.state === 'open') this.owner.originEvents(replyEvents);
      this.afterExchange();
    } catch (err) {
      this.owner.linkFailed(err);
    }
  }

  /** Keeps what the origin did not accept of `sent` for the next request; false if the link failed. */
  private keepUnaccepted(sent: readonly WsEvent[], reply: OriginReply): boolean {
    const accepted = parseContentBytesAccepted(reply.headers);
    const acceptance = applyAcceptance(sent, accepted);
    switch (acceptance.type) {
      case 'all':
        return true;
      case 'invalid':
        this.deps.metrics.originErrors.inc({ kind: 'ws' });
        this.log.warn({ err: acceptance.problem }, 'origin answered WebSocket events with an impossible Content-Bytes-Accepted');
        this.owner.originFailed('origin error');
        return false;
      case 'partial':
        if (accepted === 0 && acceptance.replayedBytes >= this.deps.ws.maxPendingBytes) {
          // Nothing accepted of a request that already fills the buffer: it can never move on.
          this.deps.metrics.originErrors.inc({ kind: 'ws' });
          this.log.warn({ bytes: acceptance.replayedBytes }, 'origin accepted none of a full WebSocket request');
          this.owner.originFailed('origin error');
          return false;
        }
        this.replay = acceptance.remainder;
        this.replayBytes = acceptance.replayedBytes;
        return true;
      default: {
        const never: never = acceptance;
        throw new Error(`unhandled acceptance ${JSON.stringify(never)}`);
      }
    }
  }

  /** Timer callback shared by every link: the retry's wait is over. */
  private static retryDue(this: void, link: WsOriginLink): void {
    link.retryTimer = undefined;
    const events = link.retryEvents;
    link.retryEvents = OPEN_EVENTS;
    void link.exchange(events);
  }

  private afterExchange(): void {
    if (this.state === 'closed') return;
    this.pump();
    if (!this.inFlight && this.state === 'open' && this.keepAliveMs !== undefined) this.deps.keepAlives.add(this, this.keepAliveMs);
  }

  /** Reply headers that apply to every reply, then the events; undefined if the body is malformed. */
  private decodeReply(reply: OriginReply): DecodedWsEvent[] | undefined {
    this.meta = applySetMeta(reply.headers, this.meta);
    const interval = parseKeepAliveInterval(reply.headers, this.deps.ws.keepAliveMinSec);
    if (interval === 'off') this.keepAliveMs = undefined;
    else if (interval !== undefined) this.keepAliveMs = interval * 1000;
    try {
      return decodeWsEvents(reply.body);
    } catch (err) {
      if (!isKgError(err)) throw err;
      this.deps.metrics.originErrors.inc({ kind: 'ws' });
      this.log.warn({ err: err.message, code: err.code }, 'origin sent invalid websocket-events');
      return undefined;
    }
  }

  /** `replayedBytes`: content bytes at the start of `events` that the origin did not accept last time. */
  private post(events: readonly WsEvent[], replayedBytes = 0): Promise<WsOriginOutcome> {
    const body = encodeWsEvents(events);
    const headers = wsRequestHeaders(this.replayed, this.connectionId, this.meta ?? NO_META, body.length);
    if (replayedBytes > 0) headers.push([CONTENT_BYTES_REPLAYED, String(replayedBytes)]);
    return this.deps.post(this.url, headers, body);
  }

  private sendFarewell(): void {
    const events = this.farewell;
    if (events === undefined || this.inFlight) return;
    this.farewell = undefined;
    void this.postFarewell(events, this.farewellReplayBytes);
  }

  /** The last request: what the origin accepts of it no longer matters (the session is over). */
  private async postFarewell(events: readonly WsEvent[], replayedBytes: number): Promise<void> {
    try {
      const outcome = await this.post(events, replayedBytes);
      if (outcome.type === 'failed') this.log.debug({ err: outcome.error.message }, 'final WebSocket event not delivered to origin');
    } catch (err) {
      this.log.error({ err }, 'final WebSocket event failed');
    }
  }

  /** State re-read after an await, where narrowing no longer holds. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }
}
