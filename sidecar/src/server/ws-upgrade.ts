import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Limits, WsSettings } from '../config.js';
import { headerListFromRaw, upgradeRequestProblem } from '../grip/ws-headers.js';
import type { Clock } from '../holds/clock.js';
import type { KeepAliveWheel } from '../holds/keep-alive-wheel.js';
import { WsSession, type WsSessionDeps } from '../holds/ws-session.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { GoneNotifier } from '../origin/gone-link.js';
import type { PostWsEvents } from '../origin/ws-origin.js';
import type { RequestTarget } from './request-target.js';
import { WsHandshake } from './ws-handshake.js';

// The client-facing side of WebSocket upgrades: says what is wrong with a handshake, starts a
// WsSession for an admitted upgrade, which asks the origin (OPEN over HTTP) and has the upgrade
// answered by WsHandshake (101 or the origin's refusal) once the origin has decided.

export interface WsUpgradeDeps {
  hub: Hub;
  post: PostWsEvents;
  metrics: Metrics;
  log: Logger;
  limits: Limits;
  ws: WsSettings;
  /** The keep-alive wheel all holds share (client keep-alives, the origin's Keep-Alive-Interval). */
  keepAlives: KeepAliveWheel;
  /** The timers of every session and origin link, and the shutdown grace (the clock all holds share). */
  clock: Clock;
  /** Gone links of sessions the origin gave one (Grip-Link rel=gone on its OPEN reply). */
  gone: GoneNotifier;
  /** Runs once for every session started, when it ends (the client server's admission count). */
  onSessionEnded: () => void;
}

/** Shutdown waits this long for clients to answer the close frame before cutting them off. */
const SHUTDOWN_GRACE_MS = 1000;

export class WsUpgradeHandler {
  private readonly handshake: WsHandshake;
  private readonly sessions = new Set<WsSession>();
  /** What every session gets, built once. */
  private readonly sessionDeps: WsSessionDeps;
  /** Deliveries since the last flush to messagesSent: one metric update per tick, not per socket. */
  private sentSinceFlush = 0;
  private readonly flushSent = (): void => {
    this.deps.metrics.messagesSent.inc({ kind: 'ws' }, this.sentSinceFlush);
    this.sentSinceFlush = 0;
  };
  private readonly countSent = (): void => {
    if (this.sentSinceFlush++ === 0) setImmediate(this.flushSent);
  };
  private readonly onSessionClosed = (session: WsSession): void => {
    this.sessions.delete(session);
    this.deps.onSessionEnded();
  };
  /** Set by drain(): resolves once every client socket has gone. */
  private drained: Promise<void> | undefined;

  constructor(private readonly deps: WsUpgradeDeps) {
    this.handshake = new WsHandshake(deps.ws);
    this.sessionDeps = {
      hub: deps.hub, post: deps.post, metrics: deps.metrics, log: deps.log, limits: deps.limits, ws: deps.ws,
      keepAlives: deps.keepAlives, countSent: this.countSent, handshake: this.handshake, clock: deps.clock,
      gone: deps.gone, onClosed: this.onSessionClosed,
    };
  }

  /** What is wrong with an upgrade request's handshake (answered with 400), if anything. */
  handshakeProblem(req: IncomingMessage): string | undefined {
    return upgradeRequestProblem(req.method, headerListFromRaw(req.rawHeaders));
  }

  /**
   * Starts the session of an admitted upgrade (the client server has checked the handshake,
   * admitted and routed it); deps.onSessionEnded runs once when the session ends.
   */
  start(req: IncomingMessage, socket: Duplex, head: Buffer, target: RequestTarget): void {
    const session = new WsSession(this.sessionDeps, { req, socket, head, target });
    this.sessions.add(session);
    session.start();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Shutdown, first step (the admission refuses new upgrades): closes every session with 1012
   * (Service Restart, so clients reconnect); resolves once every client has answered and gone.
   */
  drain(): Promise<void> {
    if (this.drained === undefined) {
      for (const session of [...this.sessions]) session.close('shutdown');
      this.drained = this.handshake.closed();
    }
    return this.drained;
  }

  /** Drains, and cuts off the clients that have not gone after `graceMs`. */
  async close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    const drained = this.drain();
    const deadline = this.deps.clock.setTimeout(() => this.handshake.terminateAll(), graceMs);
    await drained;
    this.deps.clock.clearTimeout(deadline);
  }
}
