import test from 'ava';
import { connect, type NatsConnection } from 'nats';
import { withDeadline } from '../../bench/proc.js';
import { openStream, request, waitForEach, type StreamReader } from '../helpers/http.js';
import {
  metricValue, publishHttp, sidecarArgs, sseItem, startChannelOrigin, subjectOf, waitForInterest, waitForNoInterest,
  waitForReadiness,
} from '../helpers/nats-e2e.js';
import { NatsServer, waitUntil } from '../helpers/nats-server.js';
import { SidecarProcess } from '../helpers/sidecar-process.js';

// Two sidecar processes on one nats-server, with clients on both: a publish made anywhere
// (either sidecar's publish API, or straight into NATS) reaches every client.

let nats: NatsServer;
let origin: Awaited<ReturnType<typeof startChannelOrigin>>;
let a: SidecarProcess;
let b: SidecarProcess;
let raw: NatsConnection;

test.before(async () => {
  nats = await NatsServer.start();
  origin = await startChannelOrigin();
  // A short linger so a released channel leaves NATS quickly.
  const yaml = 'hold:\n  channelLingerMs: 100\n';
  [a, b] = await Promise.all([
    SidecarProcess.start(sidecarArgs(nats, origin.url), { yaml }),
    SidecarProcess.start(sidecarArgs(nats, origin.url), { yaml }),
  ]);
  await Promise.all([waitForReadiness(a, true), waitForReadiness(b, true)]);
  raw = await connect({ servers: nats.url, name: 'test-publisher' });
});

test.after.always(async () => {
  await raw?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await origin?.close();
  await nats?.dispose();
});

async function sse(side: SidecarProcess, channel: string): Promise<StreamReader> {
  const stream = await withDeadline(openStream(side.url(`/sse?ch=${encodeURIComponent(channel)}`)), 10_000, `the response head on ${channel}`);
  await waitForEach([stream], 'event: open\n');
  return stream;
}

test.serial('one publish to either sidecar, or into NATS, reaches the clients of both', async (t) => {
  const streams = [await sse(a, 'news'), await sse(a, 'news'), await sse(b, 'news'), await sse(b, 'news')];
  t.teardown(() => streams.forEach((s) => s.close()));
  await waitForInterest(nats, 'news', 2);

  t.is((await publishHttp(a, [sseItem('news', 'via a')])).status, 200);
  await Promise.all(streams.map((s) => s.waitFor('data: via a\n\n')));
  t.is((await publishHttp(b, [sseItem('news', 'via b')])).status, 200);
  await Promise.all(streams.map((s) => s.waitFor('data: via b\n\n')));
  raw.publish('grip.ch.news', Buffer.from('{"formats":{"http-stream":{"content":"data: via nats\\n\\n"}}}'));
  await Promise.all(streams.map((s) => s.waitFor('data: via nats\n\n')));
  for (const s of streams) t.is(s.text, 'event: open\ndata:\n\ndata: via a\n\ndata: via b\n\ndata: via nats\n\n');
});

test.serial('a long-poll on one sidecar is answered by a publish to the other', async (t) => {
  const pending = request(b.url('/poll?ch=orders'));
  await waitForInterest(nats, 'orders', 1);
  await publishHttp(a, [{ channel: 'orders', formats: { 'http-response': { code: 201, body: 'order 1\n' } } }]);
  const res = await pending;
  t.is(res.status, 201);
  t.is(res.body, 'order 1\n');
});

test.serial('channel names with dots, wildcards, spaces and non-ASCII round-trip end to end', async (t) => {
  const names = ['user.42', 'a*b', 'x>y', '>', 'with space', 'tab\there', 'café', '日本', '🎉 party', '100%'];
  const expectedSubjects = [
    'grip.ch.user%2E42', 'grip.ch.a%2Ab', 'grip.ch.x%3Ey', 'grip.ch.%3E', 'grip.ch.with%20space', 'grip.ch.tab%09here',
    'grip.ch.caf%C3%A9', 'grip.ch.%E6%97%A5%E6%9C%AC', 'grip.ch.%F0%9F%8E%89%20party', 'grip.ch.100%25',
  ];
  t.deepEqual(names.map(subjectOf), expectedSubjects);
  const streams = await Promise.all(names.map((n) => sse(b, n)));
  t.teardown(() => streams.forEach((s) => s.close()));
  for (const n of names) await waitForInterest(nats, n, 1);
  const subjects = await nats.subjects();
  for (const subject of expectedSubjects) t.true(subjects.includes(subject), subject);

  t.is((await publishHttp(a, names.map((n, i) => sseItem(n, `#${i}`)))).status, 200);
  await Promise.all(streams.map((s, i) => s.waitFor(`data: #${i}\n\n`)));
  streams.forEach((s, i) => t.is(s.text, `event: open\ndata:\n\ndata: #${i}\n\n`, names[i]));
});

test.serial('a channel is subscribed on NATS while it has clients and released after they leave', async (t) => {
  const subject = subjectOf('ephemeral');
  t.false((await nats.subjects()).includes(subject));
  const first = await sse(a, 'ephemeral');
  const second = await sse(a, 'ephemeral');
  await waitForInterest(nats, 'ephemeral', 1);
  t.is((await nats.subjects()).filter((s) => s === subject).length, 1, 'one NATS subscription per sidecar, not per client');
  first.close();
  await withDeadline(first.waitForEnd(), 5000, 'the first stream to end');
  t.true((await nats.subjects()).includes(subject), 'still wanted by the second client');
  second.close();
  await waitForNoInterest(nats, 'ephemeral');
  t.false((await nats.subjects()).includes(subject), 'released after the last client left');
  // And it comes back with the next client.
  const third = await sse(a, 'ephemeral');
  t.teardown(() => third.close());
  await waitForInterest(nats, 'ephemeral', 1);
  t.is((await nats.subjects()).filter((s) => s === subject).length, 1, 'subscribed again, once');
});

test.serial('malformed NATS payloads are counted and logged, and other deliveries go on', async (t) => {
  const streams = [await sse(a, 'mixed'), await sse(b, 'mixed')];
  t.teardown(() => streams.forEach((s) => s.close()));
  await waitForInterest(nats, 'mixed', 2);
  const before = await Promise.all([a, b].map(async (s) => metricValue((await request(`${s.controlUri}metrics`)).body, 'kong_grip_nats_payloads_invalid_total') ?? 0));
  const good = (text: string) => Buffer.from(JSON.stringify({ formats: { 'http-stream': { content: `data: ${text}\n\n` } } }));
  raw.publish('grip.ch.mixed', good('one'));
  raw.publish('grip.ch.mixed', Buffer.from('{not json'));
  raw.publish('grip.ch.mixed', Buffer.from('{"formats":{"http-stream":{"content-bin":"%%%"}}}'));
  raw.publish('grip.ch.mixed', Buffer.from('{"channel":"elsewhere","formats":{"http-stream":{"content":"x"}}}'));
  raw.publish('grip.ch.mixed', good('two'));
  await Promise.all(streams.map((s) => s.waitFor('data: two\n\n')));
  for (const s of streams) t.is(s.text, 'event: open\ndata:\n\ndata: one\n\ndata: two\n\n');

  for (const [i, side] of [a, b].entries()) {
    await waitUntil('the invalid payloads are counted', async () => {
      const text = (await request(`${side.controlUri}metrics`)).body;
      return metricValue(text, 'kong_grip_nats_payloads_invalid_total') === (before[i] ?? 0) + 3;
    });
    const logged = await side.waitForLog((l) => l.msg === 'nats payload invalid' && String(l['error']).includes('elsewhere'));
    t.is(logged['subject'], 'grip.ch.mixed');
    t.is(logged['code'], 'KG_ERR_NATS_PAYLOAD_INVALID');
  }
  t.is((await request(`${a.controlUri}readyz`)).status, 200, 'still up and ready');
});
