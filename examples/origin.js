// The example origin: a plain HTTP service that knows nothing about sockets. It serves the
// example gallery (page.html) and, for each example, answers with GRIP instructions and publishes
// to the sidecar's publish API:
//   SSE chat          GET /events, POST /say (and GET /poll, the same channel by long-polling)
//   long-poll notes   GET /poll/notes?after=ID, POST /poll/notes
//   WebSocket chat    /ws (WebSocket-over-HTTP: the sidecar POSTs application/websocket-events)
//   reliable feed     GET /events/feed, POST /events/feed
// Every path sits under a route of kong/kong.yml (/, /say, /events, /poll, /ws), so the compose
// stack serves the same gallery through Kong. Node built-ins only: docker-compose.yml runs this
// folder on a bare node image.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { createPublish, sendText } from './http-util.js';
import { createLongPollNotes } from './long-poll-notes.js';
import { createReliableFeed } from './reliable-feed.js';
import { createSseChat } from './sse-chat.js';
import { createWsChat } from './ws-chat.js';

const pagePath = new URL('./page.html', import.meta.url);
// The page links this icon inline; this answers browsers that ask for /favicon.ico anyway.
const FAVICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1a7f64"/></svg>';

export function createExampleOrigin({ publishUrl }) {
  const publish = createPublish(publishUrl);
  const sseChat = createSseChat({ publish });
  const notes = createLongPollNotes({ publish });
  const wsChat = createWsChat({ publish });
  const feed = createReliableFeed({ publish });

  /** Handlers by `METHOD path`. */
  const routes = new Map([
    ['GET /', async (req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' });
      res.end(await readFile(pagePath));
    }],
    ['GET /favicon.ico', (req, res) => {
      res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'max-age=86400' });
      res.end(FAVICON);
    }],
    ['GET /events', sseChat.events],
    ['GET /poll', sseChat.poll],
    ['POST /say', sseChat.say],
    ['GET /poll/notes', notes.read],
    ['POST /poll/notes', notes.add],
    ['GET /events/feed', feed.read],
    ['POST /events/feed', feed.add],
  ]);

  async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://origin.invalid');
    if (req.method === 'POST' && url.pathname === '/ws' && req.headers['content-type']?.startsWith('application/websocket-events')) {
      return wsChat(req, res);
    }
    const route = routes.get(`${req.method} ${url.pathname}`);
    if (route !== undefined) return route(req, res, url);
    const allowed = ['GET', 'POST'].filter((m) => routes.has(`${m} ${url.pathname}`));
    if (allowed.length > 0) {
      res.setHeader('Allow', allowed.join(', '));
      return sendText(res, 405, `${req.method} is not allowed here`);
    }
    sendText(res, 404, 'not found');
  }

  return http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      // A client that went away mid-body, mostly: answer if still possible, never crash.
      if (!res.headersSent) sendText(res, 500, `example origin: ${err.message}`);
      else res.destroy();
    });
  });
}
