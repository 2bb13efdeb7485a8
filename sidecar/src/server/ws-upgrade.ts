import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Limits, WsSettings } from '../config.js';
import { isKgError } from '../errors.js';
import { headerListFromRaw, upgradeRequestProblem } from '../grip/ws-headers.js';
import type { HeaderList } from '../grip/types.js';
import { WsSession } from '../holds/ws-session.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { PostWsEvents } from '../origin/ws-origin.js';

// The client-facing side of WebSocket upgrades: checks the handshake, starts a WsSession that
// asks the origin (OPEN over HTTP), and completes the upgrade with `ws` in noServer mode only
// when the origin accepts. `ws` parses client frames and runs the closing handshake; sessions
// write data frames to the socket themselves so one published frame serves every client.

export interface WsUpgradeDeps {
  hub: Hub;
  post: PostWsEvents;
  metrics: Metrics;
  log: Logger;
  limits: Limits;
  ws: WsSettings;
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
  private readonly onSessionClosed = (session: WsSession): void => { this.sessions.delete(session); };
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

  /**
   * Handles the http.Server 'upgrade' event. `resolveTarget` applies the same checks and routing
   * as plain requests (handoff, origin); a KgError it throws is answered with its status.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, resolveTarget: () => WsTarget): void {
    const problem = upgradeRequestProblem(req.method, headerListFromRaw(req.rawHeaders));
    if (problem !== undefined) {
      this.deps.log.info({ problem }, 'bad WebSocket handshake');
      refuse(socket, 400, `${problem}\n`);
      return;
    }
    if (this.drained !== undefined) {
      this.deps.metrics.requests.inc({ outcome: 'KG_ERR_SHUTTING_DOWN' });
      refuse(socket, 503, 'Service Unavailable: shutting down.\n');
      return;
    }
    if (this.sessions.size >= this.deps.limits.maxConnections) {
      this.deps.metrics.requests.inc({ outcome: 'over_limit' });
      refuse(socket, 503, 'Service Unavailable: connection limit reached.\n');
      return;
    }
    let target: WsTarget;
    try {
      target = resolveTarget();
    } catch (err) {
      if (!isKgError(err)) throw err;
      this.deps.metrics.requests.inc({ outcome: err.code });
      refuse(socket, err.status || 400, `${err.message}\n`);
      return;
    }
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
   * Shutdown, first step: refuses new upgrades and closes every session with 1012 (Service
   * Restart, so clients reconnect); resolves once every client has answered and gone.
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

function refuse(socket: Duplex, status: number, text: string): void {
  const body = Buffer.from(text);
  socket.on('error', () => undefined);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(Buffer.concat([
    Buffer.from(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`, 'latin1'),
    body,
  ]));
}
