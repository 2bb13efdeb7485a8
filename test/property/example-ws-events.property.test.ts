import test from 'ava';
import fc from 'fast-check';
// @ts-expect-error plain JavaScript example, no types
import { decodeWsEvents, wsEvent } from '../../examples/ws-events.js';
import { RUNS } from './arbitraries.js';

// The example origin's own WebSocket-over-HTTP codec (examples/ws-events.js, Node built-ins only
// so that the compose origin needs no node_modules) on any input.

const decode = decodeWsEvents as (body: Buffer) => Array<{ type: string; content: Buffer }>;
const encode = wsEvent as (type: string, content?: string | Buffer) => Buffer;

const event = fc.oneof(
  fc.constantFrom('OPEN', 'DISCONNECT').map((type) => ({ type, content: undefined as Buffer | undefined })),
  fc.tuple(fc.constantFrom('TEXT', 'BINARY', 'CLOSE', 'PING', 'PONG'), fc.uint8Array({ maxLength: 40 }))
    .map(([type, bytes]) => ({ type, content: Buffer.from(bytes) as Buffer | undefined })),
);

test('example websocket-events: decode(encode(events)) gives the events back', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.array(event, { maxLength: 6 }), (events) => {
    const body = Buffer.concat(events.map((e) => encode(e.type, e.content)));
    const back = decode(body);
    return back.length === events.length && back.every((e, i) => e.type === events[i]?.type && e.content.equals(events[i]?.content ?? Buffer.alloc(0)));
  }), RUNS));
});

test('example websocket-events: any bytes are decoded or refused with an Error, never anything else', (t) => {
  const piece = fc.oneof(fc.constantFrom('OPEN', 'TEXT ', 'CLOSE 2', '\r\n', '\r', ' ', 'ff', '0', 'zz'), fc.string({ maxLength: 6 }));
  t.notThrows(() => fc.assert(fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
    try {
      decode(Buffer.from(pieces.join(''), 'latin1'));
      return true;
    } catch (err) {
      return err instanceof Error && /truncated event line|content length/.test(err.message);
    }
  }), RUNS));
});
