import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import test from 'ava';
import { parse } from 'yaml';
import { request } from '../helpers/http.js';
import { startTestSidecar } from '../helpers/sidecar.js';

// The deployment files checked against each other without a Docker engine: kong.conf and the
// Kong image's environment say the same thing, the image puts the plugin server where Kong's
// commands look for it, and docker-compose.yml wires the names kong.yml uses.

type Doc = Record<string, any>;
const root = new URL('../../', import.meta.url);
const text = (path: string): string => readFileSync(new URL(path, root), 'utf8');
const kongConf = text('kong/kong.conf');
const kongDockerfile = text('docker/kong.Dockerfile');
const sidecarDockerfile = text('docker/sidecar.Dockerfile');
const compose = parse(text('docker-compose.yml'), { merge: true }) as Doc;
const kongYml = parse(text('kong/kong.yml')) as Doc;

function confEntries(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of kongConf.split('\n')) {
    const m = /^([a-z0-9_]+)\s*=\s*(.+?)\s*$/.exec(line);
    if (m) out.set(m[1] as string, m[2] as string);
  }
  return out;
}

/** ENV instructions of a Dockerfile (the `KEY=value \` continuation form), quotes removed. */
function dockerEnv(dockerfile: string): Map<string, string> {
  const out = new Map<string, string>();
  const joined = dockerfile.replace(/\\\n/g, ' ');
  for (const line of joined.split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const m of line.slice(4).matchAll(/([A-Z0-9_]+)=("([^"]*)"|\S+)/g)) out.set(m[1] as string, m[3] ?? (m[2] as string));
  }
  return out;
}

/** A start or query command split into words (Kong runs it through sh with `exec `). */
const words = (cmd: string | undefined): string[] => (cmd ?? '').split(/\s+/).filter((w) => w !== '');

test('kong.conf and the Kong image environment set the same plugin-server values', (t) => {
  const env = dockerEnv(kongDockerfile);
  const conf = confEntries();
  t.true(conf.size >= 8);
  for (const [key, value] of conf) {
    if (key === 'declarative_config' || key === 'admin_listen' || key === 'database' || key.startsWith('nginx_') || key.startsWith('plugin')) {
      t.is(env.get(`KONG_${key.toUpperCase()}`), value, key);
    }
  }
  t.is(conf.get('plugins'), 'bundled,grip');
  t.is(conf.get('pluginserver_names'), 'grip');
  const start = words(conf.get('pluginserver_grip_start_cmd'));
  const query = words(conf.get('pluginserver_grip_query_cmd'));
  t.deepEqual(query, [...start.slice(0, 2), '--dump'], 'the same node and file, dumping');
  t.deepEqual(start.slice(2), ['--socket', conf.get('pluginserver_grip_socket')], 'the server listens where Kong connects');
});

test('the Kong image puts node and the one-file plugin server where kong.conf\'s commands look; absolute paths only', (t) => {
  t.regex(kongDockerfile, /^ARG KONG_IMAGE=kong:3\.9\.\d+$/m, 'Kong pinned to a 3.9 patch release');
  const [node, file] = words(confEntries().get('pluginserver_grip_start_cmd'));
  t.true(node?.startsWith('/') && file?.startsWith('/'), 'Kong starts it with no PATH');
  t.regex(kongDockerfile, new RegExp(`^COPY --from=plugin ${node} ${node}$`, 'm'));
  const dir = (file as string).slice(0, (file as string).lastIndexOf('/') + 1);
  t.regex(kongDockerfile, new RegExp(`^COPY --from=plugin /src/plugin/dist/grip-pluginserver.js /src/plugin/dist/package.json ${dir}$`, 'm'),
    'with the package.json that makes the .js file CommonJS');
  t.regex(kongDockerfile, new RegExp(`^COPY kong/kong.yml ${confEntries().get('declarative_config')}$`, 'm'));
});

test('every file the Dockerfiles copy from the build context exists', (t) => {
  for (const dockerfile of [kongDockerfile, sidecarDockerfile]) {
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)) {
      for (const src of (m[1] as string).split(/\s+/)) t.true(existsSync(new URL(src, root)), src);
    }
  }
});


test('compose: only Kong is reachable from the host; everything else is on the internal network', (t) => {
  // The default stack: services in a profile (monitoring) start only when asked for.
  const services = Object.fromEntries(Object.entries(compose['services'] as Record<string, Doc>).filter(([, s]) => s['profiles'] === undefined));
  t.deepEqual(Object.keys(services).sort(), ['kong', 'nats', 'origin', 'sidecar-1', 'sidecar-2']);
  for (const [name, s] of Object.entries(services)) {
    if (name === 'kong') {
      t.deepEqual(s['ports'], ['8000:8000', '8443:8443']);
      t.deepEqual(s['networks'], ['edge', 'internal']);
    } else {
      t.is(s['ports'], undefined, `${name} publishes no port`);
      t.deepEqual(s['networks'], ['internal'], name);
    }
  }
  t.is(compose['networks']['internal']['internal'], true);
});

test('compose: the sidecars Kong balances over exist and listen where kong.yml sends traffic', (t) => {
  const env = dockerEnv(sidecarDockerfile);
  const clientPort = (env.get('GRIP_LISTEN') ?? '').split(':')[1];
  const controlPort = (env.get('GRIP_CONTROL') ?? '').split(':')[1];
  const targets = (kongYml['upstreams'] as Doc[]).flatMap((u) => (u['targets'] as Doc[]).map((x) => ({ upstream: u['name'], target: x['target'] as string })));
  for (const { upstream, target } of targets) {
    const [host, port] = target.split(':');
    t.truthy(compose['services'][host as string], `${target} is a compose service`);
    t.is(port, upstream === 'grip-sidecars' ? clientPort : controlPort, target);
  }
});

test('compose: Kong and the sidecars share the handoff secret, under the name kong.yml\'s vault reference reads', (t) => {
  const services = compose['services'] as Record<string, Doc>;
  const ref = /^\{vault:\/\/env\/([a-z0-9-]+)\}$/.exec(String(
    (kongYml['services'] as Doc[]).flatMap((s) => s['plugins'] as Doc[]).find((p) => p['name'] === 'grip')?.['config']['secret'],
  ));
  t.truthy(ref);
  const envName = (ref?.[1] ?? '').toUpperCase().replace(/-/g, '_');
  const kongSecret = services['kong']?.['environment'][envName];
  t.true(typeof kongSecret === 'string' && kongSecret.length >= 32, `kong has ${envName}`);
  for (const s of ['sidecar-1', 'sidecar-2']) t.is(services[s]?.['environment']['GRIP_KONG_SECRET'], kongSecret, s);
});

test('compose: the sidecars read the allow-list file they mount, use NATS, and NATS runs JetStream', (t) => {
  const services = compose['services'] as Record<string, Doc>;
  for (const name of ['sidecar-1', 'sidecar-2']) {
    const s = services[name] as Doc;
    const configPath = (s['command'] as string[])[(s['command'] as string[]).indexOf('--config') + 1];
    t.true((s['volumes'] as string[]).includes(`./docker/sidecar.yml:${configPath}:ro`), name);
    t.is(s['environment']['NATS_URL'], 'nats://nats:4222');
  }
  t.true((services['nats']?.['command'] as string[]).includes('--jetstream'));
});

test('compose: the origin kong.yml names is the compose origin service on its port', (t) => {
  const origin = compose['services']['origin'] as Doc;
  for (const p of (kongYml['services'] as Doc[]).flatMap((s) => s['plugins'] as Doc[]).filter((p) => p['name'] === 'grip')) {
    const url = new URL(p['config']['origin'] as string);
    t.is(url.hostname, 'origin');
    t.is(url.port, origin['environment']['ORIGIN_PORT']);
  }
  t.true(existsSync(new URL(`examples/${(origin['command'] as string[])[1]?.replace(/^examples\//, '')}`, root)));
});

/** The sidecar image's HEALTHCHECK: its options and its exec-form command. */
function sidecarHealthcheck(): { options: string; cmd: string[] } {
  const m = /^HEALTHCHECK (.*?)\s*CMD (\[.*\])$/m.exec(sidecarDockerfile.replace(/\\\n\s*/g, ''));
  if (!m) throw new Error('docker/sidecar.Dockerfile has no exec-form HEALTHCHECK');
  return { options: m[1] as string, cmd: JSON.parse(m[2] as string) as string[] };
}

test('the sidecar image is healthy only when ready (/readyz: NATS connected, not draining), and Kong waits for it', (t) => {
  const { options, cmd } = sidecarHealthcheck();
  t.regex(options, /--interval=\d+s/);
  t.deepEqual(cmd.slice(0, 2), ['node', '-e']);
  t.regex(cmd[2] as string, /'http:\/\/127\.0\.0\.1:5561\/readyz'/);
  t.notRegex(cmd[2] as string, /healthz/, '/healthz stays 200 while NATS is down');
  t.is(dockerEnv(sidecarDockerfile).get('GRIP_CONTROL'), '0.0.0.0:5561');
  const kong = compose['services']['kong'] as Doc;
  for (const s of ['sidecar-1', 'sidecar-2']) t.deepEqual(kong['depends_on'][s], { condition: 'service_healthy' }, s);
  // Kong's own health check of the publish upstream asks the same question.
  const control = (kongYml['upstreams'] as Doc[]).find((u) => u['name'] === 'grip-control') as Doc;
  t.is(control['healthchecks']['active']['http_path'], '/readyz');
});

test('the sidecar image\'s health check command fails while NATS is unreachable and passes on a ready sidecar', async (t) => {
  const { cmd } = sidecarHealthcheck();
  const run = (port: number) => new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['-e', (cmd[2] as string).replace('127.0.0.1:5561', `127.0.0.1:${port}`)], { stdio: 'ignore' });
    child.once('exit', (code) => resolve(code));
  });
  const down = await startTestSidecar({ origin: 'http://127.0.0.1:1', nats: 'nats://127.0.0.1:1' });
  t.teardown(() => down.close());
  t.is((await request(`${down.controlUri}healthz`)).status, 200, 'liveness holds: why /healthz is the wrong check');
  t.is(await run(down.sidecar.controlPort), 1);
  const ready = await startTestSidecar({ origin: 'http://127.0.0.1:1' });
  t.teardown(() => ready.close());
  t.is(await run(ready.sidecar.controlPort), 0);
});

test('compose: the origin container (examples/ on a bare node image, no node_modules) imports only Node built-ins', (t) => {
  const origin = compose['services']['origin'] as Doc;
  t.deepEqual(origin['volumes'], ['./examples:/app/examples:ro'], 'only examples/ is mounted');
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of text(file).matchAll(/^\s*import\s[^'"]*?['"]([^'"]+)['"]/gm)) {
      const spec = m[1] as string;
      if (spec.startsWith('./')) visit(`examples/${spec.slice(2)}`);
      else t.true(spec.startsWith('node:'), `${file} imports ${spec}, which the origin container does not have`);
    }
  };
  visit((origin['command'] as string[])[1] as string);
  t.true(seen.has('examples/origin.js'));
});
