import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { HeaderSyntaxError, parseHeaderList, parseParams, splitHeaderList } from '../../sidecar/src/grip/header-params.js';
import { parseWsControl } from '../../sidecar/src/grip/ws-control.js';
import { decodeWsEvents, encodedEventLength, encodeWsEvents, type WsEvent } from '../../sidecar/src/grip/ws-events.js';
import { parseKeepAliveInterval } from '../../sidecar/src/grip/ws-headers.js';
import { MAX_TIMER_SEC } from '../../sidecar/src/grip/types.js';
import { RUNS, refusedOnlyWith, token, trickyString, wireString } from './arbitraries.js';

// WebSocket-over-HTTP events, control messages, Keep-Alive-Interval and the Grip-* list syntax
// on hostile input.

const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
const text = fc.string({ unit: 'binary', maxLength: 20 }).map((s) => Buffer.from(s, 'utf8'));
const event: fc.Arbitrary<WsEvent> = fc.oneof(
  fc.constant<WsEvent>({ type: 'OPEN' }),
  fc.constant<WsEvent>({ type: 'DISCONNECT' }),
  text.map((content): WsEvent => ({ type: 'TEXT', content })),
  bytes.map((content): WsEvent => ({ type: 'BINARY', content })),
  bytes.map((content): WsEvent => ({ type: 'PING', content })),
  bytes.map((content): WsEvent => ({ type: 'PONG', content })),
  fc.constant<WsEvent>({ type: 'CLOSE', reason: '' }),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.string({ unit: 'binary', maxLength: 20 }))
    .map(([code, reason]): WsEvent => ({ type: 'CLOSE', code, reason })),
);

test('websocket-events: decode(encode(events)) gives the events back, and lengths are what encode writes', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.array(event, { maxLength: 6 }), (events) => {
    const body = encodeWsEvents(events);
    return isDeepStrictEqual(decodeWsEvents(body), events)
      && body.length === events.reduce((n, e) => n + encodedEventLength(e), 0);
  }), RUNS));
});

test('websocket-events: any bytes are decoded or refused with KG_ERR_WS_EVENTS_INVALID', (t) => {
  const piece = fc.oneof(
    fc.constantFrom('OPEN', 'TEXT', 'BINARY', 'CLOSE', 'PING', 'X-Y', ' ', '\r\n', '\r', '\n', '1', 'a', 'ffffffff', '0'),
    wireString,
  );
  const body = fc.oneof(bytes, fc.array(piece, { maxLength: 10 }).map((p) => Buffer.from(p.join(''), 'latin1')));
  t.notThrows(() => fc.assert(fc.property(body, (b) => {
    refusedOnlyWith('KG_ERR_WS_EVENTS_INVALID', () => decodeWsEvents(b));
  }), RUNS));
});

test('control messages: any text is parsed or refused with KG_ERR_WS_CONTROL_INVALID; accepted timeouts fit Node\'s timer', (t) => {
  const control = fc.record({
    type: fc.constantFrom('subscribe', 'unsubscribe', 'detach', 'session', 'set-meta', 'keep-alive', 'send-delayed', 'flush-delayed', 'nope'),
    channel: fc.oneof(token, fc.jsonValue({ maxDepth: 1 })),
    filters: fc.oneof(fc.array(token, { maxLength: 2 }), fc.jsonValue({ maxDepth: 1 })),
    name: fc.oneof(token, fc.integer()),
    value: fc.oneof(trickyString, fc.integer()),
    content: fc.oneof(trickyString, fc.integer()),
    'content-bin': fc.oneof(fc.base64String({ maxLength: 8 }), trickyString),
    'message-type': fc.oneof(fc.constantFrom('text', 'binary', 'ping', 'pong'), trickyString),
    timeout: fc.oneof(fc.nat({ max: 100 }), fc.integer(), fc.double(), fc.constantFrom(86_400, 86_401, 3_000_000, 1e300)),
    mode: fc.oneof(fc.constantFrom('idle', 'interval'), trickyString),
  }, { requiredKeys: ['type'] });
  const json = fc.oneof(control.map((c) => JSON.stringify(c)), fc.jsonValue().map((v) => JSON.stringify(v)), trickyString,
    fc.nat({ max: 5000 }).map((d) => `{"type":"subscribe","channel":${'['.repeat(d)}${']'.repeat(d)}}`));
  t.notThrows(() => fc.assert(fc.property(json, (j) => {
    const c = refusedOnlyWith('KG_ERR_WS_CONTROL_INVALID', () => parseWsControl(j));
    if (c !== undefined && 'timeoutSec' in c) return Number.isInteger(c.timeoutSec) && c.timeoutSec >= 0 && c.timeoutSec <= MAX_TIMER_SEC;
    return true;
  }), RUNS));
});

test('Keep-Alive-Interval: any value is absent, off, or seconds between the minimum and 24 h', (t) => {
  const value = fc.oneof(fc.nat().map(String), fc.bigInt({ min: 0n, max: 10n ** 12n }).map(String), wireString);
  t.notThrows(() => fc.assert(fc.property(value, fc.integer({ min: 1, max: 60 }), (v, min) => {
    const r = parseKeepAliveInterval([['Keep-Alive-Interval', v]], min);
    return r === 'off' || (typeof r === 'number' && r >= min && r <= MAX_TIMER_SEC);
  }), RUNS));
});

/** Only HeaderSyntaxError may come out of the list parser. */
function syntaxOnly<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof HeaderSyntaxError) return undefined;
    throw err;
  }
}

test('header lists: any text is parsed or refused with HeaderSyntaxError', (t) => {
  t.notThrows(() => fc.assert(fc.property(trickyString, fc.boolean(), (v, angleBrackets) => {
    syntaxOnly(() => parseHeaderList([v], { angleBrackets }));
    syntaxOnly(() => parseParams(v));
  }), RUNS));
});

test('header lists: elements with token and quoted parameters round-trip', (t) => {
  const quoted = fc.string({ unit: fc.constantFrom('a', ' ', ',', ';', '=', '"', '\\', 'é'), maxLength: 8 });
  const param = fc.tuple(token, fc.oneof(token, quoted)).map(([name, value]) => ({ name, value }));
  const element = fc.tuple(token, fc.array(param, { maxLength: 3 })).map(([first, params]) => ({ first, params }));
  const quote = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  t.notThrows(() => fc.assert(fc.property(fc.array(element, { minLength: 1, maxLength: 4 }), (elements) => {
    const value = elements.map((e) => e.first + e.params.map((p) => `; ${p.name}=${quote(p.value)}`).join('')).join(', ');
    const parsed = parseHeaderList([value]);
    return splitHeaderList(value).length === elements.length && isDeepStrictEqual(parsed, elements);
  }), RUNS));
});
