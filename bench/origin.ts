// A tiny GRIP origin for the benchmark (plain node:http). Paths, channel from `?channel=`:
//   GET  /sse   stream hold (Server-Sent Events)
//   GET  /poll  response hold (long-polling), Grip-Timeout 120 s
//   POST /ws    WebSocket-over-HTTP: answers OPEN with OPEN + a `subscribe` control message
//   GET  /      200 "bench origin" (readiness through a proxy)
//   GET  /_stats (direct only) request counters as JSON; the herd scenario waits on them
// Run directly (`tsx bench/origin.ts [--port N]`) it prints {"port":N} on stdout, so the bench
// can run it in its own process and keep it off the measuring process's event loop.

import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { monotonicMs } from './wire/message.js';

export interface OriginStats {
  sse: number;
  poll: number;
  wsOpen: number;
  wsOther: number;
  other: number;
  /** Monotonic ms of the latest /poll request (0 = none yet). */
  lastPollAtMs: number;
  nowMs: number;
}

export interface RunningOrigin {
  port: number;
  stats(): OriginStats;
  close(): Promise<void>;
}

const WS_EVENTS = 'application/websocket-events';

export async function startOrigin(opts: { port?: number; host?: string } = {}): Promise<RunningOrigin> {
  const counters: OriginStats = { sse: 0, poll: 0, wsOpen: 0, wsOther: 0, other: 0, lastPollAtMs: 0, nowMs: 0 };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    const channel = url.searchParams.get('channel') ?? 'bench';
    switch (url.pathname) {
      case '/sse':
        counters.sse++;
        drain(req);
        res.writeHead(200, {
          'Content-Type': 'text/event-stream',
          'Cache-Control': 'no-cache',
          'Grip-Hold': 'stream',
          'Grip-Channel': channel,
        });
        res.end(': open\n\n');
        return;
      case '/poll':
        counters.poll++;
        counters.lastPollAtMs = monotonicMs();
        drain(req);
        res.writeHead(200, {
          'Content-Type': 'text/plain',
          'Grip-Hold': 'response',
          'Grip-Channel': channel,
          'Grip-Timeout': '120',
        });
        res.end('timeout\n');
        return;
      case '/ws':
        handleWsOverHttp(req, res, channel, counters);
        return;
      case '/_stats':
        drain(req);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ...counters, nowMs: monotonicMs() }));
        return;
      default:
        counters.other++;
        drain(req);
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('bench origin\n');
    }
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', backlog: 4096 }, () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('origin: no TCP address');
  return {
    port: addr.port,
    stats: () => ({ ...counters, nowMs: monotonicMs() }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function drain(req: http.IncomingMessage): void {
  req.resume();
}

function handleWsOverHttp(req: http.IncomingMessage, res: http.ServerResponse, channel: string, counters: OriginStats): void {
  const parts: Buffer[] = [];
  req.on('data', (b: Buffer) => parts.push(b));
  req.on('end', () => {
    let events: string[];
    try {
      events = parseWsEventTypes(Buffer.concat(parts).toString('latin1'));
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`${(err as Error).message}\n`);
      return;
    }
    const headers: Record<string, string> = { 'Content-Type': WS_EVENTS };
    let body = '';
    if (events.includes('OPEN')) {
      counters.wsOpen++;
      headers['Sec-WebSocket-Extensions'] = 'grip';
      const control = `c:${JSON.stringify({ type: 'subscribe', channel })}`;
      body = `OPEN\r\nTEXT ${Buffer.byteLength(control).toString(16)}\r\n${control}\r\n`;
    } else {
      counters.wsOther++;
      // Answer a client close with a normal close; pings with pongs; everything else needs nothing.
      if (events.includes('CLOSE')) body = 'CLOSE 2\r\n\x03\xe8\r\n';
      else if (events.includes('PING')) body = 'PONG\r\n';
    }
    const buf = Buffer.from(body, 'latin1');
    headers['Content-Length'] = String(buf.length);
    res.writeHead(200, headers);
    res.end(buf);
  });
}

/** Event types in a WebSocket-over-HTTP body (`TYPE[ HEXLEN]\r\n[payload\r\n]`…). */
export function parseWsEventTypes(body: string): string[] {
  const types: string[] = [];
  let i = 0;
  while (i < body.length) {
    const eol = body.indexOf('\r\n', i);
    if (eol < 0) throw new Error('websocket-events: line without CRLF');
    const line = body.slice(i, eol);
    const space = line.indexOf(' ');
    const type = space < 0 ? line : line.slice(0, space);
    types.push(type);
    i = eol + 2;
    if (space >= 0) {
      const len = parseInt(line.slice(space + 1), 16);
      if (!Number.isFinite(len) || len < 0) throw new Error(`websocket-events: bad length in ${JSON.stringify(line)}`);
      i += len + 2;
    }
  }
  return types;
}

function parsePortArg(argv: string[]): number {
  const i = argv.indexOf('--port');
  if (i < 0) return 0;
  const port = Number(argv[i + 1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer 0-65535, got ${argv[i + 1]}`);
  return port;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const origin = await startOrigin({ port: parsePortArg(process.argv.slice(2)) });
  process.stdout.write(`${JSON.stringify({ port: origin.port })}\n`);
  const stop = (): void => void origin.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
