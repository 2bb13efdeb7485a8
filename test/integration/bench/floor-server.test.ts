import test from 'ava';
import { startFloorServer } from '../../../bench/floor-server.js';
import { runFanout } from '../../../bench/scenarios/fanout.js';
import { metric, startBenchRig } from '../../helpers/bench.js';

test('the floor server fans published SSE items out to every held response', async (t) => {
  const rig = await startBenchRig(() => startFloorServer());
  t.teardown(() => rig.close());
  t.not(rig.target.rootPid, process.pid); // its own process, so its RSS is its own
  const r = await runFanout(rig.ctx, { kind: 'sse', clients: 20, messages: 3 });
  t.is(metric(r.metrics, 'sse-20-complete'), 100);
  t.is(metric(r.metrics, 'sse-20-order'), 0);
});
