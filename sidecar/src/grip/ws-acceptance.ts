import type { WsEvent } from './ws-events.js';
import type { HeaderList } from './types.js';

// Partial acceptance of a WebSocket-over-HTTP request (docs/websocket.md, "GRIP features"; Pushpin 1.41+): the origin's
// `Content-Bytes-Accepted: N` says it consumed only the first N content bytes of the request
// (typically to wait for more of a message); the rest is sent again at the start of the next
// request, announced with `Content-Bytes-Replayed`. Pure: events and a header in, a decision out.
//
// Content bytes are the payloads of TEXT, BINARY, PING and PONG, then a CLOSE's code and reason,
// as Pushpin counts them. A message cut by N keeps its type and sends the rest of its payload.
// Zero-length events at the cut are consumed with what precedes them. Once everything before a
// CLOSE is accepted the CLOSE must be too (no more data will follow it to wait for); N larger
// than what was offered is an error. An absent, negative or unreadable header accepts everything.

export const CONTENT_BYTES_ACCEPTED = 'Content-Bytes-Accepted';
export const CONTENT_BYTES_REPLAYED = 'Content-Bytes-Replayed';

export type Acceptance =
  | { type: 'all' }
  /** `remainder` is sent again first; `replayedBytes` of its content were in the request already. */
  | { type: 'partial'; remainder: WsEvent[]; replayedBytes: number }
  | { type: 'invalid'; problem: string };

const ALL: Acceptance = { type: 'all' };
const DIGITS = /^\d{1,10}$/;

/** The number of content bytes an event carries. */
export function contentBytes(event: WsEvent): number {
  switch (event.type) {
    case 'TEXT':
    case 'BINARY':
    case 'PING':
    case 'PONG':
      return event.content.length;
    case 'CLOSE':
      return event.code === undefined ? 0 : 2 + Buffer.byteLength(event.reason);
    default:
      return 0;
  }
}

/** The origin's Content-Bytes-Accepted, or undefined when absent or not a non-negative integer (all accepted, as in Pushpin). */
export function parseContentBytesAccepted(headers: HeaderList): number | undefined {
  for (const [name, value] of headers) {
    if (name.length === CONTENT_BYTES_ACCEPTED.length && name.toLowerCase() === 'content-bytes-accepted') {
      const text = value.trim();
      return DIGITS.test(text) ? Number(text) : undefined;
    }
  }
  return undefined;
}

/** What of `events` (one request, CLOSE last if any) the origin accepted with `accepted` content bytes. */
export function applyAcceptance(events: readonly WsEvent[], accepted: number | undefined): Acceptance {
  if (accepted === undefined) return ALL;
  let offered = 0;
  let closeBytes = 0;
  let hasClose = false;
  for (const e of events) {
    if (e.type === 'CLOSE') {
      hasClose = true;
      closeBytes = contentBytes(e);
    } else {
      offered += contentBytes(e);
    }
  }
  if (accepted > offered + closeBytes) {
    return { type: 'invalid', problem: `Content-Bytes-Accepted ${accepted} is more than the ${offered + closeBytes} content bytes sent` };
  }
  if (accepted >= offered) {
    if (hasClose && accepted < offered + closeBytes) {
      return { type: 'invalid', problem: `Content-Bytes-Accepted ${accepted} accepts everything before the CLOSE but not the CLOSE` };
    }
    return ALL;
  }
  let left = accepted;
  let i = 0;
  let cut: WsEvent | undefined;
  for (; i < events.length; i++) {
    const e = events[i] as WsEvent;
    if (e.type === 'CLOSE') break;
    const size = contentBytes(e);
    if (size > left) {
      // Only events with content can be cut (size > left >= 0).
      if (left > 0) cut = withContent(e, (e as { content: Buffer }).content.subarray(left));
      break;
    }
    left -= size;
  }
  const remainder = events.slice(i);
  if (cut !== undefined) remainder[0] = cut;
  return { type: 'partial', remainder, replayedBytes: offered - accepted };
}

function withContent(event: WsEvent, content: Buffer): WsEvent {
  switch (event.type) {
    case 'TEXT':
    case 'BINARY':
    case 'PING':
    case 'PONG':
      return { type: event.type, content };
    default:
      return event;
  }
}
