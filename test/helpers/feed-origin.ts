import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttp } from './http.js';

// A plain origin for the reliability tests, answering by hand (no Grip-Sig check):
//   GET /sse?ch=X   stream hold on X (SSE)
//   GET /poll?ch=X  long-poll on X whose timeout response is "timeout body\n"
//   GET /slow       a non-GRIP response that sends one chunk and never ends
//   POST (any)      WebSocket-over-HTTP: OPEN is accepted and subscribed to `wsChannel` by a
//                   GRIP control message; other events get an empty reply

export function startFeedOrigin(options: { wsChannel?: string } = {}) {
  const wsChannel = options.wsChannel ?? 'feed';
  return listenHttp((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      const url = new URL(req.url ?? '/', 'http://x');
      const channel = url.searchParams.get('ch') ?? 'feed';
      switch (url.pathname) {
        case '/sse':
          res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Grip-Hold': 'stream', 'Grip-Channel': channel });
          res.end('event: open\ndata:\n\n');
          return;
        case '/poll':
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Grip-Hold': 'response', 'Grip-Channel': channel, 'Grip-Timeout': '120' });
          res.end('timeout body\n');
          return;
        case '/slow':
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.write('first chunk\n');
          return;
        default:
          res.writeHead(404);
          res.end();
          return;
      }
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/websocket-events', 'Sec-WebSocket-Extensions': 'grip' });
      if (!Buffer.concat(chunks).toString('latin1').startsWith('OPEN')) {
        res.end();
        return;
      }
      const subscribe = `c:${JSON.stringify({ type: 'subscribe', channel: wsChannel })}`;
      res.end(`OPEN\r\nTEXT ${Buffer.byteLength(subscribe).toString(16)}\r\n${subscribe}\r\n`);
    });
  });
}
