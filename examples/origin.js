// The example origin: a plain HTTP service that knows nothing about sockets. It answers
// GET /events with GRIP instructions (hold this request as a stream on channel "demo"), serves
// a page that listens to it, publishes what the page posts to the sidecar's publish API, and runs
// a WebSocket chat at /ws over WebSocket-over-HTTP. Node built-ins only: docker-compose.yml runs
// this folder on a bare node image.
import http from 'node:http';
import { readFile } from 'node:fs/promises';

const CHANNEL = 'demo';
const CHAT_CHANNEL = 'chat';
const MAX_MESSAGE_BYTES = 2000;
const MAX_WS_BODY_BYTES = 300_000; // the sidecar batches client messages into one request
const pagePath = new URL('./page.html', import.meta.url);

/** A chat line as JSON: what SSE events and WebSocket messages carry. */
function chatLine(text) {
  return JSON.stringify({ text, at: new Date().toISOString() });
}

/** Builds the SSE event for a chat line; data lines must not contain raw newlines. */
function sseEvent(text) {
  return `data: ${chatLine(text)}\n\n`;
}

/** The request body, or undefined if it is over `max` bytes. */
async function readBody(req, max) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

// WebSocket-over-HTTP (application/websocket-events): each event is `TYPE\r\n`, or
// `TYPE <hex length>\r\n<content>\r\n` when it has content (TEXT, BINARY, CLOSE, PING, PONG).

function decodeWsEvents(body) {
  const events = [];
  let at = 0;
  while (at < body.length) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) throw new Error('truncated event line');
    const [type, hex] = body.toString('latin1', at, eol).split(' ');
    at = eol + 2;
    let content = Buffer.alloc(0);
    if (hex !== undefined) {
      const length = /^[0-9a-fA-F]{1,8}$/.test(hex) ? parseInt(hex, 16) : -1;
      if (length < 0 || at + length + 2 > body.length) throw new Error(`bad ${type} content length`);
      content = body.subarray(at, at + length);
      at += length + 2;
    }
    events.push({ type, content });
  }
  return events;
}

function wsEvent(type, content) {
  if (content === undefined) return Buffer.from(`${type}\r\n`);
  const bytes = Buffer.from(content);
  return Buffer.concat([Buffer.from(`${type} ${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
}

export function createExampleOrigin({ publishUrl }) {
  const publish = (item) => fetch(publishUrl, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ items: [item] }),
  }).then((r) => r.ok, () => false);

  /** The chat: one POST per batch of events from one client WebSocket; the reply is events too. */
  async function chat(req, res) {
    let events;
    try {
      const body = await readBody(req, MAX_WS_BODY_BYTES);
      if (body === undefined) throw new Error(`over ${MAX_WS_BODY_BYTES} bytes`);
      events = decodeWsEvents(body);
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`bad websocket-events body: ${err.message}\n`);
      return;
    }
    const out = [];
    for (const { type, content } of events) {
      if (type === 'OPEN') {
        // Accept with GRIP on: `c:` text is a control message for the sidecar, `m:` text goes to
        // the client (without the prefix), other text is dropped.
        out.push(wsEvent('OPEN'), wsEvent('TEXT', `c:${JSON.stringify({ type: 'subscribe', channel: CHAT_CHANNEL })}`));
        out.push(wsEvent('TEXT', `m:${chatLine(`welcome to #${CHAT_CHANNEL}`)}`));
      } else if (type === 'TEXT') {
        const text = content.toString('utf8').trim();
        if (text === '' || content.length > MAX_MESSAGE_BYTES) {
          out.push(wsEvent('TEXT', `m:${chatLine(`(message must be 1-${MAX_MESSAGE_BYTES} bytes)`)}`));
        } else if (!await publish({ channel: CHAT_CHANNEL, formats: { 'ws-message': { content: chatLine(text) } } })) {
          out.push(wsEvent('TEXT', `m:${chatLine('(not delivered: the publish failed)')}`));
        }
      } else if (type === 'PING') {
        out.push(wsEvent('PONG', content));
      } else if (type === 'CLOSE') {
        out.push(wsEvent('CLOSE', content)); // agree to close with the client's code
      } // BINARY, PONG, DISCONNECT: nothing to do.
    }
    res.writeHead(200, { 'Content-Type': 'application/websocket-events', 'Sec-WebSocket-Extensions': 'grip' });
    res.end(Buffer.concat(out));
  }

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
    if (req.method === 'POST' && url.pathname === '/ws' && req.headers['content-type']?.startsWith('application/websocket-events')) {
      await chat(req, res);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/say') {
      const body = await readBody(req, MAX_MESSAGE_BYTES);
      const text = body?.toString('utf8').trim() ?? '';
      if (text === '') {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(`message must be 1-${MAX_MESSAGE_BYTES} bytes\n`);
        return;
      }
      const published = await publish({
        channel: CHANNEL,
        formats: {
          'http-stream': { content: sseEvent(text) },
          'http-response': { body: `${JSON.stringify({ messages: [text] })}\n` },
          'ws-message': { content: text },
        },
      });
      res.writeHead(published ? 204 : 502);
      res.end();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
  });
}
