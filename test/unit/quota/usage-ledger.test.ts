import test from 'ava';
import { UsageLedger } from '../../../sidecar/src/usage/usage-ledger.js';

// The usage ledger: per consumer and channel, messages and bytes; per consumer, connections open
// during a period and their time inside it.

function ledgerAt(start: number): { ledger: UsageLedger; at: (ms: number) => void } {
  let now = start;
  return { ledger: new UsageLedger('host:1', start, () => now), at: (ms) => { now = ms; } };
}

test('a period reports messages and bytes per channel, and connections with their seconds per consumer', (t) => {
  const { ledger, at } = ledgerAt(0);
  const a = ledger.open('alice');
  const b = ledger.open('alice');
  const anon = ledger.open(null);
  a.delivered('news', 10);
  a.delivered('news', 5);
  b.delivered('sport', 7);
  anon.delivered('news', 1);
  at(4000);
  b.close();
  at(10_000);
  const { records, totals } = ledger.closePeriod();
  const find = (consumer: string | null, channel: string | null) => records.find((r) => r.consumer === consumer && r.channel === channel);
  t.like(find('alice', null), { messages: 0, bytes: 0, connections: 2, connectionSeconds: 14, periodStart: '1970-01-01T00:00:00.000Z', periodEnd: '1970-01-01T00:00:10.000Z', sidecar: 'host:1' });
  t.like(find('alice', 'news'), { messages: 2, bytes: 15, connections: 0, connectionSeconds: 0 });
  t.like(find('alice', 'sport'), { messages: 1, bytes: 7 });
  t.like(find(null, null), { connections: 1, connectionSeconds: 10 });
  t.like(find(null, 'news'), { messages: 1, bytes: 1 });
  t.is(records.length, 5);
  t.deepEqual(totals, { messages: 4, bytes: 23, connectionSeconds: 24 });
});

test('open connections carry over: each period gets only its own part of their time, and counts them once', (t) => {
  const { ledger, at } = ledgerAt(0);
  const c = ledger.open('bob');
  at(2500);
  const first = ledger.closePeriod();
  t.like(first.records[0], { consumer: 'bob', connections: 1, connectionSeconds: 2.5 });
  at(3000);
  c.delivered('x', 3);
  at(6000);
  c.close();
  c.close(); // once only
  at(7000);
  const second = ledger.closePeriod();
  t.is(second.records.length, 2);
  t.like(second.records.find((r) => r.channel === null), { connections: 1, connectionSeconds: 3.5, periodStart: '1970-01-01T00:00:02.500Z' });
  at(9000);
  t.deepEqual(ledger.closePeriod().records, [], 'nothing open, nothing delivered: no records');
});

test('summed over periods, connection seconds are each connection\'s whole lifetime', (t) => {
  const { ledger, at } = ledgerAt(1000);
  const lifetimes: Array<[number, number]> = [[1000, 1500], [1200, 8000], [3000, 3100], [5000, 12_000]];
  const events = lifetimes.flatMap(([open, close], i) => [{ t: open, i, open: true }, { t: close, i, open: false }]);
  for (const p of [2000, 4000, 6000, 9000, 12_500]) events.push({ t: p, i: -1, open: false });
  events.sort((x, y) => x.t - y.t || (x.i === -1 ? 1 : 0));
  const conns = new Map<number, ReturnType<UsageLedger['open']>>();
  let seconds = 0;
  for (const e of events) {
    at(e.t);
    if (e.i === -1) seconds += ledger.closePeriod().totals.connectionSeconds;
    else if (e.open) conns.set(e.i, ledger.open('c'));
    else conns.get(e.i)!.close();
  }
  t.is(Math.round(seconds * 1000), lifetimes.reduce((n, [o, c]) => n + c - o, 0));
});
