import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { KgError } from '../../sidecar/src/errors.js';
import { encodePublishItem, parsePublishItem, parsePublishRequest, reasonPhrase } from '../../sidecar/src/grip/publish-item.js';
import { buildPublishedResponse } from '../../sidecar/src/grip/published-response.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';
import { RUNS, nodeWrites, refusedOnlyWith, token, trickyChar, trickyString } from './arbitraries.js';

// Publish items from the HTTP API and NATS: refused with KG_ERR_PUBLISH_INVALID, or accepted
// items that encode and parse back to themselves and that Node can deliver.

const junk = fc.jsonValue({ maxDepth: 1 });
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> => fc.oneof({ weight: 20, arbitrary: a }, { weight: 1, arbitrary: junk });

const pointer = fc.array(fc.constantFrom('a', 'b', '0', '1', '-', '~0', '~1', '', '~'), { maxLength: 3 }).map((segs) => segs.map((s) => `/${s}`).join(''));
const operation = fc.record({
  op: maybe(fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test')),
  path: maybe(pointer),
  from: maybe(pointer),
  value: fc.jsonValue({ maxDepth: 2 }),
}, { requiredKeys: ['op', 'path'] });
const patch = fc.array(operation, { maxLength: 6 });

const headers = fc.oneof(
  fc.dictionary(fc.oneof({ weight: 9, arbitrary: token }, { weight: 1, arbitrary: trickyString }), fc.oneof({ weight: 9, arbitrary: token }, { weight: 1, arbitrary: trickyString }), { maxKeys: 3 }),
  fc.array(fc.tuple(token, fc.oneof(token, trickyString)), { maxLength: 3 }),
  junk,
);
const httpResponse = fc.record({
  action: maybe(fc.constantFrom('send', 'hint', 'refresh', 'close')),
  code: maybe(fc.oneof(fc.integer({ min: 0, max: 1100 }), fc.integer({ min: 100, max: 999 }).map(String))),
  reason: maybe(fc.oneof(token, trickyString)),
  headers,
  body: maybe(trickyString),
  'body-bin': maybe(fc.base64String({ maxLength: 12 })),
  'body-patch': maybe(patch),
}, { requiredKeys: [] });
const httpStream = fc.record({ action: maybe(fc.constantFrom('send', 'close', 'hint', 'refresh')), content: maybe(trickyString), 'content-bin': maybe(fc.base64String({ maxLength: 12 })) }, { requiredKeys: [] });
const wsMessage = fc.record({
  action: maybe(fc.constantFrom('send', 'close', 'refresh', 'hint')),
  type: maybe(fc.constantFrom('text', 'binary', 'ping', 'pong')),
  content: maybe(trickyString),
  'content-bin': maybe(fc.base64String({ maxLength: 12 })),
  code: maybe(fc.integer({ min: 0, max: 5000 })),
  reason: maybe(trickyString),
}, { requiredKeys: [] });
const item = fc.record({
  channel: maybe(token),
  id: maybe(token),
  'prev-id': maybe(token),
  meta: maybe(fc.dictionary(token, token, { maxKeys: 2 })),
  'no-seq': maybe(fc.boolean()),
  formats: fc.record({ 'http-response': httpResponse, 'http-stream': httpStream, 'ws-message': wsMessage }, { requiredKeys: [] }),
}, { requiredKeys: ['formats'] });

function checkDeliverable(p: PublishItem): void {
  const hr = p.formats['http-response'];
  if (hr === undefined) return;
  nodeWrites(hr.code, hr.reason ?? reasonPhrase(hr.code), hr.headers);
}

test('publish items: refused with KG_ERR_PUBLISH_INVALID, or deliverable and round-tripping through the bus encoding', (t) => {
  let accepted = 0;
  fc.assert(fc.property(item, (v) => {
    const p = refusedOnlyWith('KG_ERR_PUBLISH_INVALID', () => parsePublishItem(v));
    if (p === undefined) return true;
    accepted++;
    checkDeliverable(p);
    return isDeepStrictEqual(parsePublishItem(JSON.parse(JSON.stringify(encodePublishItem(p)))), p);
  }), RUNS);
  t.true(accepted > RUNS.numRuns / 10, `only ${accepted} accepted`);
});

test('any JSON document as a publish request: refused with KG_ERR_PUBLISH_INVALID or parsed, never a crash', (t) => {
  const doc = fc.oneof(fc.jsonValue(), fc.array(item, { maxLength: 3 }).map((items) => ({ items })),
    fc.nat({ max: 3000 }).map((d) => JSON.parse(`{"items":[{"channel":"c","http-response":{"body-patch":[{"op":"add","path":"","value":${'['.repeat(d)}0${']'.repeat(d)}}]}}]}`) as unknown));
  t.notThrows(() => fc.assert(fc.property(doc, (d) => {
    const items = refusedOnlyWith('KG_ERR_PUBLISH_INVALID', () => parsePublishRequest(d));
    // What is accepted goes to the bus as JSON: that must not overflow either.
    for (const p of items ?? []) JSON.stringify(encodePublishItem(p));
  }), RUNS));
});

test('an accepted body-patch applied to any JSON body stays within the limit and is sent or explained, never thrown', (t) => {
  const limit = 2000;
  const held = fc.tuple(fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), trickyString), fc.constantFrom('', '\n', '\r\n'))
    .map(([text, nl]) => Buffer.from(text + nl));
  t.notThrows(() => fc.assert(fc.property(patch, held, (ops, body) => {
    const p = refusedOnlyWith('KG_ERR_PUBLISH_INVALID', () => parsePublishItem({ channel: 'c', formats: { 'http-response': { 'body-patch': ops } } }));
    const format = p?.formats['http-response'];
    if (format === undefined) return true;
    const before = JSON.stringify(format.bodyPatch);
    const r = buildPublishedResponse({ code: 200, reason: 'OK', headers: [['X-T', '1']], body }, format, { maxPatchedBodyBytes: limit });
    nodeWrites(r.code, r.reason, r.headers);
    const explained = r.patchError === undefined || (r.patchError instanceof KgError && r.body.length === 0);
    return explained && r.body.length <= limit + 2 && JSON.stringify(format.bodyPatch) === before;
  }), RUNS));
});

test('http-response header values and reasons: refused only for a control char, else sent as their UTF-8 bytes (D9)', (t) => {
  const text = fc.string({ unit: fc.oneof(trickyChar, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 12 });
  t.notThrows(() => fc.assert(fc.property(text, text, (value, reason) => {
    const p = refusedOnlyWith('KG_ERR_PUBLISH_INVALID', () => parsePublishItem({ channel: 'c', formats: { 'http-response': { body: 'x', reason, headers: { 'X-V': value } } } }));
    const hasControl = /[\x00-\x08\x0a-\x1f\x7f]/.test(value + reason);
    if (p === undefined) return hasControl;
    const hr = p.formats['http-response'];
    nodeWrites(hr?.code ?? 200, hr?.reason ?? '', hr?.headers ?? []);
    return !hasControl
      && Buffer.from(hr?.reason ?? '', 'latin1').equals(Buffer.from(reason, 'utf8'))
      && Buffer.from(hr?.headers[0]?.[1] ?? '', 'latin1').equals(Buffer.from(value, 'utf8'));
  }), RUNS));
});
