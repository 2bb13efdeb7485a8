import test from 'ava';
import {
  applySetMeta, handshakeResponseHeaders, headerListFromRaw, isWsEventsContentType, offeredSubprotocols, parseKeepAliveInterval,
  rejectionResponseHeaders, replayedHandshakeHeaders, upgradeRequestProblem, wsRequestHeaders, type WsMeta,
} from '../../../sidecar/src/grip/ws-headers.js';

const handshake = headerListFromRaw([
  'Host', 'example.com',
  'Upgrade', 'websocket',
  'Connection', 'Upgrade',
  'Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version', '13',
  'Sec-WebSocket-Extensions', 'permessage-deflate',
  'Cookie', 's=1',
  'Meta-User', 'mallory',
  'Grip-Sig', 'fake',
  'Accept-Encoding', 'gzip',
  'Accept', '*/*',
  'Connection-Id', 'spoofed',
  'Origin', 'http://example.com',
]);

test('replays the handshake minus hop-by-hop, Upgrade, Accept, Connection-Id, Meta-* and Grip-*', (t) => {
  t.deepEqual(replayedHandshakeHeaders(handshake), [
    ['Host', 'example.com'],
    ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ['Sec-WebSocket-Version', '13'],
    ['Cookie', 's=1'],
    ['Origin', 'http://example.com'],
  ]);
});

test('adds the protocol headers and bound meta to each request', (t) => {
  const meta: WsMeta = new Map([['user', { name: 'User', value: 'alice' }]]);
  const headers = wsRequestHeaders([['Host', 'h']], 'cid-1', meta, 12);
  t.deepEqual(headers, [
    ['Host', 'h'],
    ['Sec-WebSocket-Extensions', 'grip'],
    ['Accept', 'application/websocket-events'],
    ['Connection-Id', 'cid-1'],
    ['Content-Type', 'application/websocket-events'],
    ['Content-Length', '12'],
    ['Meta-User', 'alice'],
  ]);
});

test('Set-Meta-* binds meta and an empty value deletes it', (t) => {
  const meta: WsMeta = new Map();
  applySetMeta([['Set-Meta-User', 'alice'], ['set-meta-room', 'r1'], ['Set-Meta-', 'ignored'], ['X', 'y']], meta);
  t.deepEqual([...meta.values()], [{ name: 'User', value: 'alice' }, { name: 'room', value: 'r1' }]);
  applySetMeta([['Set-Meta-user', '']], meta);
  t.deepEqual([...meta.keys()], ['room']);
});

test('Set-Meta-* makes the meta only when one comes', (t) => {
  t.is(applySetMeta([['X', 'y'], ['Set-Meta-', 'ignored']], undefined), undefined);
  const made = applySetMeta([['Set-Meta-User', 'alice']], undefined);
  t.deepEqual([...(made?.values() ?? [])], [{ name: 'User', value: 'alice' }]);
  t.is(applySetMeta([['Set-Meta-room', 'r1']], made), made, 'an existing meta is updated in place');
});

test('accepts application/websocket-events with parameters and in any case', (t) => {
  t.true(isWsEventsContentType('application/websocket-events'));
  t.true(isWsEventsContentType('Application/WebSocket-Events; charset=utf-8'));
  t.false(isWsEventsContentType('text/plain'));
  t.false(isWsEventsContentType(undefined));
});

test('Keep-Alive-Interval is capped at 24 h, so it cannot overflow Node\'s timer (D7)', (t) => {
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', '2147484']], 20), 86400);
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', '999999999']], 20), 86400);
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', '86400']], 20), 86400);
});

test('Keep-Alive-Interval is raised to the minimum, and anything but a positive integer turns it off', (t) => {
  t.is(parseKeepAliveInterval([], 20), undefined);
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', '5']], 20), 20);
  t.is(parseKeepAliveInterval([['keep-alive-interval', '45']], 20), 45);
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', '0']], 20), 'off');
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', 'soon']], 20), 'off');
  t.is(parseKeepAliveInterval([['Keep-Alive-Interval', '-3']], 20), 'off');
});

test('the 101 keeps origin headers such as Server and Date but none of the protocol headers', (t) => {
  t.deepEqual(handshakeResponseHeaders([
    ['Server', 'origin/1'], ['Date', 'x'], ['Content-Type', 'application/websocket-events'], ['Content-Length', '6'],
    ['Keep-Alive-Interval', '30'], ['Set-Meta-User', 'alice'], ['Sec-WebSocket-Extensions', 'grip'],
    ['Connection', 'keep-alive'], ['Grip-Foo', 'x'], ['Set-Cookie', 'a=b'],
  ]), [['Server', 'origin/1'], ['Date', 'x'], ['Set-Cookie', 'a=b']]);
});

test('a rejection keeps the origin headers but not its framing', (t) => {
  t.deepEqual(rejectionResponseHeaders([
    ['Content-Type', 'text/plain'], ['Content-Length', '9'], ['Transfer-Encoding', 'chunked'], ['WWW-Authenticate', 'Bearer'],
  ]), [['Content-Type', 'text/plain'], ['WWW-Authenticate', 'Bearer']]);
});

test('accepts a valid upgrade request and names what is wrong with an invalid one', (t) => {
  const ok: Array<[string, string]> = [['Upgrade', 'websocket'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13']];
  t.is(upgradeRequestProblem('GET', ok), undefined);
  t.regex(upgradeRequestProblem('POST', ok) ?? '', /must use GET, got "POST"/);
  t.regex(upgradeRequestProblem('GET', [['Upgrade', 'h2c'], ...ok.slice(1)]) ?? '', /Upgrade must be "websocket", got "h2c"/);
  t.regex(upgradeRequestProblem('GET', [ok[0]!, ['Sec-WebSocket-Key', 'short'], ok[2]!]) ?? '', /Sec-WebSocket-Key must be 16 bytes/);
  t.regex(upgradeRequestProblem('GET', [ok[0]!, ok[1]!, ['Sec-WebSocket-Version', '7']]) ?? '', /Sec-WebSocket-Version must be 13, got "7"/);
});

test('lists offered subprotocols across commas and header lines', (t) => {
  t.deepEqual(offeredSubprotocols([['Sec-WebSocket-Protocol', 'a, b'], ['sec-websocket-protocol', 'c']]), ['a', 'b', 'c']);
});
