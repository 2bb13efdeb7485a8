import { connect } from 'node:net';
import test from 'ava';
import { HttpResponseFormat, HttpStreamFormat, Publisher } from '@fanoutio/grip';
import { signHandoff } from '../../sidecar/src/kong/handoff-format.js';
import { startGripOrigin, TEST_SIG_KEY, type SeenRequest } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { startGateway, type GatewayConsumer } from '../helpers/kong-gateway.js';
import {
  KongRpcDriver, kongPluginConfig, buildLauncher, makePrefix, queryPluginInfo, startPluginServer, type PluginInfo, type PluginServer,
} from '../helpers/kong-rpc-driver.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';

// Kong mode needs NATS with JetStream (the fleet-wide nonce store): one server for the file.
const kongNats = useKongNats();

// End to end in Kong mode: client → gateway (key-auth, then the grip plugin's access phase in
// grip-pluginserver, its effects applied) → sidecar with --kong-secret → a GRIP
// origin (serve-grip, validating Grip-Sig). And the ways around it, all refused.
// Serial: each test runs its own plugin server process.

const SECRET = 'kong-mode-e2e-handoff-secret-0123456789abcdef';
const PLUGIN_ID = 'e2e00000-0000-4000-8000-0000000000e2';
const SERVICE_ID = 'e2e00000-1111-4000-8000-0000000000e2';
const ALICE: GatewayConsumer = { id: 'a11ce000-0000-4000-8000-000000000001', username: 'alice@example.test', custom_id: 'tenant-7' };

// One bundled plugin, one query and one plugin server for the file (each test starts its own
// instance); the fail-closed test stops a server of its own.
let shared: Promise<{ launcherFile: string; info: PluginInfo; server: PluginServer; cleanup(): Promise<void> }> | undefined;
const sharedServer = () => {
  shared ??= (async () => {
    const plugins = await buildLauncher();
    const prefix = makePrefix();
    const { infos } = await queryPluginInfo(plugins.file);
    const server = await startPluginServer(plugins.file, prefix.dir);
    return {
      launcherFile: plugins.file, info: infos[0] as PluginInfo, server,
      async cleanup() { await server.stop(); plugins.remove(); prefix.remove(); },
    };
  })();
  return shared;
};
test.after.always(async () => { if (shared) await (await shared).cleanup(); });

const setup = async (options: { pluginOrigin?: string; ownPluginServer?: boolean } = {}) => {
  const origin = await startGripOrigin({
    '/events': (req, res) => {
      const instruct = res.grip!.startInstruct();
      instruct.addChannel('feed');
      instruct.setHoldStream();
      res.setHeader('Content-Type', 'text/event-stream');
      res.end('event: open\ndata:\n\n');
    },
    '/poll': (req, res) => {
      const instruct = res.grip!.startInstruct();
      instruct.addChannel('inbox');
      instruct.setHoldLongPoll(55);
      res.setHeader('Content-Type', 'application/json');
      res.end('{"messages":[]}\n');
    },
    '/plain': (req, res) => { res.end('plain\n'); },
  });
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, sigKey: TEST_SIG_KEY });
  const common = await sharedServer();
  let own: { server: PluginServer; prefix: { remove(): void } } | undefined;
  if (options.ownPluginServer) {
    const prefix = makePrefix();
    own = { server: await startPluginServer(common.launcherFile, prefix.dir), prefix };
  }
  const driver = new KongRpcDriver((own?.server ?? common.server).socketPath);
  const { Id } = await driver.startInstance('grip', kongPluginConfig(common.info, { secret: SECRET, origin: options.pluginOrigin ?? origin.url }, { pluginId: PLUGIN_ID, serviceId: SERVICE_ID }));
  const gateway = await startGateway({
    driver: () => driver, sidecarPort: side.sidecar.clientPort,
    route: { instanceId: Id, pluginId: PLUGIN_ID }, consumers: { 'alice-key': ALICE },
  });
  const publisher = new Publisher({ control_uri: side.controlUri });
  return {
    origin, side, gateway, publisher,
    async stopPluginServer() {
      if (own === undefined) throw new Error('setup({ ownPluginServer: true }) to stop a server');
      await own.server.stop();
    },
    async metrics(): Promise<string> { return (await request(`${side.controlUri}metrics`)).body; },
    async close() {
      await driver.closeInstance(Id).catch(() => undefined);
      driver.close();
      await gateway.close();
      if (own) { await own.server.stop(); own.prefix.remove(); }
      await side.close();
      await origin.close();
    },
  };
};

/** What the origin must see for a request from ALICE that went through Kong, and nothing forged. */
function assertIdentityAtOrigin(t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void }, seen: SeenRequest | undefined): void {
  const h = seen?.headers ?? {};
  t.true(seen?.isSigned === true, 'the origin validated the Grip-Sig');
  t.is(h['kong-grip-consumer-id'], ALICE.id);
  t.is(decodeURIComponent(String(h['kong-grip-consumer-username'])), ALICE.username);
  t.is(h['kong-grip-consumer-custom-id'], ALICE.custom_id);
  t.is(h['kong-grip-service-id'], SERVICE_ID);
  t.is(h['kong-grip-route-id'], undefined, 'the plugin is service-scoped');
  t.is(h['kong-grip-handoff'], undefined, 'the token is stripped before the origin');
  for (const name of ['x-consumer-id', 'x-consumer-username', 'x-consumer-custom-id', 'x-consumer-groups', 'x-credential-identifier']) {
    t.is(h[name], undefined, `${name} never reaches the origin`);
  }
  t.is(h['apikey'], undefined, 'key-auth hid the credential');
}

const FORGED = { 'X-Consumer-ID': 'admin', 'X-Consumer-Groups': 'admins', 'Kong-Grip-Consumer-Id': 'admin', 'Kong-Grip-Handoff': 'v1.Zm9v.YmFy', 'Grip-Sig': 'forged' };

test.serial('an SSE stream held through Kong delivers published events; the origin sees the verified consumer', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const stream = await openStream(s.gateway.url('/events?apikey=alice-key'), { Accept: 'text/event-stream', ...FORGED });
  t.teardown(() => stream.close());
  t.is(stream.res.statusCode, 200);
  await stream.waitFor('event: open');
  await waitForSubscribers(s.side.sidecar.hub, 'feed', 1);
  await s.publisher.publishFormats('feed', new HttpStreamFormat('data: hello\n\n'));
  await stream.waitFor('data: hello');
  assertIdentityAtOrigin(t, s.origin.seen[0]);
  t.is(s.origin.seen[0]?.url, '/events', 'apikey removed from the query');
  const run = s.gateway.runs[0];
  t.deepEqual(run?.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers']);
});

test.serial('a long-poll held through Kong is answered by a publish; the origin sees the verified consumer', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const pending = request(s.gateway.url('/poll'), { headers: { apikey: 'alice-key', ...FORGED } });
  await waitForSubscribers(s.side.sidecar.hub, 'inbox', 1);
  await s.publisher.publishFormats('inbox', new HttpResponseFormat({ body: '{"messages":["hi alice"]}\n' }));
  const res = await pending;
  t.is(res.status, 200);
  t.is(res.body, '{"messages":["hi alice"]}\n');
  assertIdentityAtOrigin(t, s.origin.seen[0]);
  t.is(s.gateway.runs.length, 1);
  t.is(s.gateway.runs[0]?.calls.length, 2);
});

test.serial('a request straight to the sidecar, bypassing Kong, is refused with 401 and counted; the origin is not asked', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const res = await request(s.side.url('/plain'), { headers: { 'X-Consumer-ID': ALICE.id } });
  t.is(res.status, 401);
  t.is(res.body, 'Unauthorized: missing or invalid Kong handoff.\n');
  t.is(res.headers['www-authenticate'], 'Kong-Grip-Handoff');
  t.is(s.origin.seen.length, 0);
  t.regex(await s.metrics(), /kong_grip_handoff_rejected_total\{reason="missing"\} 1/);
});

test.serial('forged, expired and replayed tokens are refused and counted by reason', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const claims = {
    iat: Math.floor(Date.now() / 1000), nonce: 'Zm9yZ2VkLW5vbmNlLTAwMDE', origin: s.origin.url,
    routeId: null, serviceId: SERVICE_ID, pluginId: PLUGIN_ID, consumer: { id: 'admin', username: 'admin', customId: null },
  };
  const forged = signHandoff(claims, 'not-the-secret-but-just-as-long-0123456789');
  const expired = signHandoff({ ...claims, iat: claims.iat - 31, nonce: 'ZXhwaXJlZC1ub25jZS0wMDAx' }, SECRET);
  for (const token of [forged, expired, 'v1.not-a-token', '']) {
    const res = await request(s.side.url('/plain'), { headers: { 'Kong-Grip-Handoff': token } });
    t.is(res.status, 401, token);
  }
  // A token the plugin really issued, captured between Kong and the sidecar, then sent again.
  const ok = await request(s.gateway.url('/plain'), { headers: { apikey: 'alice-key' } });
  t.is(ok.status, 200);
  const captured = s.gateway.runs[0]?.headers.get('kong-grip-handoff')?.[0] ?? '';
  t.regex(captured, /^v1\./);
  const replay = await request(s.side.url('/plain'), { headers: { 'Kong-Grip-Handoff': captured } });
  t.is(replay.status, 401);
  t.is(s.origin.seen.length, 1, 'only the genuine request reached the origin');
  const metrics = await s.metrics();
  t.regex(metrics, /kong_grip_handoff_rejected_total\{reason="bad_signature"\} 1/);
  t.regex(metrics, /kong_grip_handoff_rejected_total\{reason="expired"\} 1/);
  t.regex(metrics, /kong_grip_handoff_rejected_total\{reason="malformed"\} 1/);
  t.regex(metrics, /kong_grip_handoff_rejected_total\{reason="missing"\} 1/);
  t.regex(metrics, /kong_grip_handoff_rejected_total\{reason="replayed"\} 1/);
});

test.serial('a plugin configured for an origin the sidecars do not allow gets 401, even with a valid signature', async (t) => {
  const s = await setup({ pluginOrigin: 'http://127.0.0.1:9/' });
  t.teardown(() => s.close());
  const res = await request(s.gateway.url('/plain'), { headers: { apikey: 'alice-key' } });
  t.is(res.status, 401);
  t.regex(await s.metrics(), /kong_grip_handoff_rejected_total\{reason="origin_not_allowed"\} 1/);
});

test.serial('when the plugin server is down Kong proxies without the plugin, and the sidecar refuses (fail closed)', async (t) => {
  const s = await setup({ ownPluginServer: true });
  t.teardown(() => s.close());
  await s.stopPluginServer();
  const res = await request(s.gateway.url('/plain'), { headers: { apikey: 'alice-key' } });
  t.is(s.gateway.pluginErrors.length, 1, 'the gateway, like Kong, skipped the unreachable plugin');
  t.is(res.status, 401);
  t.is(s.origin.seen.length, 0);
});

test.serial('a request target naming another host stays on the handed-off origin', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  // Kong would not route this path; send it to the sidecar with a token the plugin issued.
  await request(s.gateway.url('/plain'), { headers: { apikey: 'alice-key' } });
  const claims = {
    iat: Math.floor(Date.now() / 1000), nonce: 'YWJzb2x1dGUtZm9ybS0wMDAx', origin: s.origin.url,
    routeId: null, serviceId: SERVICE_ID, pluginId: PLUGIN_ID, consumer: null,
  };
  const token = signHandoff(claims, SECRET);
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(s.side.sidecar.clientPort, '127.0.0.1', () => {
      socket.write(`GET //evil.invalid/x HTTP/1.1\r\nHost: evil.invalid\r\nKong-Grip-Handoff: ${token}\r\nConnection: close\r\n\r\n`);
    });
    let data = '';
    socket.setEncoding('utf8').on('data', (d: string) => { data += d; }).on('end', () => resolve(data)).on('error', reject);
  });
  t.regex(raw, /^HTTP\/1\.1 404/, 'the origin answered (no such route there)');
  t.is(s.origin.seen[1]?.url, '//evil.invalid/x');
});
