import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { parseInstruct } from '../../sidecar/src/grip/instruct.js';
import { MAX_TIMER_SEC, type HeaderList, type Instruct } from '../../sidecar/src/grip/types.js';
import { RUNS, nodeWrites, refusedOnlyWith, token, trickyString, wireString } from './arbitraries.js';

// parseInstruct on hostile origin answers: it returns an Instruct or refuses with
// KG_ERR_INSTRUCT_INVALID, and whatever it returns Node can send and time.

const parse = (headers: HeaderList, body?: Buffer, code = 200, reason = 'OK'): Instruct | undefined =>
  refusedOnlyWith('KG_ERR_INSTRUCT_INVALID', () =>
    parseInstruct({ code, reason, headers, ...(body === undefined ? {} : { body }) }, { requestUrl: 'http://origin.test/a/b?c=1' }));

function checkUsable(i: Instruct): void {
  nodeWrites(i.code, i.reason, i.headers);
  if (i.hold !== undefined) {
    if (i.hold.timeoutSec < 5 || i.hold.timeoutSec > MAX_TIMER_SEC) throw new Error(`hold timeout ${i.hold.timeoutSec}`);
    const ka = i.hold.keepAlive;
    if (ka !== undefined && (ka.timeoutSec < 1 || ka.timeoutSec > MAX_TIMER_SEC || ka.content.length === 0)) throw new Error('keep-alive');
    for (const c of i.hold.channels) if (c.name === '') throw new Error('empty channel');
  }
  if (i.nextLink !== undefined && i.nextLink.timeoutSec > MAX_TIMER_SEC) throw new Error('next-link timeout');
}

const number = fc.oneof(fc.nat({ max: 100 }), fc.nat(), fc.constantFrom(2147484, 2147483647, 2147483648, 86400, 86401)).map(String);
/** Mostly well-formed values (so that many instructs are accepted and checked), sometimes junk. */
const mostly = (good: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: trickyString });
const param = (names: string[], value: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom(...names), value).map(([n, v]) => `; ${n}=${v}`);
const channelElement = fc.tuple(token, fc.array(param(['prev-id', 'filter'], token), { maxLength: 2 })).map(([c, p]) => c + p.join(''));
const keepAlive = fc.tuple(
  fc.string({ unit: fc.constantFrom('a', ':', '\\', 'n', ' ', '\x01', '\xe9'), minLength: 1, maxLength: 6 }),
  fc.array(fc.oneof(param(['timeout'], number), param(['format'], fc.constantFrom('raw', 'cstring', 'base64')), param(['mode'], fc.constantFrom('idle', 'interval'))), { maxLength: 3 }),
).map(([d, p]) => d + p.join(''));
const link = fc.tuple(fc.constantFrom('<http://h/n>', '</rel?x=1>', '<next>', '<ftp://x/>'), fc.constantFrom('next', 'gone', 'other'), fc.option(number))
  .map(([u, rel, timeout]) => `${u}; rel=${rel}${timeout === null ? '' : `; timeout=${timeout}`}`);
const listOf = (a: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.array(a, { minLength: 1, maxLength: 3 }).map((e) => e.join(', '));

const gripHeader: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(fc.constant('Grip-Hold'), mostly(fc.constantFrom('response', 'stream'))),
  fc.tuple(fc.constant('Grip-Channel'), mostly(listOf(channelElement))),
  fc.tuple(fc.constant('Grip-Timeout'), mostly(number)),
  fc.tuple(fc.constant('Grip-Keep-Alive'), mostly(keepAlive)),
  fc.tuple(fc.constant('Grip-Status'), mostly(fc.tuple(fc.integer({ min: 0, max: 1200 }), wireString).map(([c, r]) => `${c} ${r}`))),
  fc.tuple(fc.constant('Grip-Link'), mostly(listOf(link))),
  fc.tuple(fc.constant('Grip-Set-Meta'), mostly(listOf(fc.tuple(token, token).map(([k, v]) => `${k}=${v}`)))),
  fc.tuple(fc.constant('Grip-Expose-Headers'), mostly(listOf(fc.constantFrom('X-A', 'Content-Type')))),
  fc.tuple(fc.oneof(token, fc.constantFrom('Content-Type', 'Content-Length', 'X-A', 'Bad Name')), fc.oneof(token, wireString)),
);
const gripHeaders = fc.uniqueArray(gripHeader, { selector: ([name]) => name.toLowerCase(), minLength: 1, maxLength: 8 });

test('header instructs: refused with KG_ERR_INSTRUCT_INVALID or usable by Node', (t) => {
  t.notThrows(() => fc.assert(fc.property(gripHeaders, fc.oneof(token, wireString), fc.integer({ min: 100, max: 999 }), (headers, reason, code) => {
    const i = parse(headers, undefined, code, reason);
    if (i !== undefined) checkUsable(i);
  }), RUNS));
});

const jsonHeaders = fc.oneof(
  fc.dictionary(fc.oneof(token, trickyString), fc.oneof(trickyString, fc.jsonValue({ maxDepth: 1 })), { maxKeys: 3 }),
  fc.array(fc.tuple(fc.oneof(token, trickyString), fc.oneof(trickyString, fc.integer())), { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 1 }),
);
const optional = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> => fc.oneof(a, fc.jsonValue({ maxDepth: 1 }));
const jsonInstruct = fc.record({
  hold: optional(fc.record({
    mode: optional(fc.constantFrom('response', 'stream')),
    channels: optional(fc.array(optional(fc.record({ name: optional(token), 'prev-id': optional(token), filters: optional(fc.array(token, { maxLength: 6 })) }, { requiredKeys: [] })), { maxLength: 3 })),
    timeout: optional(fc.oneof(fc.nat(), fc.constantFrom(3_000_000, 86_401))),
    'keep-alive': optional(fc.record({ content: optional(trickyString), 'content-bin': optional(fc.base64String()), timeout: optional(fc.nat()) }, { requiredKeys: [] })),
    meta: optional(fc.dictionary(token, optional(trickyString), { maxKeys: 2 })),
  }, { requiredKeys: [] })),
  response: optional(fc.record({
    code: optional(fc.integer({ min: -5, max: 1100 })),
    reason: optional(trickyString),
    headers: jsonHeaders,
    body: optional(trickyString),
    'body-bin': optional(fc.base64String()),
  }, { requiredKeys: [] })),
}, { requiredKeys: [] });

const JSON_TYPE: [string, string] = ['Content-Type', 'application/grip-instruct'];

test('JSON instructs: refused with KG_ERR_INSTRUCT_INVALID or usable by Node', (t) => {
  t.notThrows(() => fc.assert(fc.property(jsonInstruct, fc.uniqueArray(gripHeader, { selector: ([name]) => name.toLowerCase(), maxLength: 3 }), (doc, more) => {
    const i = parse([JSON_TYPE, ...more], Buffer.from(JSON.stringify(doc)));
    if (i !== undefined) checkUsable(i);
  }), RUNS));
});

test('JSON instruct bodies of any bytes or any JSON: refused or usable, never a crash', (t) => {
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
    fc.nat({ max: 3000 }).map((d) => Buffer.from(`{"hold":{"channels":[${'['.repeat(d)}${']'.repeat(d)}]}}`)),
  );
  t.notThrows(() => fc.assert(fc.property(body, (b) => {
    const i = parse([JSON_TYPE], b);
    if (i !== undefined) checkUsable(i);
  }), RUNS));
});

test('well-formed instructs round-trip: channels, timeout, status and headers come back as given', (t) => {
  const channel = fc.record({ name: token, prevId: fc.option(token, { nil: undefined }) });
  t.notThrows(() => fc.assert(fc.property(fc.array(channel, { minLength: 1, maxLength: 4 }), fc.integer({ min: 5, max: MAX_TIMER_SEC }),
    fc.integer({ min: 200, max: 999 }), fc.string({ unit: fc.constantFrom(...'abc XYZ-é\t'), maxLength: 10 }).map((r) => r.trim()),
    (channels, timeout, code, reason) => {
      const header = channels.map((c) => (c.prevId === undefined ? c.name : `${c.name}; prev-id=${c.prevId}`)).join(', ');
      const i = parseInstruct({ code: 200, reason: 'OK', headers: [
        ['Grip-Hold', 'response'], ['Grip-Channel', header], ['Grip-Timeout', String(timeout)],
        ['Grip-Status', `${code} ${reason}`], ['X-Kept', reason]] }, { requestUrl: 'http://h/' });
      const expected = channels.map((c) => (c.prevId === undefined ? { name: c.name, filters: [] } : { name: c.name, prevId: c.prevId, filters: [] }));
      return isDeepStrictEqual(i.hold?.channels, expected) && i.hold?.timeoutSec === timeout
        && i.code === code && (reason === '' || i.reason === reason) && isDeepStrictEqual(i.headers, [['X-Kept', reason]]);
    }), RUNS));
});
