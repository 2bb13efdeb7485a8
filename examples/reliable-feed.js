// Example 4, a feed that loses nothing, not even across a sidecar restart: SSE on channel "feed",
// every event with an SSE id. The origin keeps the last events itself (npm start's in-process bus
// keeps nothing), so a reader that comes back says where it stopped and gets what it missed:
//   - EventSource reconnecting after the sidecar went away: the Last-Event-ID header;
//   - the page opening a new EventSource (after an error that closed the old one): ?lastEventId=;
//   - the sidecar recovering a gap or an idle stream: it fetches the next link (Grip-Link) with
//     Grip-Last: feed; last-id=<id>.
// GET /events/feed answers with what the reader lacks and holds the stream; POST /events/feed
// stores an event and publishes it (id and prev-id, so the sidecar sees any gap).
import { createEventStore } from './event-store.js';
import { gripLastId, line, readText, sendJson } from './http-util.js';

const CHANNEL = 'feed';
const KEPT_EVENTS = 100;
/** The reconnect delay an EventSource uses after the stream ends (the browser default is about 3 s). */
const RETRY_MS = 1000;
/** A reader whose stream has been silent this long is checked against the store (the next link). */
const IDLE_CHECK_SECONDS = 120;

const sseOf = (e) => `id: ${e.id}\ndata: ${line(e.text, { at: e.at })}\n\n`;

export function createReliableFeed({ publish, store = createEventStore({ max: KEPT_EVENTS }) }) {
  return {
    /** GET /events/feed */
    read(req, res, url) {
      const isNextLink = req.headers['grip-last'] !== undefined;
      const lastEventId = req.headers['last-event-id'];
      const from = gripLastId(req, CHANNEL)
        ?? (typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : undefined)
        ?? url.searchParams.get('lastEventId') ?? undefined;
      const { events, isReset } = store.after(from);
      let body = isNextLink ? '' : `retry: ${RETRY_MS}\n\n`;
      // The reader's id is from an earlier run of this origin or older than what is kept.
      if (isReset) body += `event: reset\ndata: ${line(`resumed from an event no longer kept; here are the last ${events.length}`)}\n\n`;
      body += events.map(sseOf).join('');
      res.writeHead(200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        'Grip-Hold': 'stream',
        'Grip-Channel': `${CHANNEL}; prev-id=${store.lastId}`,
        'Grip-Link': `</events/feed>; rel=next; timeout=${IDLE_CHECK_SECONDS}`,
        'Grip-Keep-Alive': ':\\n\\n; format=cstring; timeout=20',
      });
      res.end(body);
    },

    /** POST /events/feed: `{ id, published }`, 201 once stored (readers get it when they resume even if publishing failed). */
    async add(req, res) {
      const { text, problem } = await readText(req);
      if (problem !== undefined) return sendJson(res, 400, { error: problem });
      const event = store.append(text);
      const published = await publish({
        channel: CHANNEL, id: event.id, 'prev-id': event.prevId, formats: { 'http-stream': { content: sseOf(event) } },
      });
      sendJson(res, 201, { id: event.id, published });
    },
  };
}
