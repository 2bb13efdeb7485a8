import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Limits, WsSettings } from '../config.js';
import { isKgError } from '../errors.js';
import { parseWsControl, type WsClientMessage, type WsControl } from '../grip/ws-control.js';
import { decodeWsEvents, encodeWsEvents, type WsEvent } from '../grip/ws-events.js';
import { gripExtensionFrom, routeOriginMessage, type GripExtension } from '../grip/ws-extension.js';
import { encodeFrame, isSendableCloseCode, Opcode, opcodeOf, truncateCloseReason } from '../grip/ws-frame.js';
import {
  applySetMeta, firstHeader, handshakeResponseHeaders, headerValues, isWsEventsContentType, offeredSubprotocols,
  parseKeepAliveInterval, rejectionResponseHeaders, replayedHandshakeHeaders, wsRequestHeaders, type WsMeta,
} from '../grip/ws-headers.js';
import type { HeaderList, PublishItem, WsMessageFormat } from '../grip/types.js';
import type { Hub, Subscriber } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { CloseReason, Metrics } from '../metrics.js';
import type { PostWsEvents, WsOriginOutcome } from '../origin/ws-origin.js';

// One client WebSocket held by the sidecar and driven by the origin over WebSocket-over-HTTP
// (spec 7). The origin sees short POSTs of websocket-events; the client sees a WebSocket.
//
//   opening ──origin answers OPEN──▶ open ──c:detach──▶ detached
//      │                              │  ╲                 │
//      │ refused · unreachable ·      │   ╲ origin CLOSE   │ client close or drop ·
//      │ bad reply · client gone      │    ▼               │ publish close · slow client ·
//      │                              │   closing          │ shutdown
//      │                              │    │ client's      │
//      │                              │    │ close reply   │
//      ▼                              ▼    ▼               ▼
//    closed ◀──────────────────────── close(reason) runs once ◀────────────────┘
//
// opening: OPEN is posted and the client's upgrade waits; the 101 goes out only once the origin
//   accepts. open: client messages are batched into POSTs, one in flight at a time (order);
//   origin events and published ws-message items are written to the client. detached: the
//   origin side is closed (CLOSE posted), publishes still flow. closing: we relayed the origin's
//   CLOSE and wait for the client's reply, which goes back to the origin as CLOSE.
// close() releases subscriptions, timers and listeners, ends the client socket as asked, and
// leaves at most one farewell POST (CLOSE or DISCONNECT) for the origin, sent after any request
// already in flight.

export interface WsSessionDeps {
  hub: Hub;
  post: PostWsEvents;
  metrics: Metrics;
  /** Counts one delivered publish; cheap (batched into kong_grip_messages_sent_total). */
  countSent: () => void;
  log: Logger;
  limits: Limits;
  ws: WsSettings;
}

export interface WsSessionInit {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  /** Where the POSTs go, and the client's handshake headers already cleaned for the origin. */
  target: { url: URL; headers: HeaderList };
  /** Completes the upgrade with these extra 101 headers; undefined if the socket is gone. */
  accept: (headers: HeaderList, protocol: string | undefined, head: Buffer) => WebSocket | undefined;
  onClosed: (session: WsSession) => void;
}

type State = 'opening' | 'open' | 'detached' | 'closing' | 'closed';

/** How close() leaves the client connection. */
type ClientEnd =
  | { type: 'none' }
  | { type: 'close'; code: number | undefined; reason: string }
  | { type: 'terminate' };

const ENDED: ClientEnd = { type: 'none' };
const TERMINATE: ClientEnd = { type: 'terminate' };
const WS_OPEN = 1; // WebSocket.OPEN
/** Pushpin relays at most this much of a refusing origin's body to the client. */
const MAX_REJECT_BODY_BYTES = 100_000;
/** Pushpin's limit on filters per subscription (MESSAGEFILTERSTACK_SIZE_MAX). */
const MAX_FILTERS = 5;
const PROXY_ERROR_TEXT = Buffer.from('Error while proxying to origin.\n');
const PROXY_ERROR_HEADERS: HeaderList = [['Content-Type', 'text/plain; charset=utf-8']];
/** 1014 Bad Gateway (RFC 6455 registry): the origin failed or answered something unusable. */
const CLOSE_ORIGIN_FAILED = 1014;
/** 1012 Service Restart (RFC 6455 registry): the client should reconnect, and will reach another instance. */
const CLOSE_SHUTDOWN = 1012;
const CLOSE_INTERNAL = 1011;
const DISCONNECT: WsEvent = { type: 'DISCONNECT' };
// Errors on a socket being torn down have no one left to tell.
const ignoreError = (): void => undefined;
const CLOSE_NO_STATUS: WsEvent = { type: 'CLOSE', reason: '' };

// Each published ws-message format is framed once and the same bytes go to every socket: every
// subscriber of a channel receives the same item object from the hub, so its format is the key.
const publishFrames = new WeakMap<WsMessageFormat, Buffer | null>();

function publishFrame(format: WsMessageFormat): Buffer | undefined {
  let frame = publishFrames.get(format);
  if (frame === undefined) {
    frame = encodeFrame(opcodeOf(format.type), format.content) ?? null;
    publishFrames.set(format, frame);
  }
  return frame ?? undefined;
}

export class WsSession implements Subscriber {
  readonly connectionId = randomUUID();
  private state: State = 'opening';
  private ws: WebSocket | undefined;
  private grip: GripExtension | undefined;
  private readonly socket: Duplex;
  private readonly replayed: HeaderList;
  private readonly meta: WsMeta = new Map();
  private readonly channels = new Set<string>();
  private readonly log: Logger;
  private readonly startedAt = performance.now();

  // Client → origin
  private pending: WsEvent[] = [];
  private pendingBytes = 0;
  private isReadPaused = false;
  /** A POST (or a retry's wait) is outstanding; nothing else is sent until it completes. */
  private inFlight = false;
  /** Send a POST even with no events (origin keep-alive, publish refresh). */
  private refreshWanted = false;
  private retries = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private originKeepAliveMs: number | undefined;
  private originKeepAliveTimer: NodeJS.Timeout | undefined;
  private farewell: WsEvent[] | undefined;

  // Origin / sidecar → client
  private clientKeepAlive: { frame: Buffer; ms: number; mode: 'idle' | 'interval' } | undefined;
  private clientKeepAliveTimer: NodeJS.Timeout | undefined;
  private lastSentMs = 0;
  private delayed: { frame: Buffer; timer: NodeJS.Timeout } | undefined;

  private readonly onSocketGone = (): void => this.close('client_gone', TERMINATE, [DISCONNECT]);
  private readonly earlyData: Buffer[] = [];
  private earlyBytes = 0;
  private readonly onEarlyData = (chunk: Buffer): void => {
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > this.deps.ws.maxMessageBytes) {
      this.close('client_gone', TERMINATE, [DISCONNECT]);
      return;
    }
    this.earlyData.push(chunk);
  };
  private readonly onSocketError = (err: Error): void => this.log.debug({ err: err.message }, 'client socket error');
  private readonly onWsMessage = (data: Buffer, isBinary: boolean): void =>
    this.fromClient(isBinary ? { type: 'BINARY', content: data } : { type: 'TEXT', content: data });
  private readonly onWsPing = (data: Buffer): void => this.fromClient({ type: 'PING', content: data });
  private readonly onWsPong = (data: Buffer): void => this.fromClient({ type: 'PONG', content: data });
  private readonly onWsError = (err: Error): void => this.log.info({ err: err.message }, 'client protocol error');
  private readonly onWsClose = (code: number, reason: Buffer): void => this.clientClosed(code, reason.toString('utf8'));
  private readonly onOriginKeepAlive = (): void => {
    this.originKeepAliveTimer = undefined;
    if (this.state === 'opening') {
      this.run(this.open());
      return;
    }
    this.refreshWanted = true;
    this.pump();
  };
  private readonly onClientKeepAlive = (): void => this.clientKeepAliveDue();
  private readonly onDelayedDue = (): void => this.flushDelayed();

  constructor(private readonly deps: WsSessionDeps, private readonly init: WsSessionInit) {
    this.socket = init.socket;
    this.replayed = replayedHandshakeHeaders(init.target.headers);
    this.log = deps.log.child({ connId: this.connectionId, holdKind: 'ws', route: init.target.url.pathname });
  }

  start(): void {
    this.socket.on('error', this.onSocketError);
    this.socket.once('close', this.onSocketGone);
    // Read while the origin decides, or a client that leaves (FIN) goes unnoticed; anything it
    // sends meanwhile is kept for ws.
    this.socket.once('end', this.onSocketGone);
    this.socket.on('data', this.onEarlyData);
    this.deps.metrics.connections.inc({ kind: 'ws' });
    this.run(this.open());
  }

  /** A bug in an async step must end this session, not the process. */
  private run(step: Promise<void>): void {
    step.catch((err: unknown) => {
      this.log.error({ err }, 'WebSocket session failed');
      this.close('error', TERMINATE, undefined);
    });
  }

  // ── opening ────────────────────────────────────────────────────────────────

  private async open(): Promise<void> {
    this.inFlight = true;
    const outcome = await this.postEvents([{ type: 'OPEN' }]);
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
      this.reject('origin_error', 502, 'Bad Gateway', PROXY_ERROR_HEADERS, PROXY_ERROR_TEXT);
      return;
    }
    const { status, headers, body } = outcome;
    if (status !== 200) {
      this.log.info({ status }, 'origin refused WebSocket');
      this.reject('rejected', status, outcome.reason, rejectionResponseHeaders(headers), body.subarray(0, MAX_REJECT_BODY_BYTES));
      return;
    }
    const events = this.decodeReply(outcome);
    if (events === undefined) {
      this.reject('origin_error', 502, 'Bad Gateway', PROXY_ERROR_HEADERS, PROXY_ERROR_TEXT);
      return;
    }
    if (events.length === 0 && this.originKeepAliveMs !== undefined) {
      // An empty first reply with keep-alives defers the decision: ask again after the interval.
      this.originKeepAliveTimer = setTimeout(this.onOriginKeepAlive, this.originKeepAliveMs);
      return;
    }
    if (events[0]?.type !== 'OPEN') {
      this.log.warn({ first: events[0]?.type ?? 'none' }, 'origin reply to OPEN does not start with OPEN');
      this.deps.metrics.originErrors.inc({ kind: 'ws' });
      this.reject('origin_error', 502, 'Bad Gateway', PROXY_ERROR_HEADERS, PROXY_ERROR_TEXT);
      return;
    }
    this.accept(headers);
    if (this.isClosed()) return;
    this.handleEvents(events, 1);
    this.afterExchange();
  }

  private accept(originHeaders: HeaderList): void {
    const chosen = firstHeader(originHeaders, 'Sec-WebSocket-Protocol')?.trim();
    const protocol = chosen !== undefined && offeredSubprotocols(this.init.target.headers).includes(chosen) ? chosen : undefined;
    this.detachEarlyListeners();
    const head = this.earlyData.length === 0 ? this.init.head : Buffer.concat([this.init.head, ...this.earlyData]);
    const ws = this.init.accept(handshakeResponseHeaders(originHeaders), protocol, head);
    if (ws === undefined) {
      this.close('client_gone', ENDED, [DISCONNECT]);
      return;
    }
    this.ws = ws;
    this.grip = gripExtensionFrom(headerValues(originHeaders, 'Sec-WebSocket-Extensions'));
    ws.on('message', this.onWsMessage);
    // With answerPings, ws answers client pings itself (autoPong) and the origin is not asked.
    if (!this.deps.ws.answerPings) ws.on('ping', this.onWsPing);
    ws.on('pong', this.onWsPong);
    ws.on('error', this.onWsError);
    ws.once('close', this.onWsClose);
    this.state = 'open';
    this.log.debug({ grip: this.grip !== undefined }, 'hold started');
  }

  /** Answers the upgrade with the origin's refusal (or our 502) instead of 101. */
  private reject(label: CloseReason, status: number, reason: string, headers: HeaderList, body: Buffer): void {
    const lines = [`HTTP/1.1 ${status} ${reason.replace(/[\r\n]/g, ' ') || STATUS_CODES[status] || ''}`];
    for (const [k, v] of headers) lines.push(`${k}: ${v}`);
    lines.push(`Content-Length: ${body.length}`, 'Connection: close', '', '');
    const socket = this.socket;
    this.close(label, ENDED, undefined);
    if (socket.writable) {
      socket.once('finish', () => socket.destroy());
      socket.end(Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]));
    } else {
      socket.destroy();
    }
  }

  // ── client → origin ────────────────────────────────────────────────────────

  private fromClient(event: WsEvent): void {
    // After a detach client traffic is dropped (spec 7.3); closing still relays until the reply.
    if (this.state !== 'open' && this.state !== 'closing') return;
    this.pending.push(event);
    this.pendingBytes += event.type === 'TEXT' || event.type === 'BINARY' || event.type === 'PING' || event.type === 'PONG' ? event.content.length : 0;
    if (this.pendingBytes >= this.deps.ws.maxPendingBytes && !this.isReadPaused && this.ws !== undefined) {
      // Backpressure instead of loss: stop reading the client until the batch is on its way.
      this.isReadPaused = true;
      this.ws.pause();
    }
    this.pump();
  }

  /** Sends what is pending when nothing is in flight: one request at a time keeps order. */
  private pump(): void {
    if (this.inFlight) return;
    if (this.state === 'closed') {
      this.sendFarewell();
      return;
    }
    if (this.state === 'opening') return;
    if (this.pending.length === 0 && !(this.refreshWanted && this.state === 'open')) return;
    const events = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.refreshWanted = false;
    if (this.isReadPaused) {
      this.isReadPaused = false;
      this.ws?.resume();
    }
    clearTimeout(this.originKeepAliveTimer);
    this.originKeepAliveTimer = undefined;
    this.run(this.exchange(events));
  }

  private async exchange(events: WsEvent[]): Promise<void> {
    this.inFlight = true;
    const outcome = await this.postEvents(events);
    this.inFlight = false;
    if (this.state === 'closed') {
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
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.run(this.exchange(events));
        }, delayMs);
        return;
      }
      const isUnreachable = outcome.error.code === 'KG_ERR_ORIGIN_UNREACHABLE';
      this.log.warn({ err: outcome.error.message, code: outcome.error.code, retries: this.retries }, 'origin request failed; closing WebSocket');
      this.close('origin_error', { type: 'close', code: CLOSE_ORIGIN_FAILED, reason: isUnreachable ? 'origin unreachable' : 'origin error' }, undefined);
      return;
    }
    this.retries = 0;
    if (outcome.status !== 200 || !isWsEventsContentType(firstHeader(outcome.headers, 'Content-Type'))) {
      this.deps.metrics.originErrors.inc({ kind: 'ws' });
      this.log.warn({ status: outcome.status, contentType: firstHeader(outcome.headers, 'Content-Type') }, 'origin answered WebSocket events with a non-events reply');
      this.close('origin_error', { type: 'close', code: CLOSE_ORIGIN_FAILED, reason: 'origin error' }, undefined);
      return;
    }
    const replyEvents = this.decodeReply(outcome);
    if (replyEvents === undefined) {
      this.close('origin_error', { type: 'close', code: CLOSE_ORIGIN_FAILED, reason: 'origin sent invalid events' }, undefined);
      return;
    }
    // After a detach Pushpin drops what the origin sends on that connection.
    if (this.state === 'open') this.handleEvents(replyEvents, 0);
    this.afterExchange();
  }

  private afterExchange(): void {
    if (this.state === 'closed') return;
    this.pump();
    if (!this.inFlight && this.state === 'open' && this.originKeepAliveMs !== undefined) {
      this.originKeepAliveTimer = setTimeout(this.onOriginKeepAlive, this.originKeepAliveMs);
    }
  }

  /** Reply headers that apply to every reply, then the events; undefined if the body is malformed. */
  private decodeReply(reply: Extract<WsOriginOutcome, { type: 'reply' }>): ReturnType<typeof decodeWsEvents> | undefined {
    applySetMeta(reply.headers, this.meta);
    const interval = parseKeepAliveInterval(reply.headers, this.deps.ws.keepAliveMinSec);
    if (interval === 'off') this.originKeepAliveMs = undefined;
    else if (interval !== undefined) this.originKeepAliveMs = interval * 1000;
    try {
      return decodeWsEvents(reply.body);
    } catch (err) {
      if (!isKgError(err)) throw err;
      this.deps.metrics.originErrors.inc({ kind: 'ws' });
      this.log.warn({ err: err.message, code: err.code }, 'origin sent invalid websocket-events');
      return undefined;
    }
  }

  private postEvents(events: WsEvent[]): Promise<WsOriginOutcome> {
    const body = encodeWsEvents(events);
    return this.deps.post(this.init.target.url, wsRequestHeaders(this.replayed, this.connectionId, this.meta, body.length), body);
  }

  private sendFarewell(): void {
    const events = this.farewell;
    if (events === undefined || this.inFlight) return;
    this.farewell = undefined;
    this.postEvents(events).then((outcome) => {
      if (outcome.type === 'failed') this.log.debug({ err: outcome.error.message }, 'final WebSocket event not delivered to origin');
    }, (err: unknown) => this.log.error({ err }, 'final WebSocket event failed'));
  }

  // ── origin → client ────────────────────────────────────────────────────────

  private handleEvents(events: ReturnType<typeof decodeWsEvents>, from: number): void {
    // Stops at a detach as well: Pushpin drops what the origin sends once detached.
    for (let i = from; i < events.length && this.state === 'open'; i++) {
      const e = events[i] as (typeof events)[number];
      switch (e.type) {
        case 'TEXT':
        case 'BINARY': {
          const route = routeOriginMessage(this.grip, e.type === 'TEXT', e.content);
          if (route.kind === 'control') this.control(route.json);
          else if (route.kind === 'message') this.writeMessage(e.type === 'TEXT' ? Opcode.Text : Opcode.Binary, route.content);
          else this.log.debug({ why: route.why }, 'origin message dropped');
          break;
        }
        case 'PING':
        case 'PONG':
          this.writeMessage(e.type === 'PING' ? Opcode.Ping : Opcode.Pong, e.content);
          break;
        case 'CLOSE':
          this.originClosed(e.code, e.reason);
          break;
        case 'DISCONNECT':
          this.close('origin_closed', TERMINATE, undefined);
          break;
        case 'OPEN':
          this.log.warn('origin sent OPEN on an open connection');
          this.deps.metrics.originErrors.inc({ kind: 'ws' });
          this.close('origin_error', { type: 'close', code: CLOSE_ORIGIN_FAILED, reason: 'origin error' }, undefined);
          break;
        case 'unknown':
          this.log.debug({ event: e.name }, 'unknown websocket event ignored');
          break;
        default: {
          const never: never = e;
          throw new Error(`unhandled event ${JSON.stringify(never)}`);
        }
      }
    }
  }

  /** The origin's CLOSE goes to the client; the client's reply will go back to the origin. */
  private originClosed(code: number | undefined, reason: string): void {
    this.state = 'closing';
    this.releaseDelivery();
    const sendable = code !== undefined && isSendableCloseCode(code) ? code : undefined;
    this.ws?.close(sendable, sendable === undefined ? undefined : truncateCloseReason(reason));
  }

  private control(json: string): void {
    let msg: WsControl;
    try {
      msg = parseWsControl(json);
    } catch (err) {
      if (!isKgError(err)) throw err;
      // Pushpin ignores malformed control messages.
      this.log.debug({ err: err.message }, 'control message ignored');
      return;
    }
    switch (msg.type) {
      case 'subscribe':
        this.subscribe(msg.channel, msg.filters);
        return;
      case 'unsubscribe':
        if (this.channels.delete(msg.channel)) this.deps.hub.unsubscribe(msg.channel, this);
        return;
      case 'detach':
        this.detach();
        return;
      case 'session':
        this.log.debug('GRIP session ids are not supported; control message ignored');
        return;
      case 'set-meta':
        // Subscription meta only feeds delivery filters (spec 6.1), which the sidecar does not run.
        this.log.debug({ name: msg.name }, 'set-meta has no effect: no delivery filter reads meta');
        return;
      case 'keep-alive':
        this.setClientKeepAlive(msg.message, msg.timeoutSec, msg.mode);
        return;
      case 'send-delayed':
        this.sendDelayed(msg.message, msg.timeoutSec);
        return;
      case 'flush-delayed':
        this.flushDelayed();
        return;
      default: {
        const never: never = msg;
        throw new Error(`unhandled control ${JSON.stringify(never)}`);
      }
    }
  }

  private subscribe(channel: string, filters: string[]): void {
    if (this.channels.has(channel)) return;
    if (filters.length > MAX_FILTERS) {
      this.close('error', { type: 'close', code: CLOSE_INTERNAL, reason: truncateCloseReason(`too many filters for channel '${channel}'`) },
        [...this.pending, CLOSE_NO_STATUS]);
      return;
    }
    if (this.channels.size >= this.deps.limits.maxChannelsPerConnection) {
      // Pushpin ignores subscriptions beyond connection_subscription_max.
      this.deps.metrics.channelsDropped.inc();
      this.log.debug({ channel, max: this.deps.limits.maxChannelsPerConnection }, 'subscription over the per-connection limit ignored');
      return;
    }
    if (filters.length > 0) this.log.debug({ channel, filters }, 'subscription filters are not applied');
    this.channels.add(channel);
    this.deps.hub.subscribe(channel, this);
    this.log.debug({ channel }, 'subscribed');
  }

  private detach(): void {
    if (this.state !== 'open') return;
    // Close the origin side (CLOSE without status, after anything pending); keep the client.
    this.pending.push(CLOSE_NO_STATUS);
    this.state = 'detached';
    clearTimeout(this.originKeepAliveTimer);
    this.originKeepAliveTimer = undefined;
    this.pump();
  }

  /**
   * The hub's first-subscription refresh (spec 3.5): a channel of this session just went live on
   * the bus, so items may have been missed. As for a published `refresh` action, the origin gets
   * a WebSocket-over-HTTP request (empty if nothing is pending) and can push what was missed.
   */
  refresh(): void {
    if (this.state !== 'open') return;
    this.refreshWanted = true;
    this.pump();
  }

  /** Published items from the hub. Hot path: no allocation per subscriber. */
  deliver(item: PublishItem): void {
    const format = item.formats['ws-message'];
    if (format === undefined || (this.state !== 'open' && this.state !== 'detached')) return;
    switch (format.action) {
      case 'send': {
        const frame = publishFrame(format);
        if (frame === undefined) {
          this.log.debug({ channel: item.channel }, 'published control frame over 125 bytes dropped');
          return;
        }
        if (this.write(frame)) this.deps.countSent();
        return;
      }
      case 'close': {
        const code = format.code !== undefined && isSendableCloseCode(format.code) ? format.code : undefined;
        this.close('closed_by_publish', { type: 'close', code, reason: format.reason ?? '' },
          this.state === 'open' ? [...this.pending, CLOSE_NO_STATUS] : undefined);
        return;
      }
      case 'refresh':
        if (this.state === 'open') {
          this.refreshWanted = true;
          this.pump();
        }
        return;
      case 'hint':
        return; // parsed but meaningless for WebSockets (spec 4.1)
      default: {
        const never: never = format.action;
        throw new Error(`unhandled action ${String(never)}`);
      }
    }
  }

  private writeMessage(opcode: Opcode, payload: Buffer): void {
    const frame = encodeFrame(opcode, payload);
    if (frame === undefined) {
      this.log.debug({ bytes: payload.length }, 'control frame over 125 bytes dropped');
      return;
    }
    this.write(frame);
  }

  /**
   * Writes a complete frame to the client socket. ws writes its own frames (close) to the same
   * socket synchronously and without compression, so order is kept. False if not written.
   */
  private write(frame: Buffer): boolean {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WS_OPEN) return false;
    this.socket.write(frame);
    if (this.clientKeepAlive !== undefined) this.lastSentMs = Date.now();
    if (this.socket.writableLength > this.deps.limits.maxQueueBytes) {
      this.log.warn({ queuedBytes: this.socket.writableLength }, 'slow consumer dropped');
      this.close('slow_consumer', TERMINATE, this.state === 'open' ? [DISCONNECT] : undefined);
      return false;
    }
    return true;
  }

  private setClientKeepAlive(message: WsClientMessage | undefined, timeoutSec: number, mode: 'idle' | 'interval'): void {
    clearTimeout(this.clientKeepAliveTimer);
    this.clientKeepAliveTimer = undefined;
    this.clientKeepAlive = undefined;
    if (message === undefined) return;
    const frame = encodeFrame(opcodeOf(message.type), message.content);
    if (frame === undefined) {
      this.log.debug('keep-alive control frame over 125 bytes ignored');
      return;
    }
    this.clientKeepAlive = { frame, ms: timeoutSec * 1000, mode };
    this.lastSentMs = Date.now();
    this.clientKeepAliveTimer = setTimeout(this.onClientKeepAlive, this.clientKeepAlive.ms);
  }

  /** Idle mode: send only if nothing went to the client for the whole timeout. */
  private clientKeepAliveDue(): void {
    const ka = this.clientKeepAlive;
    if (ka === undefined) return;
    if (ka.mode === 'idle') {
      const idleMs = Date.now() - this.lastSentMs;
      if (idleMs < ka.ms) {
        this.clientKeepAliveTimer = setTimeout(this.onClientKeepAlive, ka.ms - idleMs);
        return;
      }
    }
    this.write(ka.frame);
    if (this.clientKeepAlive === ka) this.clientKeepAliveTimer = setTimeout(this.onClientKeepAlive, ka.ms);
  }

  /** At most one delayed message: a new one sends the pending one first (spec 7.3). */
  private sendDelayed(message: WsClientMessage, timeoutSec: number): void {
    this.flushDelayed();
    const frame = encodeFrame(opcodeOf(message.type), message.content);
    if (frame === undefined) return;
    this.delayed = { frame, timer: setTimeout(this.onDelayedDue, timeoutSec * 1000) };
  }

  private flushDelayed(): void {
    const d = this.delayed;
    if (d === undefined) return;
    this.delayed = undefined;
    clearTimeout(d.timer);
    this.write(d.frame);
  }

  // ── ending ─────────────────────────────────────────────────────────────────

  /** The client's side finished: a close frame (its own or its reply to ours) or a drop (1006). */
  private clientClosed(code: number, reason: string): void {
    const isClean = code !== 1006;
    const closeEvent: WsEvent = code === 1005 || !isClean ? CLOSE_NO_STATUS : { type: 'CLOSE', code, reason };
    switch (this.state) {
      case 'open':
        this.close(isClean ? 'client_closed' : 'client_gone', ENDED, isClean ? [...this.pending, closeEvent] : [DISCONNECT]);
        return;
      case 'closing':
        this.close('origin_closed', ENDED, isClean ? [...this.pending, closeEvent] : [DISCONNECT]);
        return;
      case 'detached':
        this.close(isClean ? 'client_closed' : 'client_gone', ENDED, undefined);
        return;
      case 'opening':
      case 'closed':
        return;
      default: {
        const never: never = this.state;
        throw new Error(`unhandled state ${String(never)}`);
      }
    }
  }

  /** Ends the session for `reason` (once). `farewell` is posted to the origin afterwards, if given. */
  close(reason: CloseReason, end: ClientEnd = { type: 'close', code: CLOSE_SHUTDOWN, reason: 'service restart' },
    farewell: WsEvent[] | undefined = this.state === 'open' || this.state === 'closing' ? [DISCONNECT] : undefined): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state !== 'opening';
    this.state = 'closed';
    this.releaseDelivery();
    clearTimeout(this.originKeepAliveTimer);
    this.originKeepAliveTimer = undefined;
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.inFlight = false;
    }
    this.pending = [];
    this.detachEarlyListeners();
    this.socket.on('error', ignoreError);
    const ws = this.ws;
    if (ws !== undefined) {
      ws.off('message', this.onWsMessage);
      ws.off('ping', this.onWsPing);
      ws.off('pong', this.onWsPong);
      ws.off('close', this.onWsClose);
      // ws's own 'error' handling stays quiet once we stop listening; keep a listener.
      if (end.type === 'terminate') ws.terminate();
      else if (end.type === 'close' && ws.readyState === WS_OPEN) ws.close(end.code, end.code === undefined ? undefined : end.reason);
    } else if (end.type !== 'none') {
      this.socket.destroy();
    }
    this.deps.metrics.connections.dec({ kind: 'ws' });
    this.deps.metrics.holdsClosed.inc({ kind: 'ws', reason });
    const durationSec = (performance.now() - this.startedAt) / 1000;
    this.deps.metrics.holdDuration.observe({ kind: 'ws' }, durationSec);
    if (wasOpen) this.log.debug({ reason, durationMs: Math.round(durationSec * 1000) }, 'hold closed');
    this.farewell = farewell;
    this.init.onClosed(this);
    this.pump();
  }

  private detachEarlyListeners(): void {
    this.socket.off('error', this.onSocketError);
    this.socket.off('close', this.onSocketGone);
    this.socket.off('end', this.onSocketGone);
    this.socket.off('data', this.onEarlyData);
  }

  /** Subscriptions and client-side timers: nothing more goes to the client. */
  private releaseDelivery(): void {
    for (const channel of this.channels) this.deps.hub.unsubscribe(channel, this);
    this.channels.clear();
    clearTimeout(this.clientKeepAliveTimer);
    this.clientKeepAliveTimer = undefined;
    this.clientKeepAlive = undefined;
    if (this.delayed !== undefined) {
      clearTimeout(this.delayed.timer);
      this.delayed = undefined;
    }
  }

  /** State re-read after an await or a call that may close, where narrowing no longer holds. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  get channelCount(): number {
    return this.channels.size;
  }
}
