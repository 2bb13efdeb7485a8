import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeWebSocketEvents, type WebSocketContext } from '@fanoutio/grip';
import { ServeGrip } from '@fanoutio/serve-grip';
import WebSocket from 'ws';
import { TEST_SIG_KEY } from './grip-origin.js';

/** One WebSocket-over-HTTP POST as the origin received it. */
export interface SeenWsRequest {
  url: string;
  headers: IncomingMessage['headers'];
  isSigned: boolean;
  /** Decoded events: type, and content as UTF-8 (CLOSE content as code + reason). */
  events: Array<{ type: string; content?: string; code?: number }>;
  bodyLength: number;
}

export type WsHandler = (ws: WebSocketContext, req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * An origin written the way users write one for Pushpin's WebSocket-over-HTTP: @fanoutio/serve-grip
 * validates Grip-Sig and builds a WebSocketContext from the POST; the handler reads the client's
 * messages from it and queues replies. Every POST is recorded and can be awaited.
 */
export async function startWsOrigin(handler: WsHandler, options: {
  /** Answer by hand instead of through serve-grip when this returns true. */
  raw?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean;
  /** Listen on this port (to bring an origin back where it was). */
  port?: number;
} = {}) {
  const serveGrip = new ServeGrip({
    grip: { control_uri: 'http://127.0.0.1:1/', verify_key: TEST_SIG_KEY, verify_iss: 'pushpin' },
    gripProxyRequired: true,
  });
  const seen: SeenWsRequest[] = [];
  let waiters: Array<() => void> = [];
  const record = (req: IncomingMessage, body: Buffer, isSigned: boolean, events: SeenWsRequest['events']): void => {
    seen.push({ url: req.url ?? '', headers: req.headers, isSigned, events, bodyLength: body.length });
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const server = await listenOn(options.port ?? 0, async (req, res) => {
    const chunks: Buffer[] = [];
    // serve-grip reads the body itself; listen alongside it to record the raw events.
    req.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((resolve) => req.once('end', resolve));
    const ran = options.raw === undefined ? serveGrip.run(req, res) : Promise.resolve(true);
    await ended;
    const body = Buffer.concat(chunks);
    let events: SeenWsRequest['events'] = [];
    try {
      events = decodeWebSocketEvents(new Uint8Array(body)).map((e) => {
        const c = e.getContent();
        const bytes = c === undefined || c === null ? undefined : Buffer.from(c as Uint8Array);
        if (e.getType() === 'CLOSE' && bytes !== undefined && bytes.length >= 2) {
          return { type: 'CLOSE', code: bytes.readUInt16BE(0), content: bytes.subarray(2).toString('utf8') };
        }
        return bytes === undefined ? { type: e.getType() } : { type: e.getType(), content: bytes.toString('utf8') };
      });
    } catch {
      events = [{ type: 'UNDECODABLE' }];
    }
    if (options.raw !== undefined) {
      record(req, body, false, events);
      if (options.raw(req, res, body)) return;
    }
    const ok = await ran;
    if (options.raw === undefined) record(req, body, req.grip?.isSigned ?? false, events);
    if (!ok) return;
    const ws = req.grip?.wsContext;
    if (ws === undefined || ws === null) {
      res.writeHead(400);
      res.end('not a WebSocket-over-HTTP request\n');
      return;
    }
    await handler(ws, req, res);
  });
  return {
    ...server,
    seen,
    /** Resolves once a request matching `predicate` has arrived (checked on every request). */
    async waitFor(predicate: (r: SeenWsRequest) => boolean): Promise<SeenWsRequest> {
      for (;;) {
        const found = seen.find(predicate);
        if (found !== undefined) return found;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    /** Resolves with the first request carrying an event of `type`. */
    waitForEvent(type: string): Promise<SeenWsRequest> {
      return this.waitFor((r) => r.events.some((e) => e.type === type));
    },
  };
}

/**
 * The usual serve-grip WebSocket handler: accept and subscribe on OPEN, echo text back with the
 * `m:` prefix, answer a close with a close. Messages starting with "!" are origin commands used
 * by tests (see `commands`).
 */
export function echoHandler(options: { onOpen?: (ws: WebSocketContext) => void; commands?: Record<string, (ws: WebSocketContext) => void> } = {}): WsHandler {
  return (ws, _req, res) => {
    if (ws.isOpening()) {
      ws.accept();
      options.onOpen?.(ws);
    }
    try {
      while (ws.canRecv()) {
        const message = ws.recv();
        if (message === null) {
          ws.close(1000);
          break;
        }
        const command = options.commands?.[message];
        if (command !== undefined) command(ws);
        else ws.send(message);
      }
    } catch {
      // recv() throws on DISCONNECT: the client is gone; nothing to answer.
    }
    res.end();
  };
}

const logs = new WeakMap<WebSocket, MessageLog>();

/** The messages a client from `connect` received, recorded from before the handshake completed. */
export function logOf(ws: WebSocket): MessageLog {
  const log = logs.get(ws);
  if (log === undefined) throw new Error('not a client from connect()');
  return log;
}

/**
 * A ws client connected through the sidecar; rejects with the HTTP status if refused. Its
 * messages are recorded from the start (see logOf): messages may arrive with the 101 itself.
 */
export function connect(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), options.protocols, options);
    logs.set(ws, new MessageLog(ws));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body })));
    });
    ws.once('error', reject);
  });
}

/** Collects a client's text messages; each can be awaited. */
export class MessageLog {
  readonly messages: string[] = [];
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.messages.push(isBinary ? `bin:${data.toString('hex')}` : data.toString('utf8'));
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  async waitForCount(n: number): Promise<string[]> {
    while (this.messages.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.messages;
  }
}

/** Resolves with the close code and reason the client saw. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed'));
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString('utf8') })));
}

async function listenOn(port: number, handler: http.RequestListener) {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    server, port: bound, url: `http://127.0.0.1:${bound}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
