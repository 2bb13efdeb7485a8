import test from 'ava';
import { decodeWebSocketEvents, encodeWebSocketEvents, WebSocketEvent } from '@fanoutio/grip';
import { isKgError } from '../../../sidecar/src/errors.js';
import {
  decodeWsEvents, encodeClosePayload, encodedEventLength, encodeWsEvents, type WsEvent,
} from '../../../sidecar/src/grip/ws-events.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

test('encodes events as TYPE hexlen CRLF payload CRLF with lowercase hex', (t) => {
  const body = encodeWsEvents([
    { type: 'OPEN' },
    { type: 'TEXT', content: Buffer.from('hello world') },
    { type: 'BINARY', content: Buffer.from([0, 13, 10, 255]) },
    { type: 'DISCONNECT' },
  ]);
  t.is(body.toString('latin1'), 'OPEN\r\nTEXT b\r\nhello world\r\nBINARY 4\r\n\x00\r\n\xff\r\nDISCONNECT\r\n');
});

test('encodes a client close 1000 as CLOSE 2 with the big-endian code, as Pushpin does', (t) => {
  t.is(encodeWsEvents([{ type: 'CLOSE', code: 1000, reason: '' }]).toString('latin1'), 'CLOSE 2\r\n\x03\xe8\r\n');
  t.is(encodeWsEvents([{ type: 'CLOSE', code: 4000, reason: 'bye' }]).toString('latin1'), 'CLOSE 5\r\n\x0f\xa0bye\r\n');
  t.is(encodeWsEvents([{ type: 'CLOSE', reason: '' }]).toString('latin1'), 'CLOSE\r\n');
});

test('encodes ping and pong content only when there is some', (t) => {
  const body = encodeWsEvents([
    { type: 'PING', content: Buffer.alloc(0) },
    { type: 'PONG', content: Buffer.from('x') },
    { type: 'TEXT', content: Buffer.alloc(0) },
  ]);
  t.is(body.toString('latin1'), 'PING\r\nPONG 1\r\nx\r\nTEXT 0\r\n\r\n');
});

test('encodedEventLength matches the encoded size of each event', (t) => {
  const events: WsEvent[] = [
    { type: 'OPEN' },
    { type: 'TEXT', content: Buffer.alloc(300, 'a') },
    { type: 'PING', content: Buffer.alloc(0) },
    { type: 'CLOSE', code: 1001, reason: 'gone' },
    { type: 'DISCONNECT' },
  ];
  for (const e of events) t.is(encodedEventLength(e), encodeWsEvents([e]).length, e.type);
});

test('decodes what it encodes, including payloads that contain CRLF', (t) => {
  const events: WsEvent[] = [
    { type: 'OPEN' },
    { type: 'TEXT', content: Buffer.from('a\r\nb\r\n') },
    { type: 'BINARY', content: Buffer.from([13, 10, 13, 10]) },
    { type: 'PING', content: Buffer.from('p') },
    { type: 'PONG', content: Buffer.alloc(0) },
    { type: 'CLOSE', code: 4001, reason: 'pubclose' },
    { type: 'DISCONNECT' },
  ];
  t.deepEqual(decodeWsEvents(encodeWsEvents(events)), events);
});

test('accepts uppercase hex lengths', (t) => {
  const content = 'x'.repeat(26);
  t.deepEqual(decodeWsEvents(b(`TEXT 1A\r\n${content}\r\n`)), [{ type: 'TEXT', content: Buffer.from(content) }]);
});

test('ignores content sent on events that carry none', (t) => {
  t.deepEqual(decodeWsEvents(b('OPEN 0\r\n\r\nDISCONNECT 3\r\nabc\r\n')), [{ type: 'OPEN' }, { type: 'DISCONNECT' }]);
});

test('decodes CLOSE without content as a close without status', (t) => {
  t.deepEqual(decodeWsEvents(b('CLOSE\r\n')), [{ type: 'CLOSE', reason: '' }]);
  t.deepEqual(decodeWsEvents(b('CLOSE 0\r\n\r\n')), [{ type: 'CLOSE', reason: '' }]);
});

test('reports unknown event types instead of failing, so the session can skip them like Pushpin', (t) => {
  t.deepEqual(decodeWsEvents(b('KEEPALIVE\r\nTEXT 1\r\nx\r\n')), [
    { type: 'unknown', name: 'KEEPALIVE' },
    { type: 'TEXT', content: Buffer.from('x') },
  ]);
});

test('decodes an empty body as no events', (t) => {
  t.deepEqual(decodeWsEvents(Buffer.alloc(0)), []);
});

const rejects = (t: import('ava').ExecutionContext, body: string, fragment: RegExp): void => {
  const err = t.throws(() => decodeWsEvents(b(body)));
  t.true(isKgError(err, 'KG_ERR_WS_EVENTS_INVALID'), String(err));
  t.regex(err?.message ?? '', fragment);
};

test('rejects a type line without CRLF, naming the offset', (t) => {
  rejects(t, 'OPEN\r\nTEXT 1\r\nx\r\nCLOSE', /byte 17: type line is not terminated by CRLF/);
});

test('rejects a non-hexadecimal length', (t) => {
  rejects(t, 'TEXT zz\r\nab\r\n', /byte 0: content length "zz" is not 1-8 hexadecimal digits/);
  rejects(t, 'TEXT \r\n\r\n', /content length "" is not/);
  rejects(t, 'TEXT -1\r\n\r\n', /content length "-1" is not/);
  rejects(t, 'TEXT 123456789\r\n', /is not 1-8 hexadecimal digits/);
});

test('rejects content shorter than its declared length', (t) => {
  rejects(t, 'TEXT 10\r\nshort\r\n', /TEXT declares 16 content bytes but only 7 remain/);
});

test('rejects content not followed by CRLF', (t) => {
  rejects(t, 'TEXT 2\r\nabc\r\n', /TEXT content \(2 bytes\) is not followed by CRLF at byte 10/);
  rejects(t, 'TEXT 1\r\na', /not followed by CRLF/);
});

test('rejects a garbage type line', (t) => {
  rejects(t, 'HTTP/1.1 200 OK\r\n', /event type "HTTP\/1.1" is not a word/);
  rejects(t, '\r\n', /event type "" is not a word/);
});

test('rejects a CLOSE with a 1-byte payload or a reason that is not UTF-8', (t) => {
  rejects(t, 'CLOSE 1\r\n\x03\r\n', /CLOSE content must be empty or a 2-byte code/);
  rejects(t, 'CLOSE 3\r\n\x03\xe8\xff\r\n', /CLOSE reason is not valid UTF-8/);
});

test('refuses a TEXT event that is not valid UTF-8, which a client library would drop the connection over (D20)', (t) => {
  rejects(t, 'TEXT 2\r\n\xc3\x28\r\n', /^websocket-events body, event at byte 0: TEXT content is not valid UTF-8$/);
  rejects(t, 'OPEN\r\nTEXT 3\r\n\xed\xa0\x80\r\n', /event at byte 6: TEXT content is not valid UTF-8/); // a lone surrogate
  rejects(t, 'TEXT 2\r\n\xc0\xaf\r\n', /TEXT content is not valid UTF-8/); // overlong '/'
  t.deepEqual(decodeWsEvents(Buffer.from('TEXT 6\r\nhé😀\r\n'.replace('6', Buffer.byteLength('hé😀').toString(16)))), [
    { type: 'TEXT', content: Buffer.from('hé😀') }]);
  // BINARY, PING and PONG carry any bytes.
  t.is(decodeWsEvents(b('BINARY 1\r\n\xff\r\nPING 1\r\n\xff\r\n')).length, 2);
});

test('interoperates with js-grip: our encoding decodes there and theirs decodes here', (t) => {
  const ours = encodeWsEvents([{ type: 'OPEN' }, { type: 'TEXT', content: Buffer.from('héllo') }, { type: 'CLOSE', code: 1000, reason: '' }]);
  const theirs = decodeWebSocketEvents(new Uint8Array(ours));
  t.deepEqual(theirs.map((e) => e.getType()), ['OPEN', 'TEXT', 'CLOSE']);
  t.is(Buffer.from(theirs[1]!.getContent() as Uint8Array).toString(), 'héllo');

  const body = Buffer.from(encodeWebSocketEvents([
    new WebSocketEvent('OPEN'),
    new WebSocketEvent('TEXT', 'm:hi'),
    new WebSocketEvent('CLOSE', new Uint8Array(encodeClosePayload(4000, 'bye'))),
  ]));
  t.deepEqual(decodeWsEvents(body), [
    { type: 'OPEN' },
    { type: 'TEXT', content: Buffer.from('m:hi') },
    { type: 'CLOSE', code: 4000, reason: 'bye' },
  ]);
});
