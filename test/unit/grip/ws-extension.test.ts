import test from 'ava';
import { gripExtensionFrom, parseExtensions, routeOriginMessage } from '../../../sidecar/src/grip/ws-extension.js';

test('finds grip with the default m: prefix', (t) => {
  t.deepEqual(gripExtensionFrom(['grip']), { messagePrefix: Buffer.from('m:') });
});

test('reads message-prefix, quoted or not, including an empty prefix', (t) => {
  t.deepEqual(gripExtensionFrom(['grip; message-prefix="data:"']), { messagePrefix: Buffer.from('data:') });
  t.deepEqual(gripExtensionFrom(['grip; message-prefix=x']), { messagePrefix: Buffer.from('x') });
  t.deepEqual(gripExtensionFrom(['grip; message-prefix=""']), { messagePrefix: Buffer.alloc(0) });
});

test('finds grip among other extensions and across header lines, case-insensitively', (t) => {
  t.deepEqual(gripExtensionFrom(['permessage-deflate; client_max_window_bits', 'GRIP; Message-Prefix="a,b;c"']), {
    messagePrefix: Buffer.from('a,b;c'),
  });
});

test('GRIP is off when the origin does not name the extension', (t) => {
  t.is(gripExtensionFrom([]), undefined);
  t.is(gripExtensionFrom(['permessage-deflate']), undefined);
  t.is(gripExtensionFrom(['gripx']), undefined);
});

test('parseExtensions keeps params of each extension', (t) => {
  const offers = parseExtensions(['a; x=1; y, b']);
  t.is(offers.length, 2);
  t.is(offers[0]?.params.get('x'), '1');
  t.is(offers[0]?.params.get('y'), '');
  t.is(offers[1]?.name, 'b');
});

const grip = { messagePrefix: Buffer.from('m:') };

test('routes c: text to control, prefixed text to the client stripped, and drops the rest', (t) => {
  t.deepEqual(routeOriginMessage(grip, true, Buffer.from('c:{"type":"detach"}')), { kind: 'control', json: '{"type":"detach"}' });
  t.deepEqual(routeOriginMessage(grip, true, Buffer.from('m:hello')), { kind: 'message', content: Buffer.from('hello') });
  t.deepEqual(routeOriginMessage(grip, true, Buffer.from('this has no prefix')), { kind: 'drop', why: 'no-prefix' });
});

test('binary messages need the prefix too, and c: binary is not a control message', (t) => {
  t.deepEqual(routeOriginMessage(grip, false, Buffer.from('m:\x00\x01')), { kind: 'message', content: Buffer.from('\x00\x01') });
  t.deepEqual(routeOriginMessage(grip, false, Buffer.from('c:{}')), { kind: 'drop', why: 'no-prefix' });
});

test('with an empty prefix everything but c: is data', (t) => {
  const empty = { messagePrefix: Buffer.alloc(0) };
  t.deepEqual(routeOriginMessage(empty, true, Buffer.from('{"a":1}')), { kind: 'message', content: Buffer.from('{"a":1}') });
  t.is(routeOriginMessage(empty, true, Buffer.from('c:{"type":"detach"}')).kind, 'control');
});

test('without GRIP every message passes through untouched', (t) => {
  t.deepEqual(routeOriginMessage(undefined, true, Buffer.from('c:{"type":"detach"}')), { kind: 'message', content: Buffer.from('c:{"type":"detach"}') });
});

test('ignores control messages longer than one Pushpin frame', (t) => {
  t.deepEqual(routeOriginMessage(grip, true, Buffer.from(`c:${'x'.repeat(16_385)}`)), { kind: 'drop', why: 'control-too-long' });
});
