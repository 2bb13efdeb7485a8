import test from 'ava';
// @ts-expect-error plain JavaScript example, no types
import { createEventStore } from '../../../examples/event-store.js';

// The example origin's event store (long-poll notes, reliable feed): ids, id / prev-id chain,
// bounded size, and what a reader standing at an id gets.

interface Event { id: string; prevId: string; text: string; at: string }
interface Store {
  lastId: string;
  append(text: string, at?: string): Event;
  after(id?: string | null): { events: Event[]; isReset: boolean };
}
const store = (max: number): Store => createEventStore({ max, run: 'r1' }) as Store;
const texts = (events: Event[]) => events.map((e) => e.text);

test('ids chain: each event\'s prev-id is the id before it, the first one\'s the empty log\'s lastId', (t) => {
  const s = store(10);
  t.is(s.lastId, 'r1-0');
  const a = s.append('a', '2026-01-01T00:00:00.000Z');
  const b = s.append('b');
  t.like(a, { id: 'r1-1', prevId: 'r1-0', text: 'a', at: '2026-01-01T00:00:00.000Z' });
  t.like(b, { id: 'r1-2', prevId: 'r1-1' });
  t.is(s.lastId, 'r1-2');
  t.false(Number.isNaN(Date.parse(b.at)));
});

test('after(id) gives what follows id; no id gives everything kept; the newest id gives nothing', (t) => {
  const s = store(10);
  for (const x of ['a', 'b', 'c']) s.append(x);
  t.deepEqual(texts(s.after('r1-1').events), ['b', 'c']);
  t.deepEqual(texts(s.after('r1-0').events), ['a', 'b', 'c']);
  t.deepEqual(s.after('r1-3'), { events: [], isReset: false });
  for (const none of [undefined, null, '']) t.deepEqual(texts(s.after(none).events), ['a', 'b', 'c']);
  t.false(s.after(undefined).isReset);
});

test('it keeps the newest `max` events; an id older than those, from another run, ahead, or malformed is a reset with all kept', (t) => {
  const s = store(3);
  for (const x of ['a', 'b', 'c', 'd', 'e']) s.append(x);
  t.deepEqual(texts(s.after(undefined).events), ['c', 'd', 'e']);
  t.deepEqual(s.after('r1-2'), { events: s.after(undefined).events, isReset: false }, 'the id just before the oldest kept still continues');
  for (const id of ['r1-1', 'r1-0', 'r0-4', 'r1-6', 'r1-x', 'r1-01', 'r1--1', 'r1-1e3', 'garbage', '-', 'r1-99999999999999999999']) {
    const { events, isReset } = s.after(id);
    t.true(isReset, id);
    t.deepEqual(texts(events), ['c', 'd', 'e'], id);
  }
});

test('a run name with dashes still parses; max must be a positive integer', (t) => {
  const s = createEventStore({ max: 2, run: 'a-b' }) as Store;
  s.append('x');
  t.deepEqual(s.after('a-b-0'), { events: s.after(undefined).events, isReset: false });
  for (const max of [0, -1, 1.5, Number.NaN]) t.throws(() => createEventStore({ max }), { message: /max must be a positive integer/ });
});
