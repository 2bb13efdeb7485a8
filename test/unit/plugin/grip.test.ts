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

test('every Schema field has a type and a default or required, and no description (Kong < 3.4 refuses it); strings have bounds', (t) => {
  for (const entry of Schema) {
    const [[name, field]] = Object.entries(entry) as [[string, Record<string, unknown>]];
    t.is(typeof field['type'], 'string', name);
    t.false('description' in field, `${name}: a description would make Kong < 3.4 refuse the schema instead of answering the version 500`);
    t.true('default' in field || field['required'] === true, `${name} default or required`);
    if (field['type'] === 'string') {
      t.is(typeof field['len_min'], 'number', `${name} len_min`);
      t.is(typeof field['len_max'], 'number', `${name} len_max`);
    }
  }
  const secret = Schema.find((e) => 'secret' in e) as { secret: Record<string, unknown> };
  t.true(secret.secret['referenceable'] === true, 'the secret can be a vault reference');
});

test('with a consumer, access makes exactly two PDK calls in order and signs the vector token', async (t) => {
  const kong = new FakePdk({ consumer: consumerRow });
  await new Plugin(config(), quietEnv()).access(kong);
  t.deepEqual(kong.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers']);
  t.deepEqual(kong.upstreamHeaders['kong-grip-handoff'], [vector.token]);
  t.is(kong.exit, undefined);
});

test('the signed token opens with the shared secret and carries origin, scope ids and consumer', async (t) => {
  const kong = new FakePdk({ consumer: consumerRow });
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
    consumer: consumerRow,
    headers: {
      'grip-sig': ['forged'], 'grip-last': ['ch; last-id=1'], 'x-consumer-id': ['admin'], 'x-consumer-groups': ['admins'],
      'kong-grip-consumer-id': ['admin'], 'kong-grip-handoff': ['v1.old.token'], 'accept': ['text/event-stream'], 'x-app': ['1'],
    },
  });
  await new Plugin(config(), quietEnv()).access(kong);
  t.deepEqual(Object.keys(kong.upstreamHeaders).sort(), ['accept', 'kong-grip-handoff', 'x-app']);
  t.deepEqual(kong.upstreamHeaders['kong-grip-handoff'], [vector.token]);
  const table = kong.calls[1]?.args[0] as Record<string, unknown>;
  for (const name of CLEARED_HEADERS) t.deepEqual(table[name], [], name);
});

test('with forward_consumer off, access makes one call and signs no consumer', async (t) => {
  const kong = new FakePdk({ consumer: consumerRow });
  await new Plugin(config({ forward_consumer: false }), quietEnv()).access(kong);
  t.deepEqual(kong.methods(), ['kong.service.request.set_headers']);
  const token = kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '';
  t.is(openHandoff(token, [VECTOR_SECRET]).consumer, null);
});

test('an unauthenticated request (get_consumer gives nil) is handed off without a consumer', async (t) => {
  for (const consumer of [null, undefined]) {
    const kong = new FakePdk({ consumer });
    await new Plugin(config(), quietEnv()).access(kong);
    t.is(kong.calls.length, 2);
    t.is(openHandoff(kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '', [VECTOR_SECRET]).consumer, null);
  }
});

test('unscoped configs (no route_id or service_id from Kong) sign null scope ids', async (t) => {
  const kong = new FakePdk({});
  const { route_id: _r, service_id: _s, ...rest } = config();
  await new Plugin(rest, quietEnv()).access(kong);
  const claims = openHandoff(kong.upstreamHeaders['kong-grip-handoff']?.[0] ?? '', [VECTOR_SECRET]);
  t.is(claims.routeId, null);
  t.is(claims.serviceId, null);
});

test('a failing PDK call ends the request with 500 instead of letting Kong proxy it unsigned', async (t) => {
  const expected: Record<string, number> = {
    'kong.client.get_consumer': 2,
    // Kong never returns a set_headers failure to the plugin (a Lua error ends the request on
    // Kong's side); if it did, the exit would be a third call.
    'kong.service.request.set_headers': 3,
  };
  for (const [failOn, calls] of Object.entries(expected)) {
    const kong = new FakePdk({ consumer: consumerRow, failOn });
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
  const kong = new FakePdk({ consumer: { id: 'not an id!' } });
  await new Plugin(config(), quietEnv()).access(kong);
  t.is(kong.exit?.status, 500);
  t.false('kong-grip-handoff' in kong.upstreamHeaders);
  t.is(kong.calls.length, 2);
});

test('an unusable config never throws: the instance logs the problem once and answers every request 500 naming it', async (t) => {
  const { __plugin_id: _p, ...noId } = config();
  const cases: Array<[string, unknown, RegExp, string[]]> = [
    ['no __plugin_id (Kong < 3.4)', noId, /^kong-grip: this Kong does not send __plugin_id; supported Kong versions are 3\.4 to 3\.9$/, ['kong.response.exit']],
    ['__plugin_id null', config({ __plugin_id: null }), /does not send __plugin_id/, ['kong.response.exit']],
    ['origin with credentials', config({ origin: 'http://u:p@origin/' }), /^kong-grip: config\.origin must be an http:\/\/ or https:\/\/ URL without credentials/, ['kong.response.exit']],
    ['origin with a query', config({ origin: 'http://origin/?q=1' }), /^kong-grip: config\.origin must be/, ['kong.response.exit']],
    ['origin with a fragment', config({ origin: 'http://origin/#f' }), /^kong-grip: config\.origin must be/, ['kong.response.exit']],
    ['ftp origin', config({ origin: 'ftp://origin/' }), /^kong-grip: config\.origin must be/, ['kong.response.exit']],
    ['relative origin', config({ origin: 'origin:8080' }), /^kong-grip: config\.origin must be/, ['kong.response.exit']],
    ['short secret (a vault reference skips the schema)', config({ secret: 'x'.repeat(31) }), /^kong-grip: config\.secret must be at least 32 bytes \(got 31\)/, ['kong.response.exit']],
    ['not an object', null, /^kong-grip: the plugin configuration is not an object$/, ['kong.response.exit']],
  ];
  for (const [name, cfg, message, methods] of cases) {
    const env = quietEnv();
    const plugin = new Plugin(cfg as GripConfig, env);
    t.is(env.lines.length, 1, `${name}: one line at start`);
    for (let i = 0; i < 3; i++) {
      const kong = new FakePdk({ consumer: consumerRow });
      await plugin.access(kong);
      // The first request also writes the problem to Kong's error log (level err).
      t.deepEqual(kong.methods(), i === 0 ? ['kong.log.err', ...methods] : methods, name);
      if (i === 0) t.is(kong.calls[0]?.args[0], env.lines[0], `${name}: the same line in Kong's log`);
      t.is(kong.exit?.status, 500, name);
      const body = (kong.exit?.body as { message: string }).message;
      t.regex(body, message, name);
      t.is(env.lines[0], `${body}; this instance answers every request with 500`, name);
      t.false('kong-grip-handoff' in kong.upstreamHeaders, name);
    }
    t.is(env.lines.length, 1, `${name}: no line per request`);
  }
});

test('the log line and the 500 never contain the secret', async (t) => {
  const secret = 'a-secret-that-is-too-short';
  const env = quietEnv();
  const kong = new FakePdk({});
  await new Plugin(config({ secret }), env).access(kong);
  t.false(env.lines.join('\n').includes(secret));
  t.false(JSON.stringify(kong.exit).includes(secret));
});
