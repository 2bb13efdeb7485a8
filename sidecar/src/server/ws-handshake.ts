import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { WsSettings } from '../config.js';
import { headerTextProblem, isHttpToken } from '../grip/http-text.js';
import { firstHeader, handshakeResponseHeaders, offeredSubprotocols, rejectionResponseHeaders } from '../grip/ws-headers.js';
import type { HeaderList } from '../grip/types.js';
import type { OpenRefusal } from '../holds/ws-origin-link.js';
import type { WsHandshakePort } from '../holds/ws-session.js';

// The answer to a client's upgrade once the origin has decided (docs/websocket.md): the 101 completed
// with `ws` in noServer mode (the origin's reply headers and the subprotocol it chose), or the
// origin's refusal (or our 502) written to the raw socket. `ws` then parses client frames and
// runs the closing handshake; sessions write data frames to the socket themselves so one
// published frame serves every client.

interface PendingAccept {
  headers: HeaderList;
  protocol: string | undefined;
}

/** Pushpin relays at most this much of a refusing origin's body to the client. */
const MAX_REFUSAL_BODY_BYTES = 100_000;
const PROXY_ERROR_TEXT = Buffer.from('Error while proxying to origin.\n');
const PROXY_ERROR_HEADERS: HeaderList = [['Content-Type', 'text/plain; charset=utf-8']];

function destroySocket(this: Duplex): void {
  this.destroy();
}

export class WsHandshake implements WsHandshakePort {
  private readonly wss: WebSocketServer;
  /** 101 headers and subprotocol for the upgrade being completed, handed to ws's hooks. */
  private readonly accepting = new WeakMap<IncomingMessage, PendingAccept>();

  constructor(ws: WsSettings) {
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: true,
      // Frames are written straight to the socket; compression would reorder them.
      perMessageDeflate: false,
      // Pushpin forwards client pings to the origin rather than answering them.
      autoPong: ws.answerPings,
      maxPayload: ws.maxMessageBytes,
      handleProtocols: (_offered, req) => this.accepting.get(req)?.protocol ?? false,
    });
    this.wss.on('headers', (lines: string[], req: IncomingMessage) => {
      for (const [k, v] of this.accepting.get(req)?.headers ?? []) lines.push(`${k}: ${v}`);
    });
  }

  /**
   * Completes the upgrade with the origin's accepting reply: its handshake headers, and its
   * Sec-WebSocket-Protocol if the client offered it. Undefined if the client has gone.
   */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, originHeaders: HeaderList, clientHeaders: HeaderList): WebSocket | undefined {
    const chosen = firstHeader(originHeaders, 'Sec-WebSocket-Protocol')?.trim();
    const protocol = chosen !== undefined && offeredSubprotocols(clientHeaders).includes(chosen) ? chosen : undefined;
    this.accepting.set(req, { headers: handshakeResponseHeaders(originHeaders), protocol });
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

  /** Answers the upgrade with the origin's refusal (or our 502) instead of 101; the socket then closes. */
  refuse(socket: Duplex, refusal: OpenRefusal): void {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const { status, reason, headers, body } = refusal.type === 'refused'
      ? {
        status: refusal.reply.status, reason: refusal.reply.reason,
        headers: rejectionResponseHeaders(refusal.reply.headers), body: refusal.reply.body.subarray(0, MAX_REFUSAL_BODY_BYTES),
      }
      : { status: 502, reason: 'Bad Gateway', headers: PROXY_ERROR_HEADERS, body: PROXY_ERROR_TEXT };
    // Written raw, so held to what Node would write (http-text.ts): a reason it could not write
    // gives way to the standard phrase, such a header is dropped.
    const isWritable = reason !== '' && headerTextProblem(reason) === undefined;
    const lines = [`HTTP/1.1 ${status} ${isWritable ? reason : STATUS_CODES[status] ?? ''}`];
    for (const [k, v] of headers) if (isHttpToken(k) && headerTextProblem(v) === undefined) lines.push(`${k}: ${v}`);
    lines.push(`Content-Length: ${body.length}`, 'Connection: close', '', '');
    socket.once('finish', destroySocket);
    socket.end(Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]));
  }

  /** Cuts off every client still connected. */
  terminateAll(): void {
    for (const ws of this.wss.clients) ws.terminate();
  }

  /** Resolves once every client socket has gone (sessions close them). */
  closed(): Promise<void> {
    return new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
