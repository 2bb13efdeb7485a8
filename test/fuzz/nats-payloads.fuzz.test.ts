import test from 'ava';
import fc from 'fast-check';
import { connect } from 'nats';
import { channelToSubject, DEFAULT_SUBJECT_PREFIX } from '../../sidecar/src/bus/subject.js';
import { NatsServer } from '../helpers/nats-server.js';
import { waitForSubscribers } from '../helpers/sidecar.js';
import { CANARY, CHANNELS, clientRequest, fcOptions, hangingReport, settleClients, startRig } from './harness.js';

// Socket-level fuzz of what arrives on NATS: raw junk published to grip.ch.<channel> subjects
// (not UTF-8, not JSON, wrong shapes, near-valid items, huge) while holds are open on those
// channels, the canary's included. After each batch: no process error, the sidecar still
// connected, holds released once clients leave, and the canary still served through NATS.

const MAX_PAYLOAD = 900_000; // nats-server's default max_payload is 1 MiB

const nearItem = fc.record({
  channel: fc.oneof(fc.constantFrom(...CHANNELS), fc.jsonValue({ maxDepth: 1 })),
  id: fc.oneof(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 })),
  'prev-id': fc.oneof(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 })),
  formats: fc.oneof(
    fc.record({ 'http-stream': fc.oneof(fc.record({ content: fc.string({ maxLength: 40 }) }), fc.record({ action: fc.constantFrom('close', 'x', 1) }), fc.jsonValue({ maxDepth: 2 })) }),
    fc.record({ 'http-response': fc.oneof(fc.record({ body: fc.string({ maxLength: 40 }), code: fc.integer({ min: -1, max: 1000 }) }), fc.jsonValue({ maxDepth: 2 })) }),
    fc.record({ 'ws-message': fc.record({ content: fc.string({ maxLength: 40 }) }) }),
    fc.jsonValue({ maxDepth: 2 }),
  ),
}, { requiredKeys: [] });

const payload: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }).map((s) => Buffer.from(s, 'utf8')) },
  { weight: 4, arbitrary: nearItem.map((v) => Buffer.from(JSON.stringify(v))) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v))) },
  { weight: 1, arbitrary: fc.constantFrom('', 'null', '{', '"\\ud800"', '{"formats":{"http-stream":{"content":"\\ud800"}}}', '\xff\xfe{}').map((s) => Buffer.from(s, 'latin1')) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: MAX_PAYLOAD / 2 - 10 }).map((n) => Buffer.from('['.repeat(n) + ']'.repeat(n))) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: MAX_PAYLOAD - 100 }).map((n) => Buffer.from(JSON.stringify({ formats: { 'http-stream': { content: 'z'.repeat(n) } } }))) },
);
const subject = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...CHANNELS, CANARY).map((c) => channelToSubject(DEFAULT_SUBJECT_PREFIX, c)) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_~%=-]{1,12}$/).map((s) => `${DEFAULT_SUBJECT_PREFIX}${s}`) },
);

const STREAM = (ch: string) => `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nGrip-Hold: stream\r\nGrip-Channel: ${ch}\r\nContent-Length: 0`;
const LONG_POLL = (ch: string) => `HTTP/1.1 200 OK\r\nGrip-Hold: response\r\nGrip-Channel: ${ch}\r\nGrip-Timeout: 5\r\nContent-Length: 0`;

const BATCHES = Number(process.env['FUZZ_NATS_BATCHES'] ?? 20);

test('NATS payloads: no crash, holds released, canary served', async (t) => {
  const nats = await NatsServer.start();
  t.teardown(() => nats.dispose());
  const rig = await startRig({ nats: { servers: nats.url } });
  t.teardown(() => rig.close());
  const nc = await connect({ servers: nats.url, name: 'fuzz-publisher' });
  t.teardown(() => nc.close());
  for (const ch of CHANNELS) {
    rig.origin.answers.set(`sse-${ch}`, { head: STREAM(ch) });
    rig.origin.answers.set(`lp-${ch}`, { head: LONG_POLL(ch) });
  }
  // The canary's NATS subscription may still be on its way: wait until a canary gets through.
  const warm = Date.now() + 10_000;
  for (;;) {
    try { await rig.checkCanary(); break; } catch (err) { if (Date.now() > warm) throw err; }
  }
  let runs = 0;
  let messages = 0;
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(subject, payload), { minLength: 20, maxLength: 80 }), async (batch) => {
    runs++;
    const clients = CHANNELS.flatMap((ch) => [
      clientRequest(rig.side.url(''), 'sse', `/a/sse-${ch}`, { lingerMs: 60_000 }),
      clientRequest(rig.side.url(''), 'get', `/a/lp-${ch}`, {}),
    ]);
    for (const ch of CHANNELS) await waitForSubscribers(rig.side.sidecar.hub, ch, 2, 15_000);
    for (const [subj, data] of batch) nc.publish(subj, data);
    await nc.flush();
    messages += batch.length;
    await new Promise((r) => setTimeout(r, 50));
    rig.checkNoCrash();
    const status = rig.side.sidecar.bus.status().type;
    if (status !== 'connected') throw new Error(`bus ${status} after the batch`);
    for (const ch of CHANNELS) await rig.publishRaw(JSON.stringify({ items: [{ channel: ch, formats: { 'http-response': { body: 'bye\n' } } }] }));
    const { outcomes, unheld } = await settleClients(rig, clients);
    const hanging = hangingReport(outcomes, unheld, clients.map((_, i) => CHANNELS[Math.floor(i / 2)]));
    if (hanging) throw new Error(hanging);
    await rig.checkDrained();
    await rig.checkCanary();
  }), fcOptions(BATCHES));
  const invalid = (await rig.side.sidecar.metrics.natsPayloadsInvalid.get()).values[0]?.value ?? 0;
  t.log(`${runs} batches, ${messages} NATS messages, ${invalid} counted invalid`);
  t.deepEqual(rig.crashes.errors, [], 'no uncaught exception or unhandled rejection');
  t.true(messages > 0);
  t.is(rig.side.sidecar.bus.status().type, 'connected', 'the bus is still connected');
});
