import test from 'ava';
import { median, percentile, summarizeLatencies } from '../../../../bench/wire/stats.js';

test('nearest-rank percentiles of 1..100', (t) => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  t.is(percentile(xs, 50), 50);
  t.is(percentile(xs, 99), 99);
  t.is(percentile(xs, 100), 100);
  t.is(percentile(xs, 0), 1);
});

test('summarizes unsorted samples numerically, not as strings', (t) => {
  const s = summarizeLatencies([10, 9, 100, 2]);
  t.deepEqual(s, { count: 4, p50Ms: 9, p99Ms: 100, maxMs: 100 });
});

test('an empty sample gives NaN figures', (t) => {
  const s = summarizeLatencies([]);
  t.is(s.count, 0);
  t.true(Number.isNaN(s.p99Ms) && Number.isNaN(s.maxMs));
});

test('the median of an odd and an even count, skipping NaN', (t) => {
  t.is(median([5, 1, 3]), 3);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([NaN, 7]), 7);
  t.true(Number.isNaN(median([])));
});
