import test from 'ava';
import { KeepAliveWheel, type KeepAliveMember } from '../../../sidecar/src/holds/keep-alive-wheel.js';

/** A member that counts its keep-alives; `quietFor` restarts its wait as a data write would. */
class Member implements KeepAliveMember {
  keepAliveMark = 0;
  keepAliveTicks = 0;
  keepAliveSlot = -1;
  sent: number[] = [];
  constructor(private readonly clock: { now: number }) {}
  sendKeepAlive(): void {
    this.sent.push(this.clock.now);
  }
}

/** A wheel on a fake clock: `at(ms)` moves the clock and runs the wheel as its timer would. */
function fakeWheel(resolutionMs = 100) {
  const clock = { now: 0 };
  const wheel = new KeepAliveWheel(resolutionMs, () => clock.now);
  const at = (ms: number): void => {
    clock.now = ms;
    wheel.advance();
  };
  return { clock, wheel, at };
}

test('sends a keep-alive once the stream has been quiet for the timeout, not before', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const m = new Member(clock);
  at(50);
  wheel.add(m, 1000);
  for (let ms = 100; ms < 1050; ms += 100) at(ms);
  t.deepEqual(m.sent, []);
  at(1100);
  at(1200);
  t.is(m.sent.length, 1);
  t.true((m.sent[0] as number) >= 1050 && (m.sent[0] as number) <= 1050 + 300);
});

test('repeats every timeout while the stream stays quiet', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const m = new Member(clock);
  wheel.add(m, 500);
  for (let ms = 100; ms <= 3000; ms += 100) at(ms);
  t.true(m.sent.length >= 4 && m.sent.length <= 6, `sent ${m.sent.length}`);
  for (let i = 1; i < m.sent.length; i++) t.true((m.sent[i] as number) - (m.sent[i - 1] as number) >= 500);
});

test('a write that restarts the wait (mark moved to the current tick) postpones the keep-alive', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const m = new Member(clock);
  wheel.add(m, 1000);
  for (let ms = 100; ms <= 3000; ms += 100) {
    at(ms);
    if (ms % 500 === 0) m.keepAliveMark = wheel.currentTick(); // data every 500 ms
  }
  t.deepEqual(m.sent, []);
  for (let ms = 3100; ms <= 4300; ms += 100) at(ms);
  t.is(m.sent.length, 1);
  t.true((m.sent[0] as number) >= 4000);
});

test('a removed member gets no keep-alive, and the others still do', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const leaving = new Member(clock);
  const staying = new Member(clock);
  wheel.add(leaving, 300);
  wheel.add(staying, 300);
  wheel.remove(leaving);
  wheel.remove(leaving); // idempotent
  for (let ms = 100; ms <= 1000; ms += 100) at(ms);
  t.deepEqual(leaving.sent, []);
  t.true(staying.sent.length >= 2);
  t.is(leaving.keepAliveSlot, -1);
});

test('a member that leaves while being sent to is not placed again', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const m = new Member(clock);
  m.sendKeepAlive = () => wheel.remove(m); // as a hold closing as a slow consumer would
  wheel.add(m, 200);
  for (let ms = 100; ms <= 1000; ms += 100) at(ms);
  t.is(m.keepAliveSlot, -1);
});

test('a late timer catches up and sends once, not once per missed interval', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const m = new Member(clock);
  wheel.add(m, 200);
  at(5000); // the event loop was blocked for 5 s
  t.is(m.sent.length, 1);
});

test('adding a member to an idle wheel counts from now, not from when the wheel was last busy', (t) => {
  const { clock, wheel, at } = fakeWheel();
  t.teardown(() => wheel.close());
  const first = new Member(clock);
  wheel.add(first, 200);
  wheel.remove(first);
  clock.now = 10_000; // nothing on the wheel meanwhile, so it did not run
  const m = new Member(clock);
  wheel.add(m, 1000);
  at(10_500);
  t.deepEqual(m.sent, []);
  at(11_200);
  t.is(m.sent.length, 1);
});
