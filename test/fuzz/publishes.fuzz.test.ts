import test from 'ava';
import fc from 'fast-check';
import { waitForSubscribers } from '../helpers/sidecar.js';
import { CHANNELS, brief, clientRequest, fcOptions, hangingReport, settleClients, startRig } from './harness.js';

// Socket-level fuzz of the HTTP publish API while holds are open: generated publish bodies
// (valid and invalid items, hostile header values and reasons in http-response, body-patch
// ops, http-stream actions, ws-message, wrong shapes, huge and deeply nested JSON within the
// body limit). After each batch: every publish got 200 or a 4xx, no process error, every
// client answered or legitimately held, every hold released once clients leave, canary served.

const MAX_PUBLISH_BODY = 200_000;

const hostileChar = fc.oneof(
  fc.constantFrom(',', ';', '"', '\\', ' ', '\t', '\r', '\n', '\0', '\x01', '\x7f', '\xff', 'é', '€', '𝄞', '\ud800'),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
);
const hostile = fc.oneof(
  fc.string({ unit: hostileChar, maxLength: 30 }),
  fc.constantFrom('', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Grip-Hold', 'Set-Cookie', '99999999999999999999'),
);
const anyNumber = fc.oneof(fc.integer({ min: -1, max: 1000 }), fc.constantFrom(1e20, -0, 0.5, Number.MAX_SAFE_INTEGER), fc.double());
/** A value of the expected type most of the time, anything JSON otherwise. */
const orJunk = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 40, arbitrary: arb as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });

const patchOp = fc.record({
  op: orJunk(fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test')),
  path: orJunk(fc.constantFrom('', '/', '/a', '/a/0', '/a/-', '/b/c', '/__proto__/x', '/a/999999999')),
  from: orJunk(fc.constantFrom('/a', '/a/0', '/missing')),
  value: fc.jsonValue({ maxDepth: 2 }),
}, { requiredKeys: ['op'] });

const httpResponse = fc.record({
  code: orJunk(anyNumber),
  reason: orJunk(hostile),
  headers: orJunk(fc.oneof(fc.dictionary(hostile, orJunk(hostile), { maxKeys: 4 }), fc.array(fc.tuple(hostile, hostile), { maxLength: 3 }))),
  body: orJunk(fc.string({ maxLength: 100 })),
  'body-bin': orJunk(fc.oneof(fc.base64String({ maxLength: 40 }), hostile)),
  'body-patch': orJunk(fc.array(patchOp, { maxLength: 4 })),
}, { requiredKeys: [] });
const httpStream = fc.record({
  content: orJunk(fc.string({ maxLength: 100 })),
  'content-bin': orJunk(fc.oneof(fc.base64String({ maxLength: 40 }), hostile)),
  action: orJunk(fc.constantFrom('send', 'close', 'hint', 'refresh')),
}, { requiredKeys: [] });
const wsMessage = fc.record({
  content: orJunk(fc.string({ maxLength: 100 })),
  'content-bin': orJunk(fc.base64String({ maxLength: 40 })),
  action: orJunk(fc.constantFrom('send', 'close', 'hint', 'refresh')),
  code: orJunk(anyNumber),
  reason: orJunk(hostile),
}, { requiredKeys: [] });

/** Items of the right shape whose values are hostile: what a careless publisher sends. */
const plainItem = fc.record({
  channel: fc.constantFrom(...CHANNELS),
  formats: fc.oneof(
    fc.record({ 'http-stream': fc.oneof(fc.record({ content: fc.string({ unit: hostileChar, maxLength: 60 }) }), fc.constant({ action: 'close' })) }),
    fc.record({ 'http-response': fc.record({
      code: fc.integer({ min: 200, max: 999 }), reason: fc.string({ unit: 'grapheme', maxLength: 20 }),
      headers: fc.dictionary(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 20 }), { maxKeys: 3 }),
      body: fc.string({ maxLength: 60 }),
    }, { requiredKeys: ['body'] }) }),
    fc.record({ 'http-response': fc.record({ 'body-patch': fc.array(patchOp, { maxLength: 4 }) }) }),
    fc.record({ 'ws-message': fc.record({ content: fc.string({ maxLength: 60 }) }) }),
  ),
});

const item = fc.oneof(
  { weight: 8, arbitrary: plainItem },
  { weight: 8, arbitrary: fc.record({
    channel: orJunk(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...CHANNELS) }, { weight: 1, arbitrary: hostile })),
    id: orJunk(fc.string({ maxLength: 10 })),
    'prev-id': orJunk(fc.string({ maxLength: 10 })),
    formats: orJunk(fc.record({ 'http-response': httpResponse, 'http-stream': httpStream, 'ws-message': wsMessage }, { requiredKeys: [] })),
    meta: orJunk(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }))),
  }, { requiredKeys: ['channel', 'formats'] }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** A publish body: mostly {items}, else wrong shapes, junk, huge or deeply nested JSON. */
const publishBody = fc.oneof(
  { weight: 10, arbitrary: fc.array(item, { minLength: 1, maxLength: 3 }).map((items) => JSON.stringify({ items })) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 50 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: MAX_PUBLISH_BODY / 2 - 100 }).map((n) => `{"items":${'['.repeat(n)}${']'.repeat(n)}}`) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 30_000 }).map((n) => JSON.stringify({ items: [{ channel: 'f0', formats: { 'http-stream': { content: `${'{"a":'.repeat(n)}1${'}'.repeat(n)}\n` } } }] })) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: MAX_PUBLISH_BODY - 200 }).map((n) => JSON.stringify({ items: [{ channel: 'f1', formats: { 'http-response': { body: 'x'.repeat(n) }, 'http-stream': { content: 'y'.repeat(n) } } }] })) },
);

const STREAM = (ch: string) => `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nGrip-Hold: stream\r\nGrip-Channel: ${ch}\r\nContent-Length: 0`;
/** Long-polls hold a JSON body, so body-patch items have something to patch. */
const LP_BODY = '{"a":[1,2],"b":{}}';
const LONG_POLL = (ch: string) => `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nGrip-Hold: response\r\nGrip-Channel: ${ch}\r\nGrip-Timeout: 5\r\nContent-Length: ${LP_BODY.length}`;

const BATCHES = Number(process.env['FUZZ_PUBLISH_BATCHES'] ?? 30);

test('publishes: only 200 or 4xx, no crash, holds released, canary served', async (t) => {
  const rig = await startRig({ limits: { originTimeoutMs: 300, originBodyTimeoutMs: 300, headerTimeoutMs: 1000, requestBodyTimeoutMs: 1000, maxPublishBodyBytes: MAX_PUBLISH_BODY } });
  t.teardown(() => rig.close());
  for (const ch of CHANNELS) {
    rig.origin.answers.set(`sse-${ch}`, { head: STREAM(ch) });
    rig.origin.answers.set(`lp-${ch}`, { head: LONG_POLL(ch), body: LP_BODY });
  }
  let runs = 0;
  let publishes = 0;
  const statuses = new Map<number, number>();
  await fc.assert(fc.asyncProperty(fc.array(publishBody, { minLength: 10, maxLength: 40 }), async (bodies) => {
    runs++;
    // Two streams and one long-poll per channel, open while the batch is published.
    const clients = CHANNELS.flatMap((ch) => [
      clientRequest(rig.side.url(''), 'sse', `/a/sse-${ch}`, { lingerMs: 60_000 }),
      clientRequest(rig.side.url(''), 'sse', `/a/sse-${ch}`, { lingerMs: 60_000 }),
      clientRequest(rig.side.url(''), 'get', `/a/lp-${ch}`, { lingerMs: 0 }),
    ]);
    for (const ch of CHANNELS) await waitForSubscribers(rig.side.sidecar.hub, ch, 3, 15_000);
    const results = await Promise.all(bodies.map((b) => rig.publishRaw(b)));
    publishes += bodies.length;
    for (const s of results) statuses.set(s, (statuses.get(s) ?? 0) + 1);
    const bad = results.flatMap((s, i) => (s === 200 || (s >= 400 && s < 500) ? [] : [`${s} for ${brief(bodies[i], 1500)}`]));
    if (bad.length > 0) throw new Error(`publish answered neither 200 nor 4xx:\n${bad.join('\n')}`);
    // Release the long-polls still held, then let every client go.
    for (const ch of CHANNELS) await rig.publishRaw(JSON.stringify({ items: [{ channel: ch, formats: { 'http-response': { body: 'bye\n' } } }] }));
    const { outcomes, unheld } = await settleClients(rig, clients);
    rig.checkNoCrash();
    const hanging = hangingReport(outcomes, unheld, clients.map((_, i) => CHANNELS[Math.floor(i / 3)]));
    if (hanging) throw new Error(hanging);
    await rig.checkDrained();
    await rig.checkCanary();
  }), fcOptions(BATCHES));
  t.log(`${runs} batches, ${publishes} publishes; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  t.deepEqual(rig.crashes.errors, [], 'no uncaught exception or unhandled rejection');
  t.true(publishes > 0);
  t.deepEqual([...statuses.keys()].filter((s) => s !== 200 && (s < 400 || s >= 500)), [], 'every publish answered 200 or 4xx');
});
