import test from 'ava';
import { promSample } from '../../../../bench/wire/prom-text.js';

const TEXT = [
  '# HELP nodejs_eventloop_lag_max_seconds The maximum recorded event loop delay.',
  '# TYPE nodejs_eventloop_lag_max_seconds gauge',
  'nodejs_eventloop_lag_max_seconds_total 9',
  'nodejs_eventloop_lag_max_seconds 0.054263807',
  'kong_grip_catch_ups_total{result="history"} 12',
].join('\n');

test('reads the unlabelled sample of the named metric, not one whose name only starts the same', (t) => {
  t.is(promSample(TEXT, 'nodejs_eventloop_lag_max_seconds'), 0.054263807);
});

test('undefined when the metric is absent or labelled only', (t) => {
  t.is(promSample(TEXT, 'process_resident_memory_bytes'), undefined);
  t.is(promSample(TEXT, 'kong_grip_catch_ups_total'), undefined);
});
