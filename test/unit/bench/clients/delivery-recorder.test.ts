import test from 'ava';
import { DeliveryRecorder } from '../../../../bench/clients/delivery-recorder.js';
import { MessageTag } from '../../../../bench/wire/message.js';

const m = (seq: number, publishedAtMs = 0) => ({ tag: MessageTag.Measured, seq, publishedAtMs });

test('records latency per delivery and counts duplicates and out-of-order messages', (t) => {
  const r = new DeliveryRecorder();
  const s = { lastSeq: -1 };
  r.onStreamOpened();
  r.onMessage(s, m(1, 10), 15);
  r.onMessage(s, m(1, 10), 16); // duplicate
  r.onMessage(s, m(3, 10), 20);
  r.onMessage(s, m(2, 10), 21); // late
  const c = r.collect();
  t.deepEqual(c.latenciesMs, [5, 10, 11]);
  t.is(c.received, 3);
  t.is(c.duplicates, 1);
  t.is(c.outOfOrder, 1);
  t.is(c.firstReceivedAtMs, 15);
  t.is(c.lastReceivedAtMs, 21);
});

test('a wait resolves when every open stream has the message', async (t) => {
  const r = new DeliveryRecorder();
  const a = { lastSeq: -1 };
  const b = { lastSeq: -1 };
  r.onStreamOpened();
  r.onStreamOpened();
  const waiting = r.waitFor('M', 1, 10_000);
  r.onMessage(a, m(1), 1);
  r.onMessage(b, m(1), 1);
  t.deepEqual(await waiting, { reached: 2, open: 2, timedOut: false });
});

test('a wait resolves when the streams still missing the message are lost', async (t) => {
  const r = new DeliveryRecorder();
  r.onStreamOpened();
  r.onStreamOpened();
  const waiting = r.waitFor('W', 4, 10_000);
  r.onMessage({ lastSeq: -1 }, { tag: MessageTag.Warmup, seq: 4, publishedAtMs: 0 }, 1);
  r.onStreamLost();
  t.deepEqual(await waiting, { reached: 1, open: 1, timedOut: false });
  t.is(r.collect().dropped, 1);
});

test('a wait times out with what was reached', async (t) => {
  const r = new DeliveryRecorder();
  r.onStreamOpened();
  t.deepEqual(await r.waitFor('M', 9, 20), { reached: 0, open: 1, timedOut: true });
});
