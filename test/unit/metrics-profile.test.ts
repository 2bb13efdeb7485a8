import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { startTestSidecar } from '../helpers/sidecar.js';
import { request } from '../helpers/http.js';

// The monitoring that ships: the Grafana dashboard queries only metrics the sidecar exposes,
// and docker-compose.yml's "metrics" profile wires Prometheus to both sidecars' control ports
// and Grafana to the dashboard. Checked without a Docker engine.

type Doc = Record<string, any>;
const root = new URL('../../', import.meta.url);
const text = (path: string): string => readFileSync(new URL(path, root), 'utf8');
const dashboard = JSON.parse(text('docker/grafana/kong-grip.json')) as Doc;
const compose = parse(text('docker-compose.yml'), { merge: true }) as Doc;

/** Every PromQL expression in the dashboard's panels and variables. */
function expressions(): string[] {
  const panels = (dashboard['panels'] as Doc[]).flatMap((p) => [p, ...((p['panels'] as Doc[] | undefined) ?? [])]);
  const exprs = panels.flatMap((p) => ((p['targets'] as Doc[] | undefined) ?? []).map((t) => t['expr'] as string));
  for (const v of dashboard['templating']['list'] as Doc[]) if (typeof v['definition'] === 'string') exprs.push(v['definition']);
  return exprs;
}

test('the dashboard queries only metrics the sidecar exposes, under their exposed names', async (t) => {
  const side = await startTestSidecar({ origin: 'http://127.0.0.1:1' });
  t.teardown(() => side.close());
  const exposition = (await request(`${side.controlUri}metrics`)).body;
  const declared = [...exposition.matchAll(/^# TYPE (\S+) (\S+)/gm)].map(([, name, type]) => ({ name: name!, type: type! }));
  const exposed = new Set(declared.flatMap(({ name, type }) => type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]));
  const exprs = expressions();
  t.true(exprs.length >= 25);
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(?:kong_grip|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0])));
  for (const name of used) t.true(exposed.has(name), `${name} is exposed`);
  for (const { name } of declared.filter((d) => d.name.startsWith('kong_grip_'))) {
    t.true([name, `${name}_bucket`, `${name}_sum`].some((n) => used.has(n)), `${name} has a panel`);
  }
  const ids = (dashboard['panels'] as Doc[]).map((p) => p['id']);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
});

test('compose "metrics" profile: Prometheus scrapes both sidecars\' control ports, Grafana loads the dashboard', (t) => {
  const services = compose['services'] as Record<string, Doc>;
  const monitoring = Object.entries(services).filter(([, s]) => s['profiles'] !== undefined);
  t.deepEqual(monitoring.map(([name]) => name).sort(), ['grafana', 'prometheus']);
  for (const [name, s] of monitoring) {
    t.deepEqual(s['profiles'], ['metrics'], name);
    // Reachable from this machine only.
    for (const p of s['ports'] as string[]) t.true(p.startsWith('127.0.0.1:'), `${name} publishes ${p} on loopback only`);
  }
  const prometheus = services['prometheus']!;
  const promConfigMount = (prometheus['volumes'] as string[]).find((v) => v.endsWith(':/etc/prometheus/prometheus.yml:ro'))!;
  const promConfig = parse(text(promConfigMount.split(':')[0]!.replace(/^\.\//, ''))) as Doc;
  const targets = (promConfig['scrape_configs'] as Doc[]).flatMap((j) => (j['static_configs'] as Doc[]).flatMap((c) => c['targets'] as string[]));
  const sidecars = Object.keys(services).filter((n) => n.startsWith('sidecar-'));
  const controlPort = /GRIP_CONTROL=[^:\s]+:(\d+)/.exec(text('docker/sidecar.Dockerfile'))![1];
  t.deepEqual(targets.sort(), sidecars.map((n) => `${n}:${controlPort}`).sort());
  t.true((prometheus['networks'] as string[]).includes('internal'), 'Prometheus reaches the sidecars');

  const grafana = services['grafana']!;
  const mounts = (grafana['volumes'] as string[]).map((v) => v.split(':'));
  for (const [src] of mounts) t.true(existsSync(new URL(src!.replace(/^\.\//, ''), root)), `${src} exists`);
  t.true(mounts.some(([src, dst]) => src === './docker/grafana/kong-grip.json' && dst!.startsWith('/var/lib/grafana/dashboards/')));
  const datasource = parse(text('docker/grafana/provisioning/datasources/prometheus.yml')) as Doc;
  t.is(datasource['datasources'][0]['url'], 'http://prometheus:9090');
  const provider = parse(text('docker/grafana/provisioning/dashboards/kong-grip.yml')) as Doc;
  t.is(provider['providers'][0]['options']['path'], '/var/lib/grafana/dashboards');
});
