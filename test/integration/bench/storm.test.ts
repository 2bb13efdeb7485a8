// The storm scenario, small, on two sidecars from source (one nats-server with JetStream, two
// workers each), and on Pushpin when it is installed: 200 clients on 4 channels, publishes going
// on, one sidecar SIGTERMed (Pushpin: restarted). Needs nats-server (/usr/sbin/nats-server or
// NATS_SERVER_BIN).

import { execFileSync } from 'node:child_process';
import test from 'ava';
import { SIDECAR_CLI_SOURCE } from '../../../bench/kong-grip.js';
import { runStorm, STORM_SECTION } from '../../../bench/scenarios/storm.js';
import { startKongGripPair, startPushpinRestartable, type StormRig } from '../../../bench/storm-rig.js';
import { type BenchRig, metric, startBenchRig } from '../../helpers/bench.js';

const PARAMS = { clients: 200, channels: 4, ratePerS: 100, tailMs: 300, waitMs: 20_000, metricsEveryMs: 100 };

function pushpinInstalled(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v pushpin'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function stormOn(start: (opts: Parameters<Parameters<typeof startBenchRig>[0]>[0]) => Promise<StormRig>) {
  let rig: StormRig | undefined;
  const bench: BenchRig = await startBenchRig(async (opts) => (rig = await start(opts)), 2);
  try {
    const r = await runStorm(bench.ctx, rig!, PARAMS);
    return { r, logs: rig!.logSummary() };
  } finally {
    await bench.close();
  }
}

test.serial('kong-grip: after one sidecar of two is SIGTERMed every client holds a stream on the other, nothing lost or duplicated', async (t) => {
  const { r, logs } = await stormOn((opts) => startKongGripPair({ ...opts, workers: 2, cli: SIDECAR_CLI_SOURCE, nodeArgs: ['--import', 'tsx'] }));
  t.is(metric(r.metrics, 'storm-clients'), 200);
  t.true(Number.isFinite(metric(r.metrics, 'storm-reheld')), r.notes.join('\n'));
  t.is(metric(r.metrics, 'storm-error-statuses'), 0, r.notes.join('\n'));
  t.is(metric(r.metrics, 'storm-lost'), 0, r.notes.join('\n'));
  t.is(metric(r.metrics, 'storm-duplicated'), 0, r.notes.join('\n'));
  t.true(metric(r.metrics, 'storm-rss') > 0);
  t.true(metric(r.metrics, 'storm-lag') > 0);
  t.true(r.metrics.every((m) => m.section === STORM_SECTION));
  t.true(r.notes.some((n) => / 100 of them moved/.test(n)), r.notes.join('\n'));
  t.false(r.notes.some((n) => /timed out|only \d+ of|never received/.test(n)), r.notes.join('\n'));
  t.log([...r.notes, ...logs].join('\n'));
});

test.serial('Pushpin: restarted in place, every client holds a stream again; its losses are counted', async (t) => {
  if (!pushpinInstalled()) {
    t.pass('pushpin is not installed (bench/install-pushpin.sh): skipped');
    return;
  }
  const { r } = await stormOn((opts) => startPushpinRestartable(opts));
  t.is(metric(r.metrics, 'storm-clients'), 200);
  t.true(Number.isFinite(metric(r.metrics, 'storm-reheld')), r.notes.join('\n'));
  // No history: what was published while it restarted never reaches the clients.
  t.true(metric(r.metrics, 'storm-lost') > 0, r.notes.join('\n'));
  t.is(metric(r.metrics, 'storm-duplicated'), 0, r.notes.join('\n'));
  t.log(r.notes.join('\n'));
});
