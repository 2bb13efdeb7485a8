import test from 'ava';
import fc from 'fast-check';
import type { PublishItem } from '../../../sidecar/src/grip/types.js';
import { RecentBudget, RecentItems } from '../../../sidecar/src/bus/recent-items.js';

const item = (seq: number): PublishItem => ({ channel: 'c', id: `i${seq}`, formats: {}, seq } as unknown as PublishItem);
const seqsOf = (items: PublishItem[] | undefined): number[] | undefined => items?.map((i) => i.seq!);

test('answers the items after a kept one, and nothing for one it does not keep', (t) => {
  const recent = new RecentItems(3, new RecentBudget(1000));
  for (const seq of [4, 7, 9, 12]) recent.append(seq, item(seq), 10, true);
  t.deepEqual(seqsOf(recent.after(7)), [9, 12]);
  t.deepEqual(seqsOf(recent.after(12)), []);
  t.is(recent.after(4), undefined, 'dropped: only the last 3 are kept');
  t.is(recent.after(8), undefined, 'never kept');
});

test('an item that does not follow the run starts it again', (t) => {
  const budget = new RecentBudget(1000);
  const recent = new RecentItems(10, budget);
  recent.append(1, item(1), 10, true);
  recent.append(2, item(2), 10, true);
  recent.append(5, item(5), 10, false);
  t.is(recent.after(1), undefined);
  t.deepEqual(seqsOf(recent.after(5)), []);
  t.is(budget.used, 10);
  recent.append(4, item(4), 10, true);
  t.is(recent.after(5), undefined, 'a sequence going back is not a continuation');
});

test('off with 0 items; clear gives the bytes back', (t) => {
  const budget = new RecentBudget(1000);
  const off = new RecentItems(0, budget);
  off.append(1, item(1), 10, true);
  t.is(off.after(1), undefined);
  t.is(budget.used, 0);
  const on = new RecentItems(5, budget);
  on.append(1, item(1), 10, true);
  on.append(2, item(2), 15, true);
  t.is(budget.used, 25);
  on.clear();
  t.is(budget.used, 0);
  t.is(on.lastSeq, undefined);
});

test('over the shared budget, the channel that adds drops its own oldest items', (t) => {
  const budget = new RecentBudget(100);
  const a = new RecentItems(100, budget);
  const b = new RecentItems(100, budget);
  for (let s = 1; s <= 5; s++) a.append(s, item(s), 10, true);
  for (let s = 1; s <= 8; s++) b.append(s, item(s), 10, true);
  t.true(budget.used <= 100);
  t.deepEqual(seqsOf(a.after(1)), [2, 3, 4, 5], 'a kept its run');
  t.is(b.after(2), undefined);
  t.deepEqual(seqsOf(b.after(4)), [5, 6, 7, 8]);
});

test('property: what it answers is always the suffix of the latest unbroken run, within its bounds', (t) => {
  t.notThrows(() => fc.assert(fc.property(
    fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), bytes: fc.integer({ min: 0, max: 50 }), follows: fc.boolean() }), { maxLength: 300 }),
    fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 0, max: 400 }),
    (steps, maxItems, maxBytes) => {
      const budget = new RecentBudget(maxBytes);
      const recent = new RecentItems(maxItems, budget);
      let seq = 0;
      let run: Array<{ seq: number; bytes: number }> = [];
      for (const step of steps) {
        seq += step.gap;
        if (!step.follows) run = [];
        run.push({ seq, bytes: step.bytes });
        recent.append(seq, item(seq), step.bytes, step.follows);
        // The model: the run's last maxItems, then oldest dropped while over budget (never the newest).
        run = run.slice(-maxItems);
        let used = run.reduce((s, r) => s + r.bytes, 0);
        while (used > maxBytes && run.length > 1) used -= run.shift()!.bytes;
        if (budget.used !== used) return false;
      }
      for (let k = 0; k < run.length; k++) {
        const got = seqsOf(recent.after(run[k]!.seq));
        if (JSON.stringify(got) !== JSON.stringify(run.slice(k + 1).map((r) => r.seq))) return false;
      }
      return recent.after(0) === undefined && recent.after(seq + 1) === undefined;
    },
  ), { seed: 15 }));
});
