// Runs every bench scenario, small, against a real Pushpin 1.36 (bench/install-pushpin.sh):
// this proves the private Pushpin config works (zurl included) and that the scenarios measure
// what they claim on a proxy known to be correct.

import test from 'ava';
import { startPushpin } from '../../../bench/pushpin.js';
import { runFanout } from '../../../bench/scenarios/fanout.js';
import { runHerd } from '../../../bench/scenarios/herd.js';
import { runPeak } from '../../../bench/scenarios/peak.js';
import { runStreamRate } from '../../../bench/scenarios/stream-rate.js';
import { type BenchRig, metric, startBenchRig } from '../../helpers/bench.js';

let rig: BenchRig;

test.before(async () => {
  rig = await startBenchRig((opts) => startPushpin(opts));
});

test.after.always(async () => {
  await rig?.close();
});

test.serial('the private Pushpin proxies to the origin and publishes on its own port', async (t) => {
  t.not(rig.target.clientPort, rig.target.publishPort);
  t.true(rig.origin.stats().other >= 1); // the readiness GET went through zurl to the origin
});

test.serial('SSE fan-out delivers every message to every stream, in order', async (t) => {
  const r = await runFanout(rig.ctx, { kind: 'sse', clients: 20, messages: 3 });
  t.is(metric(r.metrics, 'sse-20-complete'), 100);
  t.is(metric(r.metrics, 'sse-20-order'), 0);
  t.true(metric(r.metrics, 'sse-20-p99') > 0);
  t.true(metric(r.metrics, 'sse-20-mem') > 0);
});

test.serial('WebSocket fan-out over WebSocket-over-HTTP delivers every message', async (t) => {
  const r = await runFanout(rig.ctx, { kind: 'ws', clients: 20, messages: 3 });
  t.is(metric(r.metrics, 'ws-20-complete'), 100);
  t.is(metric(r.metrics, 'ws-20-order'), 0);
  t.true(rig.origin.stats().wsOpen >= 20);
});

test.serial('a small long-poll herd gets every round', async (t) => {
  const r = await runHerd(rig.ctx, { clients: 20, rounds: 2 });
  t.is(metric(r.metrics, 'herd-rounds'), 2);
  t.is(metric(r.metrics, 'herd-errors'), 0);
});

test.serial('new streams per second counts streams that were held', async (t) => {
  const before = rig.origin.stats().sse;
  const r = await runStreamRate(rig.ctx, { streams: 50, warmup: 10 });
  t.true(metric(r.metrics, 'stream-rate') > 0);
  t.is(rig.origin.stats().sse - before, 50 + 10); // the warm-up's streams too
});

test.serial('the peak run receives every message published back to back', async (t) => {
  const r = await runPeak(rig.ctx, { clients: 10, messages: 40 });
  t.is(metric(r.metrics, 'peak-complete'), 100);
  t.true(metric(r.metrics, 'peak-rate') > 0);
});
