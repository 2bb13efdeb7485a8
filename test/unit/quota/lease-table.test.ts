import test from 'ava';
import fc from 'fast-check';
import '../../helpers/fc-seed.js';
import { applyBatch, countOthers, decodeLeaseTable, encodeLeaseTable, type LeaseTable } from '../../../sidecar/src/fleet/lease-table.js';

// The connection-lease table: what each process of the fleet holds for one quota key.

const bytes = (text: string): Uint8Array => Buffer.from(text, 'utf8');

test('expired holders do not count, and are dropped by the next write; our own entry is rewritten whole', (t) => {
  const { table } = decodeLeaseTable(bytes('{"a":[3,2000],"b":[2,500],"me":[1,900]}'));
  t.is(countOthers(table, 'me', 1000), 3);
  const next = applyBatch(table, 'me', 4, [], 1000, 16_000);
  t.deepEqual([...next.table], [['a', { count: 3, expiresAt: 2000 }], ['me', { count: 4, expiresAt: 16_000 }]]);
  t.deepEqual([...applyBatch(table, 'me', 0, [], 1000, 16_000).table.keys()], ['a'], 'a process holding nothing leaves no entry');
});

test('a batch is granted in order while the fleet total stays under each request\'s limit', (t) => {
  const table: LeaseTable = new Map([['other', { count: 2, expiresAt: 10_000 }]]);
  t.deepEqual(applyBatch(table, 'me', 1, [5, 5, 5, 5], 0, 1).grants, [true, true, false, false]);
  // A request with a higher limit (another config) after a refused one can still pass.
  t.deepEqual(applyBatch(table, 'me', 1, [4, 6, 4], 0, 1).grants, [true, true, false]);
});

test('unreadable values and entries are dropped, never thrown on', (t) => {
  for (const text of ['', 'not json', '[]', 'null', '"x"', '{"a":1}', '{"a":[1]}', '{"a":[-1,5]}', '{"a":[1.5,5]}', '{"a":["1",5]}', `{"${'x'.repeat(201)}":[1,5]}`]) {
    const { table } = decodeLeaseTable(bytes(text));
    t.is(table.size, 0, text);
  }
  const mixed = decodeLeaseTable(bytes('{"good":[2,5],"bad":[1]}'));
  t.deepEqual([...mixed.table], [['good', { count: 2, expiresAt: 5 }]]);
  t.is(mixed.dropped, 1);
});

test('property: whatever others hold, a batch never takes the total over the limit, and encode/decode round-trips', (t) => {
  t.notThrows(() => fc.assert(fc.property(
    fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s !== 'me'), fc.tuple(fc.nat(50), fc.nat(2000))),
    fc.nat(20), fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 30 }), fc.nat(2000),
    (others, mine, limits, now) => {
      const table: LeaseTable = new Map(Object.entries(others).map(([h, [count, expiresAt]]) => [h, { count, expiresAt }]));
      const round = decodeLeaseTable(encodeLeaseTable(table)).table;
      if (JSON.stringify([...round]) !== JSON.stringify([...table])) return false;
      const live = countOthers(table, 'me', now);
      const { grants, table: next } = applyBatch(table, 'me', mine, limits, now, now + 100);
      let held = mine;
      for (let i = 0; i < limits.length; i++) {
        if (grants[i]) {
          held++;
          if (live + held > limits[i]!) return false;
        } else if (live + held < limits[i]!) {
          return false; // refused although there was room
        }
      }
      return (next.get('me')?.count ?? 0) === held;
    },
  )));
});
