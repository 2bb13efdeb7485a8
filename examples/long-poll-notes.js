// Example 2, long-polling without gaps: shared notes on channel "notes". A reader polls
// GET /poll/notes?after=<id of the last note it has> (the first time without). Notes it lacks
// are answered at once; otherwise the sidecar holds the request (GRIP response hold) until the
// next note is published or 25 s pass (then the reader gets no notes and polls again).
// POST /poll/notes adds a note.
//
// No note falls between two polls: the hold names where the reader stands (prev-id), and each
// published note names the note before it (id, prev-id). If a note went out between this answer
// and the hold starting, the sidecar sees the hold is behind and asks this origin again.
import { createEventStore } from './event-store.js';
import { readText, sendJson } from './http-util.js';

const CHANNEL = 'notes';
const KEPT_NOTES = 50;
const HOLD_SECONDS = 25;

const noteOf = (e) => ({ id: e.id, text: e.text, at: e.at });

export function createLongPollNotes({ publish, store = createEventStore({ max: KEPT_NOTES }) }) {
  return {
    /** GET /poll/notes?after=ID: `{ notes, last, reset? }`; `reset` means "start over: these are all the notes kept". */
    read(req, res, url) {
      const after = url.searchParams.get('after') ?? undefined;
      const { events, isReset } = store.after(after);
      const body = { notes: events.map(noteOf), last: store.lastId, ...(isReset ? { reset: true } : {}) };
      // A reader without a position gets what is kept at once, even nothing, and holds from there.
      if (events.length > 0 || isReset || after === undefined) return sendJson(res, 200, body);
      sendJson(res, 200, body, {
        'Grip-Hold': 'response',
        'Grip-Channel': `${CHANNEL}; prev-id=${store.lastId}`,
        'Grip-Timeout': String(HOLD_SECONDS),
      });
    },

    /** POST /poll/notes: `{ id, published }`, 201 once stored (readers polling get it even if publishing failed). */
    async add(req, res) {
      const { text, problem } = await readText(req);
      if (problem !== undefined) return sendJson(res, 400, { error: problem });
      const event = store.append(text);
      const published = await publish({
        channel: CHANNEL,
        id: event.id,
        'prev-id': event.prevId,
        formats: {
          'http-response': {
            headers: { 'Content-Type': 'application/json' },
            body: `${JSON.stringify({ notes: [noteOf(event)], last: event.id })}\n`,
          },
        },
      });
      sendJson(res, 201, { id: event.id, published });
    },
  };
}
