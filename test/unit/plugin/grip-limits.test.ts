import test from 'ava';
import { Plugin, Schema, configProblem, type GripConfig, type PluginEnv } from '../../../plugin/src/grip.js';
import { HANDOFF_HEADER, openHandoff } from '../../../sidecar/src/kong/handoff-format.js';
import { FakePdk } from '../../helpers/fake-pdk.js';
import { HANDOFF_VECTORS, VECTOR_SECRET } from '../../helpers/handoff-vectors.js';
import { validateConfig, type SchemaFields } from '../../helpers/kong-schema.js';

// The plugin's realtime limits: max_connections_per_consumer, ws_messages_per_second, ws_burst.
// Schema fields (integers, default 0), the rules between fields Kong's schema cannot state
// (configProblem: a broken instance answering 500), and the limits signed into the handoff.

const vector = HANDOFF_VECTORS[0]!;
const PLUGIN_ID = vector.claims.pluginId;
const consumerRow = { id: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', username: 'web-app', custom_id: 'tenant-42' };

const config = (over: Partial<GripConfig> = {}): GripConfig => ({
  secret: VECTOR_SECRET, origin: vector.claims.origin, forward_consumer: true,
  route_id: vector.claims.routeId, service_id: vector.claims.serviceId, __plugin_id: PLUGIN_ID, ...over,
});

const env = (lines: string[] = []): PluginEnv => ({
  nowMs: () => vector.claims.iat * 1000, nonce: () => vector.claims.nonce, log: (line) => { lines.push(line); },
});

async function signedBy(c: GripConfig): Promise<string> {
  const kong = new FakePdk({ consumer: consumerRow });
  await new Plugin(c, env()).access(kong);
  return kong.upstreamHeaders[HANDOFF_HEADER.toLowerCase()]?.[0] ?? '';
}

test('the schema gives each limit 0 by default and refuses negatives, fractions and values over the bound', (t) => {
  const fields = Schema as unknown as SchemaFields;
  const base = { secret: VECTOR_SECRET, origin: 'http://origin:8080' };
  const filled = validateConfig(fields, base);
  t.deepEqual(filled.problems, []);
  t.like(filled.config, { max_connections_per_consumer: 0, ws_messages_per_second: 0, ws_burst: 0 });
  for (const [field, bad] of [['max_connections_per_consumer', -1], ['max_connections_per_consumer', 1_000_001], ['ws_messages_per_second', 1.5], ['ws_burst', '3']] as const) {
    t.true(validateConfig(fields, { ...base, [field]: bad }).problems.length > 0, `${field}: ${String(bad)}`);
  }
  t.deepEqual(validateConfig(fields, { ...base, max_connections_per_consumer: 10, ws_messages_per_second: 5, ws_burst: 20 }).problems, []);
});

test('a quota without forward_consumer, or a burst without a rate, is refused when the instance starts (500 naming it)', async (t) => {
  t.regex(configProblem(config({ forward_consumer: false, max_connections_per_consumer: 3 })) ?? '', /max_connections_per_consumer .*needs forward_consumer: true/);
  t.regex(configProblem(config({ ws_burst: 5 })) ?? '', /ws_burst needs ws_messages_per_second above 0/);
  t.regex(configProblem(config({ ws_messages_per_second: -2 })) ?? '', /ws_messages_per_second must be an integer 0-100000/);
  t.is(configProblem(config({ forward_consumer: false, ws_messages_per_second: 5 })), undefined);
  t.is(configProblem(config({ forward_consumer: false, max_connections_per_consumer: 0 })), undefined);
  const kong = new FakePdk({ consumer: consumerRow });
  await new Plugin(config({ forward_consumer: false, max_connections_per_consumer: 3 }), env()).access(kong);
  t.is(kong.exit?.status, 500);
  t.regex(JSON.stringify(kong.exit?.body), /needs forward_consumer: true/);
});

test('limits are signed into a v2 token; a config without limits (or from before these fields) still signs the v1 vector', async (t) => {
  const token = await signedBy(config({ max_connections_per_consumer: 2, ws_messages_per_second: 10, ws_burst: 30 }));
  t.true(token.startsWith('v2.'));
  t.deepEqual(openHandoff(token, [VECTOR_SECRET]).limits, { maxConnectionsPerConsumer: 2, wsMessagesPerSecond: 10, wsBurst: 30 });
  t.is(await signedBy(config()), vector.token);
  t.is(await signedBy(config({ max_connections_per_consumer: 0, ws_messages_per_second: 0, ws_burst: 0 })), vector.token);
});
