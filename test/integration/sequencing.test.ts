import test from 'ava';
import { hostname } from 'node:os';
import { connect, type NatsConnection } from 'nats';
import { whenLive } from '../../sidecar/src/bus/bus.js';
import { channelToSubject, DEFAULT_SUBJECT_PREFIX } from '../../sidecar/src/bus/subject.js';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { NatsServer } from '../helpers/nats-server.js';
import { sseNumbers } from '../helpers/reliability.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

// Ordering and gap recovery (spec 5.2, 5.3) over real NATS without history: items published
// out of order reach clients in id order; a gap makes a hold recover from the origin exactly
// once, with Grip-Last; a hold behind its channel recovers at once; hints pull from the origin.
// Also the subscription events a sidecar publishes for its channels.

let nats: NatsServer | undefined;
let publisher: NatsConnection | undefined;
test.before(async () => {
  nats = await NatsServer.start();
  publisher = await connect({ servers: nats.url });
});
test.after.always(async () => {
  await publisher?.close();
  await nats?.dispose();
});

/** Publishes items (JSON bodies without channel) to a channel through NATS, in this order. */
async function publish(channel: string, items: Array<Record<string, unknown>>): Promise<void> {
  for (const item of items) publisher!.publish(channelToSubject(DEFAULT_SUBJECT_PREFIX, channel), JSON.stringify(item));
  await publisher!.flush();
}

const sse = (n: number, prev?: number) => ({
  id: String(n), ...(prev !== undefined ? { 'prev-id': String(prev) } : {}), formats: { 'http-stream': { content: `data: ${n}\n\n` } },
});
const answer = (n: number, prev: number) => ({ id: String(n), 'prev-id': String(prev), formats: { 'http-response': { body: `item ${n}\n` } } });

const sidecarFor = (origin: string, extra: Record<string, unknown> = {}) => startTestSidecar({
  origin, sigKey: TEST_SIG_KEY, nats: { servers: nats!.url, reconnectWaitMs: 100 }, ...extra,
});

async function ready(side: Awaited<ReturnType<typeof sidecarFor>>, channel: string, subscribers: number): Promise<void> {
  await waitForSubscribers(side.sidecar.hub, channel, subscribers);
  await whenLive(side.sidecar.bus, channel);
}

test('items published out of order through NATS reach the client in id order', async (t) => {
  const origin = await startGripOrigin({
    '/s': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'order'); res.end('open\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url);
  t.teardown(() => side.close());
  const stream = await openStream(side.url('/s'));
  t.teardown(() => stream.close());
  await ready(side, 'order', 1);
  await publish('order', [sse(1), sse(3, 2), sse(2, 1), sse(5, 4), sse(4, 3)]);
  await stream.waitFor('data: 5\n');
  t.deepEqual(sseNumbers(stream.text), [1, 2, 3, 4, 5]);
  t.regex(await side.sidecar.metrics.registry.metrics(), /kong_grip_sequencer_items_total\{outcome="waited"\} 2/);
});

test('a gap makes a stream fetch its next link exactly once, with Grip-Last, and nothing is repeated', async (t) => {
  const origin = await startGripOrigin({
    '/feed': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'gap; prev-id=1');
      res.setHeader('Grip-Link', '</feed/recover>; rel=next; timeout=120');
      res.end('open\n');
    },
    '/feed/recover': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'gap; prev-id=4');
      res.setHeader('Grip-Link', '</feed/recover>; rel=next; timeout=120');
      res.end('data: 3\n\ndata: 4\n\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { sequencing: { waitMs: 200 } });
  t.teardown(() => side.close());
  const stream = await openStream(side.url('/feed'));
  t.teardown(() => stream.close());
  await ready(side, 'gap', 1);
  await publish('gap', [sse(2, 1)]);
  await stream.waitFor('data: 2\n');
  // 3 is never published: 4 waits for it, then goes out, and the stream sees the gap.
  await publish('gap', [sse(4, 3)]);
  await stream.waitFor('data: 4\n');
  await publish('gap', [sse(5, 4)]);
  await stream.waitFor('data: 5\n');
  t.deepEqual(sseNumbers(stream.text), [2, 3, 4, 5]);
  const recoveries = origin.seen.filter((r) => r.url === '/feed/recover');
  t.is(recoveries.length, 1);
  t.is(recoveries[0]?.headers['grip-last'], 'gap; last-id=2');
  t.regex(await side.sidecar.metrics.registry.metrics(), /kong_grip_sequencer_items_total\{outcome="released_by_timeout"\} 1/);
});

test('a gap makes a long-poll ask the origin again exactly once, with Grip-Last', async (t) => {
  const origin = await startGripOrigin({
    '/poll': (req, res) => {
      const last = req.headers['grip-last'];
      if (last !== undefined) {
        res.end(`recovered after ${String(last)}\n`);
        return;
      }
      res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'lpgap; prev-id=1'); res.end('nothing\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url);
  t.teardown(() => side.close());
  const poll = request(side.url('/poll'));
  await ready(side, 'lpgap', 1);
  await publish('lpgap', [answer(3, 2)]);
  t.is((await poll).body, 'recovered after lpgap; last-id=1\n');
  t.is(origin.seen.length, 2, 'the request, then one recovery');
});

test('a long-poll whose prev-id is behind its channel asks the origin again at once, once', async (t) => {
  const origin = await startGripOrigin({
    '/poll': (req, res) => {
      const last = req.headers['grip-last'];
      if (last !== undefined) {
        res.end(`caught up from ${String(last)}\n`);
        return;
      }
      const after = new URL(req.url ?? '/', 'http://x').searchParams.get('after');
      res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', `acc; prev-id=${after}`); res.end('nothing\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url);
  t.teardown(() => side.close());
  const first = request(side.url('/poll?after=0'));
  await ready(side, 'acc', 1);
  await publish('acc', [answer(1, 0)]);
  t.is((await first).body, 'item 1\n');
  // The channel lingers with its position (1); a poll that reflects 0 is behind.
  const behind = await request(side.url('/poll?after=0'));
  t.is(behind.body, 'caught up from acc; last-id=0\n');
  t.is(origin.seen.length, 3);
  const current = request(side.url('/poll?after=1'));
  await waitForSubscribers(side.sidecar.hub, 'acc', 1);
  await publish('acc', [answer(2, 1)]);
  t.is((await current).body, 'item 2\n', 'a poll at the position holds');
  t.is(origin.seen.length, 4);
  t.regex(await side.sidecar.metrics.registry.metrics(), /kong_grip_catch_ups_total\{result="origin"\} 1/);
});

test('a hint published through NATS makes the origin receive the request again, for a long-poll and a stream', async (t) => {
  let polls = 0;
  const origin = await startGripOrigin({
    '/poll': (_req, res) => {
      if (polls++ > 0) {
        res.end('fresh from the origin\n');
        return;
      }
      res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'hinted'); res.end('nothing\n');
    },
    '/s': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'hinted');
      res.setHeader('Grip-Link', '</s/more>; rel=next'); res.end('start\n');
    },
    '/s/more': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'hinted'); res.end('pulled\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url);
  t.teardown(() => side.close());
  const poll = request(side.url('/poll'));
  const stream = await openStream(side.url('/s'));
  t.teardown(() => stream.close());
  await ready(side, 'hinted', 2);
  await publish('hinted', [{ formats: { 'http-response': { action: 'hint' }, 'http-stream': { action: 'hint' } } }]);
  t.is((await poll).body, 'fresh from the origin\n');
  t.is(await stream.waitFor('pulled\n'), 'start\npulled\n');
  t.deepEqual(origin.seen.map((r) => r.url).sort(), ['/poll', '/poll', '/s', '/s/more']);
});

test('a sidecar announces a channel on NATS when it gains its first and loses its last subscriber', async (t) => {
  const events = await connect({ servers: nats!.url });
  t.teardown(() => events.close());
  const seen: Array<{ subject: string; body: Record<string, unknown> }> = [];
  let wake: () => void = () => {};
  // Other tests share this server: only this test's channel.
  const sub = events.subscribe('grip.sub.ev%2E1', {
    callback: (_err, msg) => {
      seen.push({ subject: msg.subject, body: JSON.parse(msg.string()) as Record<string, unknown> });
      wake();
    },
  });
  await events.flush();
  const waitForEvents = async (n: number): Promise<void> => {
    while (seen.length < n) await new Promise<void>((resolve) => { wake = resolve; });
  };
  const origin = await startGripOrigin({
    '/s': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'ev.1'); res.end('open\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { hold: { channelLingerMs: 50 } });
  t.teardown(() => side.close());
  const a = await openStream(side.url('/s'));
  const b = await openStream(side.url('/s'));
  await ready(side, 'ev.1', 2);
  await waitForEvents(1);
  const instance = `${hostname()}:${process.pid}`;
  t.deepEqual(seen[0], { subject: 'grip.sub.ev%2E1', body: { channel: 'ev.1', event: 'subscribed', instance } });
  a.close();
  b.close();
  await waitForEvents(2);
  t.deepEqual(seen[1]?.body, { channel: 'ev.1', event: 'unsubscribed', instance });
  t.is(seen.length, 2, 'one event each way, whatever the number of clients');
  // A sidecar that shuts down says so for the channels it still has.
  const c = await openStream(side.url('/s'));
  await waitForEvents(3);
  t.is(seen[2]?.body['event'], 'subscribed');
  await side.close();
  await waitForEvents(4);
  t.deepEqual(seen[3]?.body, { channel: 'ev.1', event: 'unsubscribed', instance });
  c.close();
  sub.unsubscribe();
});
