import test from 'ava';
import { DeadlineQueue } from '../../sidecar/src/hub/deadline-queue.js';

// The queue's timer is unref'd (it must not keep a sidecar alive); a test keeps the loop alive.
function keepAlive(t: { teardown(fn: () => void): void }): void {
  const handle = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(handle));
}

test('hands out values in deadline order with one timer, each once it is due', async (t) => {
  keepAlive(t);
  const seen: Array<[string, number]> = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => { done = resolve; });
  const q = new DeadlineQueue<string>((value, now) => {
    seen.push([value, now]);
    if (seen.length === 3) done();
  });
  const start = Date.now();
  q.add(start + 30, 'a');
  q.add(start + 30, 'b');
  q.add(start + 60, 'c');
  await finished;
  t.deepEqual(seen.map(([v]) => v), ['a', 'b', 'c']);
  for (const [v, now] of seen) t.true(now >= start + (v === 'c' ? 60 : 30), `${v} not before its deadline`);
  t.is(q.size, 0);
});

test('a deadline added earlier than the last one waits behind it (the clock stepped back)', (t) => {
  let now = 1000;
  const seen: string[] = [];
  const q = new DeadlineQueue<string>((v) => seen.push(v), () => now);
  q.add(2000, 'late');
  q.add(1500, 'stepped back');
  now = 1600;
  (q as unknown as { run(): void }).run();
  t.deepEqual(seen, [], 'nothing is due until the first deadline');
  now = 2000;
  (q as unknown as { run(): void }).run();
  t.deepEqual(seen, ['late', 'stepped back']);
  q.clear();
});

test('a value added while others are handed out is armed afterwards', async (t) => {
  keepAlive(t);
  const seen: string[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => { done = resolve; });
  const q = new DeadlineQueue<string>((v) => {
    seen.push(v);
    if (v === 'first') q.add(Date.now() + 10, 'added from onDue');
    else done();
  });
  q.add(Date.now(), 'first');
  await finished;
  t.deepEqual(seen, ['first', 'added from onDue']);
});
