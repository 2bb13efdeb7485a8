import test from 'ava';
import { LocalEndpoints, openMany } from '../../../../bench/clients/open-many.js';

const refuse = (): Promise<void> => Promise.reject(new Error('refused'));

test('opens every connection with a bounded number in flight', async (t) => {
  let inFlight = 0;
  let most = 0;
  const r = await openMany(50, 5, 0, async () => {
    most = Math.max(most, ++inFlight);
    await new Promise((res) => setTimeout(res, 1));
    inFlight--;
  });
  t.is(r.opened, 50);
  t.is(most, 5);
  t.is(r.stoppedEarly, undefined);
});

test('stops starting attempts after a run of failures with no success between', async (t) => {
  let attempts = 0;
  const r = await openMany(1000, 4, 3, () => {
    attempts++;
    return refuse();
  }, { maxFailuresInARow: 10 });
  t.is(r.opened, 0);
  t.true(attempts < 20, `${attempts} attempts`);
  t.regex(r.stoppedEarly ?? '', /failed attempts in a row/);
});

test('a success resets the run of failures', async (t) => {
  // Every other attempt fails: never 3 in a row.
  let i = 0;
  const r = await openMany(100, 1, 0, () => (i++ % 2 === 0 ? refuse() : Promise.resolve()), { maxFailuresInARow: 3 });
  t.is(r.opened + r.failed, 100);
  t.is(r.stoppedEarly, undefined);
});

test('stops starting attempts at the deadline', async (t) => {
  const r = await openMany(10_000, 2, 0, () => new Promise((res) => setTimeout(res, 5)), { deadlineMs: 50 });
  t.true(r.opened > 0 && r.opened < 10_000);
  t.regex(r.stoppedEarly ?? '', /deadline/);
});

test('local endpoints spread connections over the source addresses, each attempt on a new port of the series', (t) => {
  const e = new LocalEndpoints(['127.0.0.2', '127.0.0.3'], { first: 20_000, stride: 3 });
  t.deepEqual(e.take(0), { localAddress: '127.0.0.2', localPort: 20_000 });
  t.deepEqual(e.take(1), { localAddress: '127.0.0.3', localPort: 20_000 });
  t.deepEqual(e.take(0), { localAddress: '127.0.0.2', localPort: 20_003 }); // a retry of connection 0
  t.deepEqual(e.take(2), { localAddress: '127.0.0.2', localPort: 20_006 });
});

test('the port series wraps around below 65,536', (t) => {
  const e = new LocalEndpoints(['127.0.0.2'], { first: 65_530, stride: 4 });
  t.deepEqual([0, 1, 2, 3].map((i) => e.take(i).localPort), [65_530, 65_534, 65_530, 65_534]);
});

test('without source addresses the kernel chooses', (t) => {
  t.deepEqual(new LocalEndpoints([], { first: 20_000, stride: 1 }).take(5), {});
  t.deepEqual(new LocalEndpoints(['127.0.0.2']).take(5), { localAddress: '127.0.0.2' });
});
