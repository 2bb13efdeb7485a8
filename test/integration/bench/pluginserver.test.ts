import test from 'ava';
import { measurePluginServers } from '../../../bench/pluginserver.js';
import { pluginServerMetrics } from '../../../bench/scenarios/plugin-server.js';

// The plugin-server bench, short: both servers answer every access phase with a token in three
// round trips (HandleEvent, StepConsumer, Step), and the figures come out as metrics.

test('the plugin-server bench drives grip-pluginserver and kong-js-pluginserver as Kong workers do', async (t) => {
  const figures = await measurePluginServers({ workers: 2, durationMs: 400 });
  t.deepEqual(figures.map((f) => f.kind), ['grip-pluginserver', 'kong-js-pluginserver']);
  for (const f of figures) {
    t.true(f.load.accesses > 0, f.kind);
    t.is(f.load.unexpected, 0, `${f.kind}: every phase ended with the token set`);
    t.is(f.load.roundTripsPerAccess, 3, f.kind);
    t.true(f.accessesPerSec > 0 && Number.isFinite(f.cpuUsPerAccess), f.kind);
  }
  const { metrics, notes } = pluginServerMetrics(figures);
  t.deepEqual(metrics.map((m) => m.key), ['pluginserver-rate', 'pluginserver-cpu', 'pluginserver-kong-pdk-rate', 'pluginserver-kong-pdk-cpu']);
  t.is(notes.length, 2);
});
