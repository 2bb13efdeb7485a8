// A small in-memory event log for the examples that must not lose messages (the long-poll notes
// and the reliable feed). It keeps the last `max` events; each id names the run of the origin that
// made it (`<run>-<n>`), so an id from before an origin restart, or one too old to be kept, is
// recognised and answered with a reset instead of a silent gap. Pure: no I/O.

/**
 * @param {{ max: number, run?: string }} options `run` defaults to the start time in base 36.
 */
export function createEventStore({ max, run = Date.now().toString(36) }) {
  if (!Number.isInteger(max) || max < 1) throw new Error(`event store: max must be a positive integer, got ${max}`);
  /** @type {Array<{ id: string, prevId: string, seq: number, text: string, at: string }>} */
  const events = [];
  let seq = 0;
  const idOf = (n) => `${run}-${n}`;

  /** The sequence number of an id made by this run, or undefined. */
  function seqOf(id) {
    if (typeof id !== 'string') return undefined;
    const dash = id.lastIndexOf('-');
    if (dash < 0 || id.slice(0, dash) !== run) return undefined;
    const digits = id.slice(dash + 1);
    return /^(0|[1-9][0-9]{0,15})$/.test(digits) ? Number(digits) : undefined;
  }

  return {
    /** The id of the newest event (or of the empty log's start): what a reader who has everything stands on. */
    get lastId() { return idOf(seq); },

    /** Stores an event and returns it with its id and the id before it (for GRIP's id / prev-id). */
    append(text, at = new Date().toISOString()) {
      const event = { id: idOf(seq + 1), prevId: idOf(seq), seq: seq + 1, text, at };
      seq += 1;
      events.push(event);
      if (events.length > max) events.shift();
      return event;
    },

    /**
     * What a reader standing at `id` has not seen. Without an id: everything kept. With an id this
     * log cannot continue from (another run, too old, unknown, ahead): everything kept, and
     * `isReset` so the reader starts over rather than trusting a gap.
     */
    after(id) {
      if (id === undefined || id === null || id === '') return { events: [...events], isReset: false };
      const n = seqOf(id);
      const oldest = events.length > 0 ? events[0].seq - 1 : seq;
      if (n === undefined || n < oldest || n > seq) return { events: [...events], isReset: true };
      return { events: events.filter((e) => e.seq > n), isReset: false };
    },
  };
}
