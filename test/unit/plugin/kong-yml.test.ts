import { readFileSync } from 'node:fs';
import test from 'ava';
import { parse } from 'yaml';
import { Plugin, Schema, configProblem, type GripConfig } from '../../../plugin/src/grip.js';
import { compileAllowedOrigins, verifyHandoff } from '../../../sidecar/src/kong/handoff-verifier.js';
import { FakePdk } from '../../helpers/fake-pdk.js';
import { checkSchemaDefinition, luaPatternToRegExp, validateConfig, type SchemaFields } from '../../helpers/kong-schema.js';

// kong/kong.yml checked without a Kong binary: the grip entries against the plugin's Schema
// (Kong's own rules for the DSL subset), and the structure the deployment relies on.

type Doc = Record<string, any>;
const read = (path: string): Doc => parse(readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8')) as Doc;
const kongYml = read('kong/kong.yml');
const sidecarYml = read('docker/sidecar.yml');
const fields = Schema as unknown as SchemaFields;

interface PluginEntry { name: string; config?: Record<string, unknown>; where: string }

function allPlugins(doc: Doc): PluginEntry[] {
  const out: PluginEntry[] = [];
  for (const p of doc['plugins'] ?? []) out.push({ ...p, where: 'global' });
  for (const s of doc['services'] ?? []) {
    for (const p of s.plugins ?? []) out.push({ ...p, where: `service ${s.name}` });
    for (const r of s.routes ?? []) for (const p of r.plugins ?? []) out.push({ ...p, where: `route ${r.name}` });
  }
  for (const r of doc['routes'] ?? []) for (const p of r.plugins ?? []) out.push({ ...p, where: `route ${r.name}` });
  for (const c of doc['consumers'] ?? []) for (const p of c.plugins ?? []) out.push({ ...p, where: `consumer ${c.username}` });
  return out;
}

const gripEntries = allPlugins(kongYml).filter((p) => p.name === 'grip');

test('the exported Schema passes Kong\'s metaschema rules for the attributes it uses, on 3.9 and on Kong 3.0-3.3', (t) => {
  t.deepEqual(checkSchemaDefinition(fields), []);
  // Older Kongs must load the schema so that the plugin can answer the 500 naming the supported versions.
  for (const minor of [0, 1, 2, 3]) t.deepEqual(checkSchemaDefinition(fields, 'config', [3, minor]), [], `3.${minor}`);
  t.deepEqual(checkSchemaDefinition([{ x: { type: 'string', description: 'ten chars or more' } }], 'config', [3, 3]), ['config.x: unknown attribute description']);
  t.deepEqual(checkSchemaDefinition([{ x: { type: 'string', description: 'ten chars or more' } }], 'config', [3, 4]), []);
});

test('the origin field\'s Lua patterns accept http and https URLs only', (t) => {
  const ok = (origin: string) => validateConfig(fields, { secret: 'x'.repeat(40), origin }).problems;
  t.deepEqual(ok('http://origin:8080'), []);
  t.deepEqual(ok('https://api.internal/app'), []);
  t.regex(ok('ftp://origin').join(), /origin: must start with http:\/\/ or https:\/\//);
  t.regex(ok('origin:8080').join(), /origin: must start with/);
  t.regex(ok(' http://origin').join(), /origin: must start with/);
});

test('kong.yml is format 3.0 and enables grip on both sidecar services', (t) => {
  t.is(kongYml['_format_version'], '3.0');
  t.deepEqual(gripEntries.map((e) => e.where).sort(), ['service grip-streams', 'service grip-websocket']);
});

test('every grip entry in kong.yml is valid against the Schema, and the plugin starts with it', async (t) => {
  t.true(gripEntries.length > 0);
  for (const entry of gripEntries) {
    const { config, problems } = validateConfig(fields, entry.config ?? {});
    t.deepEqual(problems, [], entry.where);
    // Kong resolves the vault reference before StartInstance; stand in a value of the right length.
    const resolved = { ...config, secret: 'x'.repeat(48), service_id: 'svc', __plugin_id: 'plugin-id' } as GripConfig;
    t.is(configProblem(resolved), undefined, entry.where);
  }
});

test('the Schema validation used above does refuse bad grip configs', (t) => {
  const problems = (config: Record<string, unknown>) => validateConfig(fields, config).problems;
  t.deepEqual(problems({ secret: '{vault://env/grip-secret}', origin: 'http://o:1' }), []);
  t.regex(problems({ origin: 'http://o:1' }).join(), /secret: required field missing/);
  t.regex(problems({ secret: 'short', origin: 'http://o:1' }).join(), /secret: length must be at least 32/);
  t.regex(problems({ secret: 'x'.repeat(40), origin: 'origin:8080' }).join(), /origin: must start with http/);
  t.regex(problems({ secret: 'x'.repeat(40), origin: 'http://u:p@o:1' }).join(), /origin: must not contain credentials/);
  t.regex(problems({ secret: 'x'.repeat(40), origin: 'http://o:1/?q' }).join(), /origin: must not contain a query/);
  t.regex(problems({ secret: 'x'.repeat(40), origin: 'http://o:1/#f' }).join(), /origin: must not contain a fragment/);
  t.regex(problems({ secret: 'x'.repeat(40), origin: 'http://o:1', forward_consumer: 'yes' }).join(), /forward_consumer: expected a boolean/);
  t.regex(problems({ secret: 'x'.repeat(40), origin: 'http://o:1', upstream: 'x' }).join(), /upstream: unknown field/);
});

test('the handoff secret in kong.yml is a vault reference, never a literal', (t) => {
  for (const e of gripEntries) t.regex(String(e.config?.['secret']), /^\{vault:\/\/env\/[a-z0-9-]+\}$/, e.where);
});

test('every origin a grip entry names is on the sidecars\' allow-list (docker/sidecar.yml)', async (t) => {
  const allowed = sidecarYml['kong']['allowedOrigins'] as string[];
  t.notThrows(() => compileAllowedOrigins(allowed));
  for (const e of gripEntries) {
    // Sign a token the way the plugin would with this entry and verify it as the sidecar would.
    const secret = 'y'.repeat(40);
    const kong = new FakePdk({});
    await new Plugin({ ...(e.config as unknown as GripConfig), secret, __plugin_id: 'p1' }).access(kong);
    t.is(kong.exit, undefined, e.where);
    const headers = { 'kong-grip-handoff': kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '' };
    t.notThrows(() => verifyHandoff(headers, { secret, allowedOrigins: allowed, maxAgeSec: 30, now: Date.now() }), e.where);
  }
});

test('GRIP services point at the sidecar upstream, with retries 0 and timeouts above the longest hold', (t) => {
  const upstreams = new Map((kongYml['upstreams'] as Doc[]).map((u) => [u['name'], u]));
  const sidecars = upstreams.get('grip-sidecars');
  t.truthy(sidecars);
  t.is(sidecars?.['algorithm'], 'least-connections');
  t.true((sidecars?.['targets'] as unknown[]).length >= 2, 'two sidecars');
  for (const s of kongYml['services'] as Doc[]) {
    t.true(upstreams.has(s['host']), `service ${s['name']} host is an upstream, not a direct origin`);
    if (!(s['plugins'] as Doc[]).some((p) => p['name'] === 'grip')) continue;
    t.is(s['host'], 'grip-sidecars', s['name']);
    t.is(s['retries'], 0, s['name']);
    t.true(s['connect_timeout'] <= 5000, s['name']);
    t.true(s['read_timeout'] >= 120_000 + 30_000, `${s['name']} read_timeout covers a 120 s hold plus margin`);
    t.true(s['write_timeout'] >= 120_000, s['name']);
    const names = (s['plugins'] as Doc[]).map((p) => p['name']);
    t.true(names.includes('key-auth') && names.includes('rate-limiting'), `${s['name']} keeps auth and rate limiting`);
  }
});

test('the SSE/long-poll and WebSocket routes stream unbuffered', (t) => {
  const routes: Doc[] = (kongYml['services'] as Doc[]).flatMap((s) => (s['routes'] as Doc[]).map((r): Doc => ({ service: s['name'], ...r })));
  const byName = new Map(routes.map((r) => [r['name'], r]));
  for (const name of ['grip-events', 'grip-ws']) {
    t.is(byName.get(name)?.['response_buffering'], false, name);
    t.is(byName.get(name)?.['strip_path'], false, name);
  }
  t.deepEqual(byName.get('grip-events')?.['paths'], ['/events', '/poll']);
  t.is(byName.get('grip-ws')?.['service'], 'grip-websocket');
});

test('the publish route reaches the sidecars\' POST /publish/ only for key-authenticated publishers', (t) => {
  const svc = (kongYml['services'] as Doc[]).find((s) => s['name'] === 'grip-publish') as Doc;
  t.is(svc['host'], 'grip-control');
  t.is(svc['path'], '/publish');
  const control = (kongYml['upstreams'] as Doc[]).find((u) => u['name'] === 'grip-control') as Doc;
  t.true((control['targets'] as Doc[]).every((x) => String(x['target']).endsWith(':5561')));
  const route = (svc['routes'] as Doc[])[0] as Doc;
  t.deepEqual(route['methods'], ['POST']);
  t.is(route['strip_path'], true, '/rt/publish/ becomes /publish/');
  const plugins = new Map((svc['plugins'] as Doc[]).map((p) => [p['name'], p]));
  t.true(plugins.has('key-auth'));
  const allow = plugins.get('acl')?.['config']?.['allow'] as string[];
  t.deepEqual(allow, ['grip-publishers']);
  const publishers = (kongYml['consumers'] as Doc[]).filter((c) => (c['acls'] as Doc[] | undefined)?.some((a) => allow.includes(a['group'])));
  t.is(publishers.length, 1);
  t.true((publishers[0]?.['keyauth_credentials'] as unknown[]).length > 0);
  const others = (kongYml['consumers'] as Doc[]).filter((c) => !publishers.includes(c));
  t.true(others.length > 0, 'a client consumer that may not publish');
});

test('only bundled plugins and grip are used', (t) => {
  const bundled = new Set(['key-auth', 'rate-limiting', 'acl', 'request-size-limiting', 'grip']);
  for (const p of allPlugins(kongYml)) t.true(bundled.has(p.name), `${p.name} in ${p.where}`);
});
