import { isUtf8 } from 'node:buffer';
import { KgError } from '../errors.js';

// The WebSocket-over-HTTP event codec (docs/websocket.md): a body of Content-Type
// application/websocket-events is a run of events, each
//   TYPE SP HEXLEN CRLF PAYLOAD CRLF     (with content)
//   TYPE CRLF                            (without content)
// Pure: no I/O. Decoding is strict about framing (every declared byte present, every CRLF where
// it belongs) and names the offset of the problem; it is tolerant where Pushpin is (either hex
// case, content on events that carry none, unknown event types skipped by the caller). A TEXT
// event must be UTF-8 (RFC 6455 5.6): relayed as a text frame, anything else makes the client
// fail the connection, so the origin's body is refused like any malformed one.

export const WsEventType = {
  Open: 'OPEN',
  Text: 'TEXT',
  Binary: 'BINARY',
  Ping: 'PING',
  Pong: 'PONG',
  Close: 'CLOSE',
  Disconnect: 'DISCONNECT',
} as const;
export type WsEventType = (typeof WsEventType)[keyof typeof WsEventType];

export type WsEvent =
  | { type: 'OPEN' }
  | { type: 'TEXT'; content: Buffer }
  | { type: 'BINARY'; content: Buffer }
  | { type: 'PING'; content: Buffer }
  | { type: 'PONG'; content: Buffer }
  /** code undefined = close without status (empty CLOSE payload). */
  | { type: 'CLOSE'; code?: number; reason: string }
  | { type: 'DISCONNECT' };

/** A syntactically valid event of a type this protocol does not define; Pushpin skips these. */
export interface UnknownWsEvent { type: 'unknown'; name: string }

export type DecodedWsEvent = WsEvent | UnknownWsEvent;

const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);
const TYPE_LINE = /^[A-Za-z][A-Za-z0-9_-]*$/;
// Eight hex digits already exceed any body we accept; longer is an attack or garbage.
const HEXLEN = /^[0-9A-Fa-f]{1,8}$/;
const KNOWN = new Set<string>(Object.values(WsEventType));
const utf8 = new TextDecoder('utf-8', { fatal: true });

// Pre-built type lines for the events the sidecar sends most.
const LINE_NO_CONTENT: Record<'OPEN' | 'DISCONNECT' | 'CLOSE' | 'PING' | 'PONG', Buffer> = {
  OPEN: Buffer.from('OPEN\r\n'),
  DISCONNECT: Buffer.from('DISCONNECT\r\n'),
  CLOSE: Buffer.from('CLOSE\r\n'),
  PING: Buffer.from('PING\r\n'),
  PONG: Buffer.from('PONG\r\n'),
};

const invalid = (offset: number, problem: string): KgError =>
  new KgError('KG_ERR_WS_EVENTS_INVALID', `websocket-events body, event at byte ${offset}: ${problem}`);

/** CLOSE payload: 2-byte big-endian code then UTF-8 reason; empty = no status. */
export function encodeClosePayload(code: number | undefined, reason: string): Buffer {
  if (code === undefined) return EMPTY;
  const reasonBytes = Buffer.from(reason, 'utf8');
  const out = Buffer.allocUnsafe(2 + reasonBytes.length);
  out.writeUInt16BE(code, 0);
  reasonBytes.copy(out, 2);
  return out;
}

/** Byte length of one event once encoded, for batching limits. */
export function encodedEventLength(e: WsEvent): number {
  const content = eventContent(e);
  if (content === undefined) return e.type.length + 2;
  return e.type.length + 1 + content.length.toString(16).length + 2 + content.length + 2;
}

function eventContent(e: WsEvent): Buffer | undefined {
  switch (e.type) {
    case 'OPEN':
    case 'DISCONNECT':
      return undefined;
    case 'TEXT':
    case 'BINARY':
      return e.content;
    case 'PING':
    case 'PONG':
      // Like Pushpin: include content on ping/pong only when there is some.
      return e.content.length > 0 ? e.content : undefined;
    case 'CLOSE':
      return e.code === undefined ? undefined : encodeClosePayload(e.code, e.reason);
    default:
      return assertNever(e);
  }
}

/** Encodes events into one websocket-events body (lowercase hex, as Pushpin sends). */
export function encodeWsEvents(events: readonly WsEvent[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of events) {
    const content = eventContent(e);
    if (content === undefined) {
      parts.push(LINE_NO_CONTENT[e.type as keyof typeof LINE_NO_CONTENT]);
    } else {
      parts.push(Buffer.from(`${e.type} ${content.length.toString(16)}\r\n`, 'latin1'), content, CRLF);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Decodes a websocket-events body. Throws KgError KG_ERR_WS_EVENTS_INVALID naming the byte offset
 * and the problem when the body is not a well-formed run of events. Content slices share memory
 * with `body`.
 */
export function decodeWsEvents(body: Buffer): DecodedWsEvent[] {
  const out: DecodedWsEvent[] = [];
  let pos = 0;
  while (pos < body.length) {
    const start = pos;
    const lineEnd = body.indexOf(CRLF, pos);
    if (lineEnd === -1) throw invalid(start, 'type line is not terminated by CRLF');
    const line = body.toString('latin1', pos, lineEnd);
    pos = lineEnd + 2;
    const sp = line.indexOf(' ');
    const name = sp === -1 ? line : line.slice(0, sp);
    if (!TYPE_LINE.test(name)) throw invalid(start, `event type ${JSON.stringify(name)} is not a word`);
    let content: Buffer | undefined;
    if (sp !== -1) {
      const hex = line.slice(sp + 1);
      if (!HEXLEN.test(hex)) throw invalid(start, `content length ${JSON.stringify(hex)} is not 1-8 hexadecimal digits`);
      const len = parseInt(hex, 16);
      if (pos + len > body.length) {
        throw invalid(start, `${name} declares ${len} content bytes but only ${body.length - pos} remain`);
      }
      content = body.subarray(pos, pos + len);
      pos += len;
      if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) {
        throw invalid(start, `${name} content (${len} bytes) is not followed by CRLF at byte ${pos}`);
      }
      pos += 2;
    }
    out.push(toEvent(name, content, start));
  }
  return out;
}

function toEvent(name: string, content: Buffer | undefined, offset: number): DecodedWsEvent {
  if (!KNOWN.has(name)) return { type: 'unknown', name };
  const type = name as WsEventType;
  switch (type) {
    case 'OPEN':
    case 'DISCONNECT':
      return { type }; // content on these is allowed and ignored
    case 'TEXT':
      if (content !== undefined && !isUtf8(content)) throw invalid(offset, 'TEXT content is not valid UTF-8');
      return { type, content: content ?? EMPTY };
    case 'BINARY':
    case 'PING':
    case 'PONG':
      return { type, content: content ?? EMPTY };
    case 'CLOSE':
      return decodeClose(content ?? EMPTY, offset);
    default:
      return assertNever(type);
  }
}

function decodeClose(payload: Buffer, offset: number): WsEvent {
  if (payload.length === 0) return { type: 'CLOSE', reason: '' };
  if (payload.length === 1) throw invalid(offset, 'CLOSE content must be empty or a 2-byte code followed by a reason, got 1 byte');
  let reason: string;
  try {
    reason = utf8.decode(payload.subarray(2));
  } catch {
    throw invalid(offset, 'CLOSE reason is not valid UTF-8');
  }
  return { type: 'CLOSE', code: payload.readUInt16BE(0), reason };
}

function assertNever(x: never): never {
  throw new Error(`unhandled case ${JSON.stringify(x)}`);
}
