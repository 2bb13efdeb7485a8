import test from 'ava';
import { Publisher, WebSocketMessageFormat } from '@fanoutio/grip';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { startGripGateway } from '../helpers/grip-gateway.js';
import type { GatewayConsumer } from '../helpers/kong-gateway.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';
import { connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// Kong mode needs NATS with JetStream (the fleet-wide nonce store): one server for the file.
const kongNats = useKongNats();

// A WebSocket through Kong: the upgrade passes key-auth and the grip plugin's access phase in the
// real plugin server, is tunnelled to the sidecar in Kong mode, and every WebSocket-over-HTTP
// request the sidecar makes carries the consumer the plugin verified.

const SECRET = 'kong-mode-ws-handoff-secret-0123456789abcdef';
const PLUGIN_ID = 'e2e00000-0000-4000-8000-0000000000e3';
const SERVICE_ID = 'e2e00000-1111-4000-8000-0000000000e3';
const BOB: GatewayConsumer = { id: 'b0b00000-0000-4000-8000-000000000002', username: 'bob', custom_id: 'tenant-9' };

test('a WebSocket held through Kong echoes, receives publishes, and the origin sees the verified consumer on every request', async (t) => {
  const origin = await startWsOrigin(echoHandler({ onOpen: (ws) => ws.subscribe('room') }));
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, sigKey: TEST_SIG_KEY });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const gateway = await startGripGateway(t, {
    sidecarPort: side.sidecar.clientPort, config: { secret: SECRET, origin: origin.url }, entity: { pluginId: PLUGIN_ID, serviceId: SERVICE_ID }, consumers: { 'bob-key': BOB },
  });

  const refused = await connect(gateway.url('/chat').replace('http:', 'ws:')).then(() => 'opened', (err: Error) => err.message);
  t.regex(refused, /401/, 'no API key: refused at the gateway');

  const client = await connect(gateway.url('/chat?apikey=bob-key').replace('http:', 'ws:'), { headers: { 'Kong-Grip-Consumer-Id': 'admin' } });
  const log = logOf(client);
  client.send('hello');
  await log.waitForCount(1);
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  await new Publisher({ control_uri: side.controlUri }).publishFormats('room', new WebSocketMessageFormat('to the room'));
  t.deepEqual(await log.waitForCount(2), ['hello', 'to the room']);
  client.close();

  t.true(origin.seen.length >= 2);
  for (const seen of origin.seen.slice(0, 2)) {
    t.true(seen.isSigned, 'Grip-Sig validated');
    t.is(seen.headers['kong-grip-consumer-id'], BOB.id, 'the verified consumer, not the forged header');
    t.is(seen.headers['kong-grip-consumer-custom-id'], BOB.custom_id);
    t.is(seen.headers['kong-grip-handoff'], undefined);
  }
  t.is(origin.seen[0]?.url, '/chat', 'the API key is not passed on');
});
