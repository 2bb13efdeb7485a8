import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Limits, WsSettings } from '../config.js';
import { isKgError } from '../errors.js';
import { parseWsControl, type WsClientMessage, type WsControl } from '../grip/ws-control.js';
import type { DecodedWsEvent, WsEvent } from '../grip/ws-events.js';
import { parseGoneLink } from '../grip/instruct.js';
import { gripExtensionFrom, routeOriginMessage, type GripExtension } from '../grip/ws-extension.js';
import { encodeFrame, isSendableCloseCode, Opcode, opcodeOf, truncateCloseReason } from '../grip/ws-frame.js';
import { headerValues } from '../grip/ws-headers.js';
import type { HeaderList, PublishItem, WsMessageFormat } from '../grip/types.js';
import type { Hub, Subscriber } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { CloseReason, Metrics } from '../metrics.js';
import { isGoneEnd, type GoneLink, type GoneNotifier } from '../origin/gone-link.js';
import type { PostWsEvents } from '../origin/ws-origin.js';
import type { RequestTarget, TargetConnection } from '../server/request-target.js';
import type { ConnectionUsage } from '../usage/usage-ledger.js';
import type { Clock, Timer } from './clock.js';
import type { KeepAliveMember, KeepAliveWheel } from './keep-alive-wheel.js';
import { LazyChildLog, type HoldLog } from './lazy-log.js';
import { WsOriginLink, type OpenRefusal, type OriginLinkOwner } from './ws-origin-link.js';
import { filterItem, hasActiveFilters, type FilterContext } from '../filters/filters.js';
import { MetaLimitError, SubscriptionMeta } from '../filters/sub-meta.js';
import { reportFilterError } from './hold-ports.js';

// One client WebSocket held by the sidecar and driven by the origin over WebSocket-over-HTTP
// (docs/websocket.md): the client side (its socket, published frames, control messages, the closing
// handshake). The origin side (batched POSTs, one in flight, retries, the farewell) is the
// session's WsOriginLink; completing or refusing the upgrade is the handshake port's job.
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
//   accepts. open: client messages go to the link; origin events and published ws-message items
//   are written to the client. detached: the origin side is closed (CLOSE posted), publishes
//   still flow, as do the events after the detach in the same origin reply. closing: we relayed
//   the origin's CLOSE and wait for the client's reply, which goes back to the origin as CLOSE.
// close() releases subscriptions, timers and listeners, ends the client socket as asked, and
// hands the link at most one farewell event (CLOSE or DISCONNECT) for the origin; a gone link
// given on the OPEN reply is POSTed unless the origin ended the session (CLOSE, DISCONNECT, a
// published close).
//
// A held WebSocket is mostly idle and there may be many, so it keeps little: no closure of its
// own (the listeners are shared and find the session through a symbol on the socket or the ws
// object), the client keep-alive on the shared wheel (sent between the timeout and about three
// wheel ticks after it, never earlier), and nothing of the upgrade request once it is answered.
//
// Filters (docs/grip.md, "Meta and filters"): subscriptions with filters (c:subscribe `filters`) and the meta of set-meta
// control messages are kept only once there are some; a session without them gets the shared
// frame of each item as before. WebSockets have no prev-ids: build-id fails there when the
// id_format names a channel.

/** The answer to the client's upgrade, once the origin has decided (server/ws-handshake.ts). */
export interface WsHandshakePort {
  /** Completes the 101 with the origin's reply headers; undefined if the client has gone. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, originHeaders: HeaderList, clientHeaders: HeaderList): WebSocket | undefined;
  /** Answers the upgrade with the origin's refusal, or 502; the socket then closes. */
  refuse(socket: Duplex, refusal: OpenRefusal): void;
}

export interface WsSessionDeps {
  hub: Hub;
  post: PostWsEvents;
  metrics: Metrics;
  /** Counts one delivered publish; cheap (batched into kong_grip_messages_sent_total). */
  countSent: () => void;
  log: Logger;
  limits: Limits;
  ws: WsSettings;
  handshake: WsHandshakePort;
  /** Client keep-alives and the origin's Keep-Alive-Interval, on the wheel all holds share. */
  keepAlives: KeepAliveWheel;
  /** Origin retries, send-delayed, and the hold's duration. */
  clock: Clock;
  /** A gone link from the OPEN reply is POSTed when the session ends without the origin's doing. */
  gone: GoneNotifier;
  /** Runs once for every session, when it ends. */
  onClosed: (session: WsSession) => void;
}

export interface WsUpgrade {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  /** Where the POSTs go, and the client's handshake headers already cleaned for the origin. */
  target: RequestTarget;
}

type State = 'opening' | 'open' | 'detached' | 'closing' | 'closed';

/** How close() leaves the client connection. */
type ClientEnd =
  | { type: 'none' }
  | { type: 'close'; code: number | undefined; reason: string }
  | { type: 'terminate' };

/** What the upgrade needs until it is answered; dropped then. */
interface Opening {
  req: IncomingMessage;
  head: Buffer;
  clientHeaders: HeaderList;
  /** What the client sent before the 101, for ws to read. */
  earlyData: Buffer[] | undefined;
  earlyBytes: number;
}

const ENDED: ClientEnd = { type: 'none' };
const TERMINATE: ClientEnd = { type: 'terminate' };
/** 1012 Service Restart (RFC 6455 registry): the client should reconnect, and will reach another instance. */
const SHUTDOWN_END: ClientEnd = { type: 'close', code: 1012, reason: 'service restart' };
const WS_OPEN = 1; // WebSocket.OPEN
const NO_META: ReadonlyMap<string, string> = new Map();
const NO_FILTERS: readonly string[] = [];
/** Pushpin's limit on filters per subscription (MESSAGEFILTERSTACK_SIZE_MAX). */
const MAX_FILTERS = 5;
/** 1014 Bad Gateway (RFC 6455 registry): the origin failed or answered something unusable. */
const CLOSE_ORIGIN_FAILED = 1014;
const CLOSE_INTERNAL = 1011;
/** 1008 Policy Violation: the client broke the route's message limit. */
const CLOSE_POLICY_VIOLATION = 1008;
const DISCONNECT: WsEvent = { type: 'DISCONNECT' };
const CLOSE_NO_STATUS: WsEvent = { type: 'CLOSE', reason: '' };
// Errors on a socket being torn down have no one left to tell.
const ignoreError = (): void => undefined;

/** The session of a client socket and of its ws object, for the listeners all sessions share. */
const kSession = Symbol('kong-grip.wsSession');
interface Tagged { [kSession]?: WsSession }

function sessionOf(emitter: object): WsSession | undefined {
  return (emitter as Tagged)[kSession];
}

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

export class WsSession implements Subscriber, OriginLinkOwner, KeepAliveMember {
  readonly connectionId = randomUUID();
  private state: State = 'opening';
  private ws: WebSocket | undefined;
  private grip: GripExtension | undefined;
  private readonly socket: Duplex;
  private readonly url: URL;
  private goneLink: GoneLink | undefined;
  private opening: Opening | undefined;
  private readonly link: WsOriginLink;
  private readonly channels = new Set<string>();
  /** Filters of the subscriptions that have some (created with the first). */
  private channelFilters: Map<string, string[]> | undefined;
  private meta: SubscriptionMeta | undefined;
  /** Made into a pino child only when a line is written (lazy-log.ts). */
  private readonly log: HoldLog;
  private readonly startedAt: number;
  /** The keep-alive control message, framed; in idle mode every write restarts the wait. */
  private keepAliveFrame: Buffer | undefined;
  private isKeepAliveIdle = false;
  keepAliveMark = 0;
  keepAliveTicks = 0;
  keepAliveSlot = -1;
  private delayedFrame: Buffer | undefined;
  private delayedTimer: Timer | undefined;
  /** Quota slot and usage meter (Kong mode, metering); ended with the session. */
  private readonly connection: TargetConnection | undefined;
  private readonly usage: ConnectionUsage | undefined;
  /**
   * ws_messages_per_second / ws_burst: a token bucket of client messages (0 = no limit). Plain
   * numbers on the session, refilled when a message comes: no timer, no allocation.
   */
  private readonly ratePerMs: number;
  private readonly burst: number;
  private tokens: number;
  private tokensAt: number;

  constructor(private readonly deps: WsSessionDeps, upgrade: WsUpgrade) {
    this.startedAt = deps.clock.now();
    this.connection = upgrade.target.connection;
    this.usage = this.connection?.usage;
    const limits = upgrade.target.limits;
    const perSecond = limits?.wsMessagesPerSecond ?? 0;
    this.ratePerMs = perSecond / 1000;
    // ws_burst 0: a burst of one second's worth.
    this.burst = perSecond === 0 ? 0 : limits?.wsBurst || perSecond;
    this.tokens = this.burst;
    this.tokensAt = this.startedAt;
    this.socket = upgrade.socket;
    this.url = upgrade.target.url;
    this.opening = { req: upgrade.req, head: upgrade.head, clientHeaders: upgrade.target.headers, earlyData: undefined, earlyBytes: 0 };
    this.log = new LazyChildLog(deps.log, 'ws', this.connectionId, upgrade.target.url);
    this.link = new WsOriginLink(deps, this, upgrade.target.url, upgrade.target.headers, this.connectionId, this.log);
  }

  start(): void {
    (this.socket as Duplex & Tagged)[kSession] = this;
    this.socket.on('error', WsSession.onSocketError);
    this.socket.on('close', WsSession.onSocketGone); // not once(): that wraps it in a closure per socket
    // Read while the origin decides, or a client that leaves (FIN) goes unnoticed; anything it
    // sends meanwhile is kept for ws.
    this.socket.on('end', WsSession.onSocketGone);
    this.socket.on('data', WsSession.onEarlyData);
    this.deps.metrics.connections.inc({ kind: 'ws' });
    this.link.open();
  }

  // ── listeners shared by every session ──────────────────────────────────────

  private static onSocketError(this: Duplex, err: Error): void {
    sessionOf(this)?.log.debug({ err: err.message }, 'client socket error');
  }

  private static onSocketGone(this: Duplex): void {
    sessionOf(this)?.close('client_gone', TERMINATE, DISCONNECT);
  }

  private static onEarlyData(this: Duplex, chunk: Buffer): void {
    sessionOf(this)?.keepEarlyData(chunk);
  }

  private static onWsMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    sessionOf(this)?.fromClient(isBinary ? { type: 'BINARY', content: data } : { type: 'TEXT', content: data });
  }

  private static onWsPing(this: WebSocket, data: Buffer): void {
    sessionOf(this)?.fromClient({ type: 'PING', content: data });
  }

  private static onWsPong(this: WebSocket, data: Buffer): void {
    sessionOf(this)?.fromClient({ type: 'PONG', content: data });
  }

  private static onWsError(this: WebSocket, err: Error): void {
    sessionOf(this)?.log.info({ err: err.message }, 'client protocol error');
  }

  private static onWsClose(this: WebSocket, code: number, reason: Buffer): void {
    sessionOf(this)?.clientClosed(code, reason.toString('utf8'));
  }

  private static onDelayedDue(this: void, session: WsSession): void {
    session.delayedTimer = undefined;
    session.flushDelayed();
  }

  // ── opening (what the link reports) ────────────────────────────────────────

  originAccepted(headers: HeaderList, events: DecodedWsEvent[]): void {
    this.goneLink = this.goneLinkOf(headers);
    this.accept(headers);
    if (this.isClosed()) return;
    this.handleEvents(events, 1);
  }

  originRefused(refusal: OpenRefusal): void {
    const socket = this.socket;
    this.close(refusal.type === 'refused' ? 'rejected' : 'origin_error', ENDED, undefined);
    this.deps.handshake.refuse(socket, refusal);
  }

  /** Grip-Link rel=gone on the OPEN reply; a malformed one is logged and ignored, not a reason to refuse the client. */
  private goneLinkOf(headers: HeaderList): GoneLink | undefined {
    try {
      const url = parseGoneLink(headers, this.url.href);
      return url === undefined ? undefined : { url, requestUrl: this.url };
    } catch (err) {
      if (!isKgError(err)) throw err;
      this.log.warn({ err: err.message }, 'Grip-Link on the OPEN reply ignored');
      return undefined;
    }
  }

  private keepEarlyData(chunk: Buffer): void {
    const opening = this.opening;
    if (opening === undefined) return;
    opening.earlyBytes += chunk.length;
    if (opening.earlyBytes > this.deps.ws.maxMessageBytes) {
      this.close('client_gone', TERMINATE, DISCONNECT);
      return;
    }
    (opening.earlyData ??= []).push(chunk);
  }

  private accept(originHeaders: HeaderList): void {
    const opening = this.opening as Opening;
    this.opening = undefined;
    this.detachEarlyListeners();
    const head = opening.earlyData === undefined ? opening.head : Buffer.concat([opening.head, ...opening.earlyData]);
    const ws = this.deps.handshake.accept(opening.req, this.socket, head, originHeaders, opening.clientHeaders);
    if (ws === undefined) {
      this.close('client_gone', ENDED, DISCONNECT);
      return;
    }
    this.ws = ws;
    (ws as WebSocket & Tagged)[kSession] = this;
    this.grip = gripExtensionFrom(headerValues(originHeaders, 'Sec-WebSocket-Extensions'));
    ws.on('message', WsSession.onWsMessage);
    // With answerPings, ws answers client pings itself (autoPong) and the origin is not asked.
    if (!this.deps.ws.answerPings) ws.on('ping', WsSession.onWsPing);
    ws.on('pong', WsSession.onWsPong);
    ws.on('error', WsSession.onWsError);
    ws.on('close', WsSession.onWsClose);
    this.state = 'open';
    this.log.debug({ grip: this.grip !== undefined }, 'hold started');
  }

  // ── client → origin ────────────────────────────────────────────────────────

  private fromClient(event: WsEvent): void {
    // After a detach client traffic is dropped (docs/websocket.md); closing still relays until the reply.
    if (this.state !== 'open' && this.state !== 'closing') return;
    if (this.burst > 0 && (event.type === 'TEXT' || event.type === 'BINARY') && !this.takeToken()) {
      this.rateLimited();
      return;
    }
    this.link.send(event);
  }

  /** One message's token from the bucket, refilled for the time since the last one; false when empty. */
  private takeToken(): boolean {
    const now = this.deps.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.tokensAt) * this.ratePerMs);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Over ws_messages_per_second / ws_burst: 1008 (policy violation) to the client, CLOSE with the same to the origin. */
  private rateLimited(): void {
    const reason = truncateCloseReason(`message rate limit exceeded (ws_messages_per_second ${Math.round(this.ratePerMs * 1000)}, ws_burst ${this.burst})`);
    this.deps.metrics.wsRateLimited.inc();
    this.log.info({ code: 'KG_ERR_WS_RATE_LIMITED', burst: this.burst }, 'client over the WebSocket message rate; closed with 1008');
    this.close('rate_limited', { type: 'close', code: CLOSE_POLICY_VIOLATION, reason },
      this.state === 'open' ? { type: 'CLOSE', code: CLOSE_POLICY_VIOLATION, reason } : undefined);
  }

  pauseClient(): void {
    this.ws?.pause();
  }

  resumeClient(): void {
    this.ws?.resume();
  }

  // ── origin → client ────────────────────────────────────────────────────────

  originEvents(events: DecodedWsEvent[]): void {
    this.handleEvents(events, 0);
  }

  originFailed(closeReason: string): void {
    this.close('origin_error', { type: 'close', code: CLOSE_ORIGIN_FAILED, reason: closeReason }, undefined);
  }

  linkFailed(err: unknown): void {
    this.log.error({ err }, 'WebSocket session failed');
    this.close('error', TERMINATE, undefined);
  }

  private handleEvents(events: DecodedWsEvent[], from: number): void {
    // A detach does not stop this loop: Pushpin handles the rest of the same reply (its control
    // channel learns of the detach only after relaying it); later replies are not read (the link
    // is muted). A CLOSE, DISCONNECT or failure does stop it.
    for (let i = from; i < events.length && (this.state === 'open' || this.state === 'detached'); i++) {
      const e = events[i] as DecodedWsEvent;
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
    this.link.mute();
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
        if (this.channels.delete(msg.channel)) {
          this.channelFilters?.delete(msg.channel);
          this.deps.hub.unsubscribe(msg.channel, this);
        }
        return;
      case 'detach':
        this.detach();
        return;
      case 'session':
        this.log.debug('GRIP session ids are not supported; control message ignored');
        return;
      case 'set-meta':
        this.setMeta(msg.name, msg.value);
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
        CLOSE_NO_STATUS);
      return;
    }
    if (this.channels.size >= this.deps.limits.maxChannelsPerConnection) {
      // Pushpin ignores subscriptions beyond connection_subscription_max.
      this.deps.metrics.channelsDropped.inc();
      this.log.debug({ channel, max: this.deps.limits.maxChannelsPerConnection }, 'subscription over the per-connection limit ignored');
      return;
    }
    if (hasActiveFilters(filters)) (this.channelFilters ??= new Map()).set(channel, filters);
    this.channels.add(channel);
    this.deps.hub.subscribe(channel, this);
    this.log.debug({ channel }, 'subscribed');
  }

  /** set-meta (docs/websocket.md): a value sets, none deletes. A change over the meta limits is refused (logged) and the connection kept. */
  private setMeta(name: string, value: string | undefined): void {
    this.meta ??= new SubscriptionMeta({ maxKeys: this.deps.limits.maxMetaKeys, maxBytes: this.deps.limits.maxMetaBytes });
    try {
      this.meta.set(name, value);
    } catch (err) {
      if (!(err instanceof MetaLimitError)) throw err;
      this.log.warn({ name, err: err.message }, 'set-meta refused');
    }
  }

  /** The item's content as this session gets it, after its channel's filters; undefined when not for it. */
  private filter(item: PublishItem, contentFilters: readonly string[] | undefined, content: Buffer | undefined): Buffer | undefined {
    // Its channels, none with an id (a WebSocket has no prev-ids), as current Pushpin gives them.
    const prevIds = new Map<string, undefined>();
    for (const c of this.channels) prevIds.set(c, undefined);
    const ctx: FilterContext = { subMeta: this.meta?.view() ?? NO_META, pubMeta: item.meta, prevIds };
    const outcome = filterItem(this.channelFilters?.get(item.channel) ?? NO_FILTERS, contentFilters, ctx, content);
    if (outcome.type === 'send') return outcome.content;
    if (outcome.type === 'error') reportFilterError(this.deps, item, outcome.message);
    return undefined;
  }

  private detach(): void {
    if (this.state !== 'open') return;
    // Close the origin side (CLOSE without status, after anything pending); keep the client.
    this.state = 'detached';
    this.link.detach();
  }

  /**
   * The hub's first-subscription refresh (docs/grip.md, "Long-polling"): a channel of this session just went live on
   * the bus, so items may have been missed. As for a published `refresh` action, the origin gets
   * a WebSocket-over-HTTP request (empty if nothing is pending) and can push what was missed.
   */
  refresh(): void {
    if (this.state === 'open') this.link.refresh();
  }

  /** Published items from the hub. Hot path: no allocation per subscriber. */
  deliver(item: PublishItem): void {
    const format = item.formats['ws-message'];
    if (format === undefined || (this.state !== 'open' && this.state !== 'detached')) return;
    let filtered: Buffer | undefined;
    if (this.channelFilters !== undefined || format.contentFilters !== undefined) {
      filtered = this.filter(item, format.contentFilters, format.action === 'send' ? format.content : undefined);
      if (filtered === undefined) return;
    }
    switch (format.action) {
      case 'send': {
        // Content a filter rewrote is framed for this session alone.
        const frame = filtered === undefined || filtered === format.content ? publishFrame(format) : encodeFrame(opcodeOf(format.type), filtered);
        if (frame === undefined) {
          this.log.debug({ channel: item.channel }, 'published control frame over 125 bytes dropped');
          return;
        }
        if (this.write(frame)) {
          this.deps.countSent();
          this.usage?.delivered(item.channel, (filtered ?? format.content).length);
        }
        return;
      }
      case 'close': {
        const code = format.code !== undefined && isSendableCloseCode(format.code) ? format.code : undefined;
        this.close('closed_by_publish', { type: 'close', code, reason: format.reason ?? '' },
          this.state === 'open' ? CLOSE_NO_STATUS : undefined);
        return;
      }
      case 'refresh':
        this.refresh();
        return;
      case 'hint':
        return; // parsed but meaningless for WebSockets (docs/grip.md, "Publishing")
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
    if (this.isKeepAliveIdle) this.keepAliveMark = this.deps.keepAlives.currentTick();
    if (this.socket.writableLength > this.deps.limits.maxQueueBytes) {
      this.log.warn({ queuedBytes: this.socket.writableLength }, 'slow consumer dropped');
      this.close('slow_consumer', TERMINATE, this.state === 'open' ? DISCONNECT : undefined);
      return false;
    }
    return true;
  }

  /** Idle mode: sent only if nothing went to the client for the whole timeout; interval mode: every timeout. */
  private setClientKeepAlive(message: WsClientMessage | undefined, timeoutSec: number, mode: 'idle' | 'interval'): void {
    this.deps.keepAlives.remove(this);
    this.keepAliveFrame = undefined;
    this.isKeepAliveIdle = false;
    if (message === undefined) return;
    const frame = encodeFrame(opcodeOf(message.type), message.content);
    if (frame === undefined) {
      this.log.debug('keep-alive control frame over 125 bytes ignored');
      return;
    }
    this.keepAliveFrame = frame;
    this.isKeepAliveIdle = mode === 'idle';
    this.deps.keepAlives.add(this, timeoutSec * 1000);
  }

  /** The client keep-alive is due (called by the wheel). */
  sendKeepAlive(): void {
    if (this.keepAliveFrame !== undefined) this.write(this.keepAliveFrame);
  }

  /** At most one delayed message: a new one sends the pending one first (docs/websocket.md). */
  private sendDelayed(message: WsClientMessage, timeoutSec: number): void {
    this.flushDelayed();
    const frame = encodeFrame(opcodeOf(message.type), message.content);
    if (frame === undefined) return;
    this.delayedFrame = frame;
    this.delayedTimer = this.deps.clock.setTimeout(WsSession.onDelayedDue, timeoutSec * 1000, this);
  }

  private flushDelayed(): void {
    const frame = this.delayedFrame;
    if (frame === undefined) return;
    this.delayedFrame = undefined;
    this.deps.clock.clearTimeout(this.delayedTimer);
    this.delayedTimer = undefined;
    this.write(frame);
  }

  // ── ending ─────────────────────────────────────────────────────────────────

  /** The client's side finished: a close frame (its own or its reply to ours) or a drop (1006). */
  private clientClosed(code: number, reason: string): void {
    const isClean = code !== 1006;
    const closeEvent: WsEvent = code === 1005 || !isClean ? CLOSE_NO_STATUS : { type: 'CLOSE', code, reason };
    switch (this.state) {
      case 'open':
        this.close(isClean ? 'client_closed' : 'client_gone', ENDED, isClean ? closeEvent : DISCONNECT);
        return;
      case 'closing':
        this.close('origin_closed', ENDED, isClean ? closeEvent : DISCONNECT);
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

  /**
   * Ends the session for `reason` (once). `farewell` goes to the origin afterwards, if given: a
   * CLOSE after the client events still pending, a DISCONNECT alone.
   */
  close(reason: CloseReason, end: ClientEnd = SHUTDOWN_END,
    farewell: WsEvent | undefined = this.state === 'open' || this.state === 'closing' ? DISCONNECT : undefined): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state !== 'opening';
    this.state = 'closed';
    this.releaseDelivery();
    this.opening = undefined;
    this.detachEarlyListeners();
    this.socket.on('error', ignoreError);
    const ws = this.ws;
    if (ws !== undefined) {
      ws.off('message', WsSession.onWsMessage);
      ws.off('ping', WsSession.onWsPing);
      ws.off('pong', WsSession.onWsPong);
      ws.off('close', WsSession.onWsClose);
      // ws's own 'error' handling stays quiet once we stop listening; keep a listener.
      if (end.type === 'terminate') ws.terminate();
      else if (end.type === 'close' && ws.readyState === WS_OPEN) ws.close(end.code, end.code === undefined ? undefined : end.reason);
    } else if (end.type !== 'none') {
      this.socket.destroy();
    }
    this.deps.metrics.connections.dec({ kind: 'ws' });
    this.deps.metrics.holdsClosed.inc({ kind: 'ws', reason });
    const durationSec = (this.deps.clock.now() - this.startedAt) / 1000;
    this.deps.metrics.holdDuration.observe({ kind: 'ws' }, durationSec);
    if (wasOpen) this.log.debug({ reason, durationMs: Math.round(durationSec * 1000) }, 'hold closed');
    this.connection?.end();
    this.deps.onClosed(this);
    this.link.close(farewell);
    if (this.goneLink !== undefined && isGoneEnd(reason)) this.deps.gone.notify(this.goneLink);
  }

  private detachEarlyListeners(): void {
    this.socket.off('error', WsSession.onSocketError);
    this.socket.off('close', WsSession.onSocketGone);
    this.socket.off('end', WsSession.onSocketGone);
    this.socket.off('data', WsSession.onEarlyData);
  }

  /** Subscriptions and client-side timers: nothing more goes to the client. */
  private releaseDelivery(): void {
    for (const channel of this.channels) this.deps.hub.unsubscribe(channel, this);
    this.channels.clear();
    this.channelFilters = undefined;
    this.deps.keepAlives.remove(this);
    this.keepAliveFrame = undefined;
    this.isKeepAliveIdle = false;
    if (this.delayedFrame !== undefined) {
      this.deps.clock.clearTimeout(this.delayedTimer);
      this.delayedTimer = undefined;
      this.delayedFrame = undefined;
    }
  }

  /** State re-read after a call that may close, where narrowing no longer holds. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  get channelCount(): number {
    return this.channels.size;
  }
}
