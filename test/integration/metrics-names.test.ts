import test from 'ava';
import { readdirSync } from 'node:fs';
import { request } from '../helpers/http.js';
import { startChannelOrigin, startTwoWorkers } from '../helpers/nats-e2e.js';
import { startTestSidecar } from '../helpers/sidecar.js';

// /metrics speaks the names standard Node.js dashboards query (prom-client's defaults, no
// prefix), and everything kong-grip adds is under kong_grip_: alone and summed over workers.

/** Standard names the shipped dashboard (docker/grafana/kong-grip.json) and common Node dashboards use. */
const STANDARD = [
  'process_cpu_seconds_total', 'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total',
  'process_resident_memory_bytes', 'process_open_fds', 'process_max_fds',
  'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes',
  'nodejs_heap_size_total_bytes', 'nodejs_active_handles_total', 'nodejs_gc_duration_seconds', 'nodejs_version_info',
];

/** Metric names declared in an exposition (its # TYPE lines). */
function declared(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
}

function checkNames(t: import('ava').ExecutionContext, text: string): void {
  const names = declared(text);
  for (const name of STANDARD) t.true(names.includes(name), `${name} is exposed`);
  t.false(names.some((n) => n.startsWith('kong_grip_process_')), 'no prefixed copies of the standard metrics');
  const own = names.filter((n) => !n.startsWith('process_') && !n.startsWith('nodejs_'));
  t.true(own.length > 10);
  for (const n of own) t.true(n.startsWith('kong_grip_'), `${n} is under kong_grip_`);
  t.is(new Set(names).size, names.length, 'each metric declared once');
}

test('one process: standard process_* and nodejs_* names, the rest under kong_grip_', async (t) => {
  const origin = await startChannelOrigin();
  t.teardown(() => origin.close());
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(() => side.close());
  const res = await request(`${side.controlUri}metrics`);
  t.is(res.status, 200);
  checkNames(t, res.body);
  t.regex(res.body, /^process_start_time_seconds \d+/m);
});

test('with workers: the same names once each, summed over the processes (start time left out)', async (t) => {
  const { side } = await startTwoWorkers(t);
  const readiness = JSON.parse((await request(`${side.controlUri}readyz`)).body) as { workers: Array<{ pid: number }> };
  const pids = [side.pid, ...readiness.workers.map((w) => w.pid)];
  t.is(pids.length, 3);
  const openFds = (): number => pids.reduce((sum, pid) => sum + readdirSync(`/proc/${pid}/fd`).length, 0);
  const before = openFds();
  const res = await request(`${side.controlUri}metrics`);
  const after = openFds();
  t.is(res.status, 200);
  checkNames(t, res.body);
  // prom-client's cluster rules: a start time of three processes means nothing, so it is omitted.
  t.notRegex(res.body, /^process_start_time_seconds /m);
  // Open file descriptors are summed over the primary and both workers (each counted while it
  // answers, so allow for a scrape's own sockets).
  const fds = Number(/^process_open_fds (\d+)/m.exec(res.body)?.[1]);
  t.true(fds >= Math.min(before, after) - 5 && fds <= Math.max(before, after) + 5, `process_open_fds ${fds}, the processes have ${before}..${after}`);
});
