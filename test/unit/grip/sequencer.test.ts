import test from 'ava';
import { ChannelSequencer } from '../../../sidecar/src/grip/sequencer.js';
import type { PublishItem } from '../../../sidecar/src/grip/types.js';

const item = (id: string | undefined, prevId?: string, extra: Partial<PublishItem> = {}): PublishItem => ({
  channel: 'c', ...(id !== undefined ? { id } : {}), ...(prevId !== undefined ? { prevId } : {}),
  formats: { 'http-stream': { action: 'send', content: Buffer.from(id ?? '-') } }, meta: {}, noSeq: false, ...extra,
});
const ids = (items: PublishItem[]): Array<string | undefined> => items.map((i) => i.id);
const options = { waitMs: 5000, maxPending: 100, idTtlMs: 60_000 };

test('the first item is delivered at once; then items follow their prev-id', (t) => {
  const s = new ChannelSequencer(options);
  t.deepEqual(ids(s.push(item('p1'), 0)), ['p1']);
  t.deepEqual(ids(s.push(item('p2', 'p1'), 0)), ['p2']);
  t.is(s.lastDeliveredId(), 'p2');
});

test('out-of-order items wait for their predecessor and are flushed in order (spec 5.2 example)', (t) => {
  const s = new ChannelSequencer(options);
  s.push(item('p1'), 0);
  t.deepEqual(ids(s.push(item('p2', 'p1'), 0)), ['p2']);
  t.deepEqual(ids(s.push(item('p4', 'p3'), 0)), []);
  t.deepEqual(ids(s.push(item('p3', 'p2'), 0)), ['p3', 'p4']);
});

test('the spec 9.10 chain a, e(d), d(c), c(b), b(a) comes out in order', (t) => {
  const s = new ChannelSequencer(options);
  const out = [
    ...s.push(item('a'), 0), ...s.push(item('e', 'd'), 0), ...s.push(item('d', 'c'), 0),
    ...s.push(item('c', 'b'), 0), ...s.push(item('b', 'a'), 0),
  ];
  t.deepEqual(ids(out), ['a', 'b', 'c', 'd', 'e']);
});

test('a waiting item is released when its wait expires, and its successors follow', (t) => {
  const s = new ChannelSequencer(options);
  s.push(item('1'), 0);
  t.deepEqual(ids(s.push(item('3', '2'), 100)), []);
  t.deepEqual(ids(s.push(item('4', '3'), 200)), []);
  t.deepEqual(ids(s.expire(5000)), []);
  t.deepEqual(ids(s.expire(5100)), ['3', '4']);
  t.false(s.hasWaiting());
});

test('repeated ids are dropped within the TTL and accepted after it', (t) => {
  const s = new ChannelSequencer(options);
  t.deepEqual(ids(s.push(item('x'), 0)), ['x']);
  t.deepEqual(ids(s.push(item('x'), 1000)), []);
  s.expire(61_000);
  t.deepEqual(ids(s.push(item('x'), 61_000)), ['x']);
  t.is(s.stats.duplicatesDropped, 1);
});

test('no-seq items and items without prev-id bypass waiting; an item without id clears the position', (t) => {
  const s = new ChannelSequencer(options);
  s.push(item('1'), 0);
  t.deepEqual(ids(s.push(item('9', '8', { noSeq: true }), 0)), ['9']);
  t.deepEqual(ids(s.push(item(undefined), 0)), [undefined]);
  t.is(s.lastDeliveredId(), undefined);
  t.deepEqual(ids(s.push(item('20', '19'), 0)), ['20'], 'unknown position: delivered at once');
});

test('the number of waiting items is bounded; a second item on the same prev-id is dropped', (t) => {
  const s = new ChannelSequencer({ ...options, maxPending: 2 });
  s.push(item('1'), 0);
  t.deepEqual(ids(s.push(item('b', 'a'), 0)), []);
  t.deepEqual(ids(s.push(item('b2', 'a'), 0)), []);
  t.deepEqual(ids(s.push(item('d', 'c'), 0)), []);
  t.deepEqual(ids(s.push(item('f', 'e'), 0)), ['f'], 'over the bound it goes out at once');
  t.is(s.stats.overflowed, 1);
});

test('remembered ids are forgotten as items arrive, not only when waits expire', (t) => {
  const s = new ChannelSequencer({ ...options, idTtlMs: 1000 });
  for (let i = 0; i < 50; i++) s.push(item(`a${i}`), i);
  t.is(s.rememberedIds(), 50);
  s.push(item('late'), 5000);
  t.is(s.rememberedIds(), 1, 'everything older than the TTL is gone');
});

test('an id seen again after its TTL is remembered afresh, so it is not forgotten early', (t) => {
  const s = new ChannelSequencer({ ...options, idTtlMs: 1000 });
  s.push(item('x'), 0);
  s.push(item('y'), 500);
  t.deepEqual(ids(s.push(item('x'), 1200)), ['x'], 'x is past its TTL: delivered again');
  t.deepEqual(ids(s.push(item('x'), 1900)), [], 'and remembered from 1200, so still a repeat at 1900');
});

test('a sequencer can start after a known id, so the first item is checked against it', (t) => {
  const s = new ChannelSequencer(options, 'p1');
  t.deepEqual(ids(s.push(item('p3', 'p2'), 0)), [], 'p3 waits: p2 has not come');
  t.deepEqual(ids(s.push(item('p2', 'p1'), 0)), ['p2', 'p3']);
});
