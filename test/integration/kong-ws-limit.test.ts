import test, { type ExecutionContext } from 'ava';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { startGripGateway } from '../helpers/grip-gateway.js';
import type { GatewayConsumer } from '../helpers/kong-gateway.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';
import { closed, connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

const kongNats = useKongNats();

// ws_messages_per_second / ws_burst through Kong: the grip plugin (in the real plugin server)
// signs its config's limits into the handoff, and the sidecar closes a WebSocket whose client
// sends faster with 1008 and a reason naming the limit; the origin gets CLOSE 1008 as well.

const SECRET = 'kong-ws-limit-handoff-secret-0123456789abcdef';
const PLUGIN_ID = 'e2e00000-0000-4000-8000-0000000000f1';
const BOB: GatewayConsumer = { id: 'b0b00000-0000-4000-8000-000000000002', username: 'bob' };

/** An echoing WebSocket origin behind a Kong-mode sidecar and the Kong stand-in, the plugin configured with `limits`. */
async function startWsRoute(t: ExecutionContext, limits: Record<string, number>) {
  const origin = await startWsOrigin(echoHandler());
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, sigKey: TEST_SIG_KEY, usage: { enabled: false } });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const gateway = await startGripGateway(t, {
    sidecarPort: side.sidecar.clientPort, config: { secret: SECRET, origin: origin.url, ...limits }, entity: { pluginId: PLUGIN_ID }, consumers: { 'bob-key': BOB },
  });
  return { origin, side, gateway };
}

test('a client over ws_burst is closed with 1008 naming the limit; the messages within it reached the origin, and the origin gets CLOSE 1008', async (t) => {
  const { origin, side, gateway } = await startWsRoute(t, { ws_messages_per_second: 1, ws_burst: 3 });

  const client = await connect(gateway.url('/chat?apikey=bob-key'));
  const log = logOf(client);
  const closing = closed(client);
  // Four messages at once: the burst allows three (the refill in a few ms is far below one).
  for (const m of ['one', 'two', 'three', 'four']) client.send(m);
  const { code, reason } = await closing;
  t.is(code, 1008);
  t.is(reason, 'message rate limit exceeded (ws_messages_per_second 1, ws_burst 3)');
  const close = await origin.waitForEvent('CLOSE');
  t.deepEqual(close.events.find((e) => e.type === 'CLOSE'), { type: 'CLOSE', code: 1008, content: reason });
  const tokens = gateway.runs.map((r) => r.headers.get('kong-grip-handoff')?.[0] ?? '');
  t.true(tokens.length > 0 && tokens.every((tok) => tok.startsWith('v2.')), 'the limits travel in a v2 token');
  const texts = origin.seen.flatMap((s) => s.events).filter((e) => e.type === 'TEXT').map((e) => e.content);
  t.deepEqual(texts, ['one', 'two', 'three'], 'the fourth never reached the origin');
  t.true(log.messages.every((m) => ['one', 'two', 'three'].includes(m)));
  const metrics = await side.sidecar.metrics.registry.metrics();
  t.regex(metrics, /^kong_grip_ws_rate_limited_total 1$/m);
  t.regex(metrics, /^kong_grip_holds_closed_total\{kind="ws",reason="rate_limited"\} 1$/m);
});

test('without limits in the config a burst of client messages passes (the plugin signs a v1 token)', async (t) => {
  const { gateway } = await startWsRoute(t, {});
  const client = await connect(gateway.url('/chat?apikey=bob-key'));
  const words = Array.from({ length: 50 }, (_, i) => `m${i}`);
  for (const m of words) client.send(m);
  t.deepEqual(await logOf(client).waitForCount(50), words);
  const tokens = gateway.runs.map((r) => r.headers.get('kong-grip-handoff')?.[0] ?? '');
  t.true(tokens.length > 0 && tokens.every((tok) => tok.startsWith('v1.')), 'a v1 token');
  client.close();
});
