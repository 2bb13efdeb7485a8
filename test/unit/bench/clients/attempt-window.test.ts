import test from 'ava';
import { AttemptWindow } from '../../../../bench/clients/attempt-window.js';

test('runs every attempt, never more than the window at once, in the order given', async (t) => {
  const w = new AttemptWindow(3);
  let inFlight = 0;
  let most = 0;
  const order: number[] = [];
  const done = Array.from({ length: 20 }, (_, i) => new Promise<void>((resolve) => {
    w.run(async () => {
      order.push(i);
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      resolve();
    });
  }));
  t.is(w.pending, 20);
  await Promise.all(done);
  t.is(most, 3);
  t.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
});

test('a failed attempt frees its slot', async (t) => {
  const w = new AttemptWindow(1);
  w.run(() => Promise.reject(new Error('refused')));
  const ran = await new Promise<boolean>((resolve) => w.run(async () => resolve(true)));
  t.true(ran);
});

test('the window must be a positive integer', (t) => {
  t.throws(() => new AttemptWindow(0));
  t.throws(() => new AttemptWindow(1.5));
});
