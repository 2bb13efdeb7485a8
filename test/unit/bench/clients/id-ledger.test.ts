import test from 'ava';
import fc from 'fast-check';
import { IdLedger } from '../../../../bench/clients/id-ledger.js';

/** The same counts, the obvious way: a set of what arrived. */
function reference(arrivals: number[], lastId: number): { lost: number; duplicated: number } {
  if (arrivals.length === 0) return { lost: 0, duplicated: 0 };
  const seen = new Set<number>();
  let duplicated = 0;
  for (const id of arrivals) {
    if (seen.has(id)) duplicated++;
    seen.add(id);
  }
  let lost = 0;
  for (let id = arrivals[0]!; id <= lastId; id++) if (!seen.has(id)) lost++;
  return { lost, duplicated };
}

test('lost and duplicated agree with a set of the arrivals, in any order', (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 400 }), fc.integer({ min: 0, max: 320 }), (arrivals, extra) => {
      const ledger = new IdLedger();
      for (const id of arrivals) ledger.record(id);
      const lastId = Math.max(0, ...arrivals) + (extra % 20);
      t.deepEqual(ledger.tally(lastId), reference(arrivals, lastId));
      return true;
    }),
  );
});

test('a client in step from its first id has lost nothing; a gap and a repeat are counted', (t) => {
  const ledger = new IdLedger();
  for (const id of [5, 6, 7, 9, 9, 10]) ledger.record(id);
  t.is(ledger.firstId, 5);
  t.is(ledger.highest, 10);
  t.deepEqual(ledger.tally(10), { lost: 1, duplicated: 1 });
  t.deepEqual(ledger.tally(12), { lost: 3, duplicated: 1 });
});

test('record says whether the id is new', (t) => {
  const ledger = new IdLedger();
  t.true(ledger.record(3));
  t.false(ledger.record(3));
  t.true(ledger.record(1));
  t.false(ledger.record(1));
  t.deepEqual(ledger.tally(3), { lost: 0, duplicated: 2 });
});

test('a client that received nothing has no loss of its own to report', (t) => {
  t.deepEqual(new IdLedger().tally(10), { lost: 0, duplicated: 0 });
});
