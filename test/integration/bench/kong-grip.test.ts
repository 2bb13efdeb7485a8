// Runs the bench scenarios, small, against the kong-grip sidecar (from source, so no build is
// needed): the bench's kong-grip target starts it the way `npm run bench` does, and the
// scenarios see complete, ordered delivery.

import test from 'ava';
import { SIDECAR_CLI_SOURCE, startKongGrip } from '../../../bench/kong-grip.js';
import { treeRssBytes } from '../../../bench/proc.js';
import { runFanout } from '../../../bench/scenarios/fanout.js';
import { runHerd } from '../../../bench/scenarios/herd.js';
import { runPeak } from '../../../bench/scenarios/peak.js';
import { runStreamRate } from '../../../bench/scenarios/stream-rate.js';
import { type BenchRig, metric, startBenchRig } from '../../helpers/bench.js';

let rig: BenchRig;

test.before(async () => {
  rig = await startBenchRig((opts) => startKongGrip({ ...opts, cli: SIDECAR_CLI_SOURCE, nodeArgs: ['--import', 'tsx'] }));
});

test.after.always(async () => {
  await rig?.close();
});

test.serial('the sidecar target proxies to the origin and reports its process memory', (t) => {
  t.true(rig.origin.stats().other >= 1);
  t.true(treeRssBytes(rig.target.rootPid) > 10 * 2 ** 20);
});

test.serial('SSE fan-out through the sidecar delivers every message to every stream, in order', async (t) => {
  const r = await runFanout(rig.ctx, { kind: 'sse', clients: 20, messages: 3 });
  t.is(metric(r.metrics, 'sse-20-complete'), 100);
  t.is(metric(r.metrics, 'sse-20-order'), 0);
});

test.serial('WebSocket fan-out through the sidecar (WebSocket-over-HTTP to the origin) delivers every message', async (t) => {
  const before = rig.origin.stats().wsOpen;
  const r = await runFanout(rig.ctx, { kind: 'ws', clients: 20, messages: 3 });
  t.is(metric(r.metrics, 'ws-20-complete'), 100);
  t.is(metric(r.metrics, 'ws-20-order'), 0);
  t.true(rig.origin.stats().wsOpen - before >= 20);
});

test.serial('a small long-poll herd through the sidecar gets every round', async (t) => {
  const r = await runHerd(rig.ctx, { clients: 20, rounds: 2 });
  t.is(metric(r.metrics, 'herd-rounds'), 2);
  t.is(metric(r.metrics, 'herd-errors'), 0);
});

test.serial('new streams through the sidecar each cost one origin request', async (t) => {
  const before = rig.origin.stats().sse;
  const r = await runStreamRate(rig.ctx, { streams: 50, warmup: 10 });
  t.true(metric(r.metrics, 'stream-rate') > 0);
  t.is(rig.origin.stats().sse - before, 50 + 10); // the warm-up's streams too
});

test.serial('the peak run through the sidecar receives every message', async (t) => {
  const r = await runPeak(rig.ctx, { clients: 10, messages: 40 });
  t.is(metric(r.metrics, 'peak-complete'), 100);
});

test.serial('the sidecar logged no warnings or errors during the scenarios', (t) => {
  t.deepEqual(rig.target.logSummary(), []);
});
