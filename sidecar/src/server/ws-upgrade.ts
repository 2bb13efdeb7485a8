import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Limits, WsSettings } from '../config.js';
import { headerListFromRaw, upgradeRequestProblem } from '../grip/ws-headers.js';
import type { HeaderList } from '../grip/types.js';
import { WsSession } from '../holds/ws-session.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { PostWsEvents } from '../origin/ws-origin.js';

// The client-facing side of WebSocket upgrades: says what is wrong with a handshake, starts a
// WsSession for an admitted upgrade, which asks the origin (OPEN over HTTP), and completes the upgrade with `ws` in noServer mode only
// when the origin accepts. `ws` parses client frames and runs the closing handshake; sessions
// write data frames to the socket themselves so one published frame serves every client.

export interface WsUpgradeDeps {
  hub: Hub;
  post: PostWsEvents;
  metrics: Metrics;
  log: Logger;
  limits: Limits;
  ws: WsSettings;
  /** Runs once for every session started, when it ends (the client server's admission count). */
  onSessionEnded: () => void;
}

export interface WsTarget {
  url: URL;
  /** The client's handshake headers, cleaned by the forwarding rules. */
  headers: HeaderList;
}

interface PendingAccept {
  headers: HeaderList;
  protocol: string | undefined;
}

/** Shutdown waits this long for clients to answer the close frame before cutting them off. */
const SHUTDOWN_GRACE_MS = 1000;

export class WsUpgradeHandler {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<WsSession>();
  /** 101 headers and subprotocol for the upgrade being completed, handed to ws's hooks. */
  private readonly accepting = new WeakMap<IncomingMessage, PendingAccept>();
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
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: true,
      // Frames are written straight to the socket; compression would reorder them.
      perMessageDeflate: false,
      // Pushpin forwards client pings to the origin rather than answering them.
      autoPong: deps.ws.answerPings,
      maxPayload: deps.ws.maxMessageBytes,
      handleProtocols: (_offered, req) => this.accepting.get(req)?.protocol ?? false,
    });
    this.wss.on('headers', (lines: string[], req: IncomingMessage) => {
      for (const [k, v] of this.accepting.get(req)?.headers ?? []) lines.push(`${k}: ${v}`);
    });
  }

  /** What is wrong with an upgrade request's handshake (answered with 400), if anything. */
  handshakeProblem(req: IncomingMessage): string | undefined {
    return upgradeRequestProblem(req.method, headerListFromRaw(req.rawHeaders));
  }

  /**
   * Starts the session of an admitted upgrade (the client server has checked the handshake,
   * admitted and routed it); deps.onSessionEnded runs once when the session ends.
   */
  start(req: IncomingMessage, socket: Duplex, head: Buffer, target: WsTarget): void {
    const session = new WsSession(
      { ...this.deps, countSent: this.countSent },
      {
        req, socket, head, target,
        accept: (headers, protocol, fullHead) => this.complete(req, socket, fullHead, headers, protocol),
        onClosed: this.onSessionClosed,
      },
    );
    this.sessions.add(session);
    session.start();
  }

  private complete(req: IncomingMessage, socket: Duplex, head: Buffer, headers: HeaderList, protocol: string | undefined): WebSocket | undefined {
    this.accepting.set(req, { headers, protocol });
    let accepted: WebSocket | undefined;
    try {
      // Synchronous without verifyClient: the callback runs before handleUpgrade returns, or
      // not at all when ws had to drop a socket the client already closed.
      this.wss.handleUpgrade(req, socket, head, (ws) => { accepted = ws; });
    } finally {
      this.accepting.delete(req);
    }
    return accepted;
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
      this.drained = new Promise<void>((resolve) => this.wss.close(() => resolve()));
    }
    return this.drained;
  }

  /** Drains, and cuts off the clients that have not gone after `graceMs`. */
  async close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    const drained = this.drain();
    const deadline = setTimeout(() => { for (const ws of this.wss.clients) ws.terminate(); }, graceMs);
    await drained;
    clearTimeout(deadline);
  }
}

