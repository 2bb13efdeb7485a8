// The example origin: a plain HTTP service that knows nothing about sockets. It answers
// GET /events with GRIP instructions (hold this request as a stream on channel "demo"), serves
// a page that listens to it, and publishes what the page posts to the sidecar's publish API.
import http from 'node:http';
import { readFile } from 'node:fs/promises';

const CHANNEL = 'demo';
const MAX_MESSAGE_BYTES = 2000;
const pagePath = new URL('./page.html', import.meta.url);

/** Builds the SSE event for a chat line; data lines must not contain raw newlines. */
function sseEvent(text) {
  return `data: ${JSON.stringify({ text, at: new Date().toISOString() })}\n\n`;
}

export function createExampleOrigin({ publishUrl }) {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin.invalid');
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(await readFile(pagePath));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/events') {
      res.writeHead(200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        'Grip-Hold': 'stream',
        'Grip-Channel': CHANNEL,
        'Grip-Keep-Alive': ':\\n\\n; format=cstring; timeout=20',
      });
      res.end(sseEvent('connected'));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/poll') {
      // Long-polling variant: answered by the next published message, or empty after 30 s.
      res.writeHead(200, { 'Content-Type': 'application/json', 'Grip-Hold': 'response', 'Grip-Channel': CHANNEL, 'Grip-Timeout': '30' });
      res.end('{"messages":[]}\n');
      return;
    }
    if (req.method === 'POST' && url.pathname === '/say') {
      const chunks = [];
      let size = 0;
      for await (const chunk of req) {
        size += chunk.length;
        if (size > MAX_MESSAGE_BYTES) break;
        chunks.push(chunk);
      }
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (size > MAX_MESSAGE_BYTES || text === '') {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(`message must be 1-${MAX_MESSAGE_BYTES} bytes\n`);
        return;
      }
      const item = {
        channel: CHANNEL,
        formats: {
          'http-stream': { content: sseEvent(text) },
          'http-response': { body: `${JSON.stringify({ messages: [text] })}\n` },
          'ws-message': { content: text },
        },
      };
      const published = await fetch(publishUrl, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ items: [item] }),
      }).then((r) => r.ok, () => false);
      res.writeHead(published ? 204 : 502);
      res.end();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
  });
}
