// The scale scenario, tiny, on the sidecar in cluster mode from source: its own nats-server,
// two workers, two client agents and two 127.0.0.x source addresses, as `--scenarios scale`
// sets up at 100,000 streams. Needs nats-server (/usr/sbin/nats-server or NATS_SERVER_BIN).

import test from 'ava';
import { SIDECAR_CLI_SOURCE, startKongGripCluster } from '../../../bench/kong-grip.js';
import { treeOpenFiles } from '../../../bench/proc.js';
import { runScale } from '../../../bench/scenarios/scale.js';
import { type BenchRig, metric, startBenchRig } from '../../helpers/bench.js';

let rig: BenchRig;

test.before(async () => {
  rig = await startBenchRig((opts) => startKongGripCluster({ ...opts, workers: 2, cli: SIDECAR_CLI_SOURCE, nodeArgs: ['--import', 'tsx'] }), 2);
});

test.after.always(async () => {
  await rig?.close();
});

test.serial('the cluster target runs a primary and two workers, with nats-server beside them', (t) => {
  // From source, tsx's esbuild service may be in the tree too.
  t.true(treeOpenFiles(rig.target.rootPid).length >= 3);
  t.deepEqual(rig.target.companions?.map((c) => c.name), ['nats-server']);
});

test.serial('a small scale run holds every stream and delivers every message to each, in order', async (t) => {
  const r = await runScale({ ...rig.ctx, srcAddrs: ['127.0.0.2', '127.0.0.3'] }, { connections: 300, messages: 3, gapMs: 100 });
  t.is(metric(r.metrics, 'scale-held'), 300);
  t.is(metric(r.metrics, 'scale-complete'), 100);
  t.is(metric(r.metrics, 'scale-order'), 0);
  t.true(metric(r.metrics, 'scale-p99') < 5000);
  t.true(r.metrics.every((m) => m.section === 'Scale run'));
  t.true(r.notes.some((n) => /nats-server \(not counted above\) RSS/.test(n)), r.notes.join('\n'));
});

test.serial('the sidecar logged no warnings or errors during the scale run', (t) => {
  t.deepEqual(rig.target.logSummary(), []);
});
