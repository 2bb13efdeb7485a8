import { readFileSync } from 'node:fs';
import test from 'ava';
import { Name, Plugin, Priority, Schema, Version, type GripConfig, type PluginEnv } from '../../../plugin/src/grip.js';
import { CLEARED_HEADERS, HANDOFF_HEADER } from '../../../plugin/src/handoff.js';
import { openHandoff } from '../../../sidecar/src/kong/handoff-format.js';
import { FakePdk } from '../../helpers/fake-pdk.js';
import { HANDOFF_VECTORS, VECTOR_SECRET } from '../../helpers/handoff-vectors.js';

const vector = HANDOFF_VECTORS[0]!;
const PLUGIN_ID = vector.claims.pluginId;

const config = (over: Partial<GripConfig> = {}): GripConfig => ({
  secret: VECTOR_SECRET,
  origin: vector.claims.origin,
  forward_consumer: true,
  route_id: vector.claims.routeId,
  service_id: vector.claims.serviceId,
  __plugin_id: PLUGIN_ID,
  ...over,
});

function quietEnv(over: Partial<PluginEnv> = {}): PluginEnv & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    nowMs: () => vector.claims.iat * 1000,
    nonce: () => vector.claims.nonce,
    log: (line) => { lines.push(line); },
    ...over,
  };
}

const consumerRow = { id: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', username: 'web-app', custom_id: 'tenant-42', tags: null, created_at: 1767225000 };

test('the module exports what kong-pdk reads: Name, Version (the package version), Priority, Schema, Plugin', (t) => {
  t.is(Name, 'grip');
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(Version, pkg.version);
  t.true(Priority < 900 && Priority > 801, 'after acl 950, rate-limiting 910, response-ratelimiting 900; before request-transformer 801');
  t.true(Array.isArray(Schema));
});

test('access is the only phase: no response (buffered proxying), rewrite or log', (t) => {
  const phases = ['certificate', 'rewrite', 'log', 'access', 'preread', 'response'];
  const defined = phases.filter((p) => typeof (Plugin.prototype as unknown as Record<string, unknown>)[p] === 'function');
  t.deepEqual(defined, ['access']);
});

test('every Schema field has a type, a 10-500 character description, and a default or required; strings have bounds', (t) => {
  for (const entry of Schema) {
    const [[name, field]] = Object.entries(entry) as [[string, Record<string, unknown>]];
    t.is(typeof field['type'], 'string', name);
    const d = field['description'];
    t.true(typeof d === 'string' && d.length >= 10 && d.length <= 500, `${name} description`);
    t.true('default' in field || field['required'] === true, `${name} default or required`);
    if (field['type'] === 'string') {
      t.is(typeof field['len_min'], 'number', `${name} len_min`);
      t.is(typeof field['len_max'], 'number', `${name} len_max`);
    }
  }
  const secret = Schema.find((e) => 'secret' in e) as { secret: Record<string, unknown> };
  t.true(secret.secret['referenceable'] === true, 'the secret can be a vault reference');
});

test('with a consumer, access makes exactly three PDK calls in order and signs the vector token', async (t) => {
  const kong = new FakePdk({ pluginId: PLUGIN_ID, consumer: consumerRow });
  await new Plugin(config(), quietEnv()).access(kong);
  t.deepEqual(kong.methods(), ['kong.plugin.get_id', 'kong.client.get_consumer', 'kong.service.request.set_headers']);
  t.deepEqual(kong.upstreamHeaders['kong-grip-handoff'], [vector.token]);
  t.is(kong.exit, undefined);
});

test('the signed token opens with the shared secret and carries origin, scope ids and consumer', async (t) => {
  const kong = new FakePdk({ pluginId: PLUGIN_ID, consumer: consumerRow });
  await new Plugin(config(), quietEnv({ nowMs: () => 1_800_000_000_123, nonce: () => 'QUJDREVGR0hJSktMTU5PUA' })).access(kong);
  const token = kong.upstreamHeaders[HANDOFF_HEADER.toLowerCase()]?.[0] ?? '';
  t.deepEqual(openHandoff(token, [VECTOR_SECRET]), {
    iat: 1_800_000_000, nonce: 'QUJDREVGR0hJSktMTU5PUA', origin: vector.claims.origin,
    routeId: vector.claims.routeId, serviceId: vector.claims.serviceId, pluginId: PLUGIN_ID,
    consumer: { id: consumerRow.id, username: 'web-app', customId: 'tenant-42' },
  });
});

test('client GRIP and identity headers are removed in the same call; other headers are untouched', async (t) => {
  const kong = new FakePdk({
    pluginId: PLUGIN_ID, consumer: consumerRow,
    headers: {
      'grip-sig': ['forged'], 'grip-last': ['ch; last-id=1'], 'x-consumer-id': ['admin'], 'x-consumer-groups': ['admins'],
      'kong-grip-consumer-id': ['admin'], 'kong-grip-handoff': ['v1.old.token'], 'accept': ['text/event-stream'], 'x-app': ['1'],
    },
  });
  await new Plugin(config(), quietEnv()).access(kong);
  t.deepEqual(Object.keys(kong.upstreamHeaders).sort(), ['accept', 'kong-grip-handoff', 'x-app']);
  t.deepEqual(kong.upstreamHeaders['kong-grip-handoff'], [vector.token]);
  const table = kong.calls[2]?.args[0] as Record<string, unknown>;
  for (const name of CLEARED_HEADERS) t.deepEqual(table[name], [], name);
});

test('with forward_consumer off, access makes two calls and signs no consumer', async (t) => {
  const kong = new FakePdk({ pluginId: PLUGIN_ID, consumer: consumerRow });
  await new Plugin(config({ forward_consumer: false }), quietEnv()).access(kong);
  t.deepEqual(kong.methods(), ['kong.plugin.get_id', 'kong.service.request.set_headers']);
  const token = kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '';
  t.is(openHandoff(token, [VECTOR_SECRET]).consumer, null);
});

test('an unauthenticated request (get_consumer gives nil) is handed off without a consumer', async (t) => {
  for (const consumer of [null, undefined]) {
    const kong = new FakePdk({ pluginId: PLUGIN_ID, consumer });
    await new Plugin(config(), quietEnv()).access(kong);
    t.is(kong.calls.length, 3);
    t.is(openHandoff(kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '', [VECTOR_SECRET]).consumer, null);
  }
});

test('unscoped configs (no route_id or service_id from Kong) sign null scope ids', async (t) => {
  const kong = new FakePdk({ pluginId: PLUGIN_ID });
  const { route_id: _r, service_id: _s, ...rest } = config();
  await new Plugin(rest, quietEnv()).access(kong);
  const claims = openHandoff(kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '', [VECTOR_SECRET]);
  t.is(claims.routeId, null);
  t.is(claims.serviceId, null);
});

test('an instance Kong runs for another plugin entity signs nothing, resets cached instances and answers 503', async (t) => {
  const kong = new FakePdk({ pluginId: 'another-plugin-entity-id', consumer: consumerRow, headers: { 'x-app': ['1'] } });
  const env = quietEnv();
  await new Plugin(config(), env).access(kong);
  t.deepEqual(kong.methods(), ['kong.plugin.get_id', 'kong.worker_events.post', 'kong.response.exit']);
  t.deepEqual(kong.calls[1]?.args, ['plugin_server', 'reset_instances', { plugin_name: 'grip' }]);
  t.is(kong.exit?.status, 503);
  t.deepEqual(kong.exit?.headers, { 'Retry-After': '1' });
  t.deepEqual(kong.upstreamHeaders, { 'x-app': ['1'] }, 'no token was set');
  t.regex(env.lines[0] ?? '', /config is for plugin c0ffee00-.* but Kong ran it for another-plugin-entity-id/);
});

test('a failing PDK call ends the request with 500 instead of letting Kong proxy it unsigned', async (t) => {
  const expected: Record<string, number> = {
    'kong.plugin.get_id': 2,
    'kong.client.get_consumer': 3,
    // Kong never returns a set_headers failure to the plugin (a Lua error ends the request on
    // Kong's side); if it did, the exit would be a fourth call.
    'kong.service.request.set_headers': 4,
  };
  for (const [failOn, calls] of Object.entries(expected)) {
    const kong = new FakePdk({ pluginId: PLUGIN_ID, consumer: consumerRow, failOn });
    const env = quietEnv();
    await new Plugin(config(), env).access(kong);
    t.is(kong.exit?.status, 500, failOn);
    t.deepEqual(kong.exit?.body, { message: 'An unexpected error occurred' });
    t.is(kong.calls.length, calls, `${failOn}: ${kong.methods().join(', ')}`);
    t.is(kong.methods().at(-1), 'kong.response.exit');
    t.regex(env.lines[0] ?? '', /access failed: PDK method .* failed/);
  }
});

test('a consumer whose fields break the token format gives a 500, not a token', async (t) => {
  const kong = new FakePdk({ pluginId: PLUGIN_ID, consumer: { id: 'not an id!' } });
  await new Plugin(config(), quietEnv()).access(kong);
  t.is(kong.exit?.status, 500);
  t.false('kong-grip-handoff' in kong.upstreamHeaders);
  t.is(kong.calls.length, 3);
});

test('the constructor refuses an origin the sidecar could never accept, naming the problem', (t) => {
  for (const origin of ['http://u:p@origin/', 'http://origin/?q=1', 'http://origin/#f', 'ftp://origin/', 'origin:8080']) {
    const err = t.throws(() => new Plugin(config({ origin }), quietEnv()));
    t.regex(err?.message ?? '', /^grip plugin config: origin must be/, origin);
  }
});

test('the constructor refuses a config without __plugin_id (the instance check needs it)', (t) => {
  const { __plugin_id: _p, ...rest } = config();
  t.throws(() => new Plugin(rest, quietEnv()), { message: /__plugin_id is missing/ });
  t.throws(() => new Plugin(config({ __plugin_id: null }), quietEnv()), { message: /__plugin_id is missing/ });
});
