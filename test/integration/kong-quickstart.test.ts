import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { parse } from 'yaml';
// @ts-expect-error plain JavaScript example, no types
import { createExampleOrigin } from '../../examples/origin.js';
import { createPublisher, publish, sseEvent } from '../../sidecar/src/publish/publisher.js';
import { openStream, request } from '../helpers/http.js';
import { startGateway, type Gateway, type GatewayConsumer, type GatewayRouteSpec } from '../helpers/kong-gateway.js';
import {
  KongRpcDriver, kongPluginConfig, makePluginsDir, makePrefix, queryPluginInfo, startPluginServer, type PluginInfo,
} from '../helpers/kong-rpc-driver.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';

// The docker-compose quick start without Docker: every route of kong/kong.yml, read from the file,
// through the Kong stand-in (key-auth, acl and the grip plugin in the real kong-js-pluginserver)
// to a Kong-mode sidecar in front of the example origin (examples/origin.js). Each grip entry of
// kong.yml gets its own plugin instance with its config, the vault secret and the compose host
// name of the origin replaced by this test's values. Not emulated: rate-limiting and
// request-size-limiting (their limits are far above what these tests send).

type Doc = Record<string, any>;
const kongYml = parse(readFileSync(new URL('../../kong/kong.yml', import.meta.url), 'utf8')) as Doc;
const SECRET = 'kong-quickstart-handoff-secret-0123456789abcdef';

/** kong.yml's consumers: each key-auth key → its consumer, with its ACL groups. */
function consumersOf(doc: Doc): Record<string, GatewayConsumer> {
  const out: Record<string, GatewayConsumer> = {};
  (doc['consumers'] as Doc[]).forEach((c, i) => {
    const consumer: GatewayConsumer = {
      id: `c0000000-0000-4000-8000-${String(i).padStart(12, '0')}`, username: c['username'], custom_id: c['custom_id'],
      groups: ((c['acls'] ?? []) as Doc[]).map((a) => a['group'] as string),
    };
    for (const cred of (c['keyauth_credentials'] ?? []) as Doc[]) out[cred['key'] as string] = consumer;
  });
  return out;
}

/** The key of a consumer that may (or may not) use the publish route. */
function keyOf(doc: Doc, publisher: boolean): string {
  const c = (doc['consumers'] as Doc[]).find((x) => ((x['acls'] ?? []) as Doc[]).some((a) => a['group'] === 'grip-publishers') === publisher);
  return c?.['keyauth_credentials'][0]['key'] as string;
}

interface QuickStart {
  gateway: Gateway;
  side: TestSidecar;
  routes: GatewayRouteSpec[];
  webKey: string;
  publisherKey: string;
  close(): Promise<void>;
}

async function startQuickStart(): Promise<QuickStart> {
  const closers: Array<() => Promise<void> | void> = [];
  const close = async () => { for (const c of closers.reverse()) await c(); };
  try {
    // The example origin publishes what it is sent to a sidecar's publish API (PUBLISH_URL in
    // compose), and the sidecar must know the origin's URL first: this server listens now and
    // hands each request to the example origin made once the sidecar runs.
    let example: http.Server | undefined;
    const origin = http.createServer((req, res) => { example?.emit('request', req, res); });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => { origin.closeAllConnections(); origin.close(() => resolve()); }));
    const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const side = await startTestSidecar({ kongSecret: SECRET, kong: { allowedOrigins: [originUrl] } });
    closers.push(() => side.close());
    example = createExampleOrigin({ publishUrl: `${side.controlUri}publish/` }) as http.Server;

    const plugins = await makePluginsDir();
    closers.push(() => plugins.remove());
    const prefix = makePrefix();
    closers.push(() => prefix.remove());
    const { infos } = await queryPluginInfo(plugins.dir);
    const server = await startPluginServer(plugins.dir, prefix.dir);
    closers.push(() => server.stop());
    const driver = new KongRpcDriver(server.socketPath);
    closers.push(() => driver.close());

    // Upstream name → the local port of what its targets' port is in compose.
    const ports = new Map<string, number>();
    for (const u of kongYml['upstreams'] as Doc[]) {
      const targetPorts = new Set((u['targets'] as Doc[]).map((x) => String(x['target']).split(':')[1]));
      if (targetPorts.size !== 1) throw new Error(`upstream ${u['name']}: targets on several ports`);
      const [port] = targetPorts;
      ports.set(u['name'], port === '7999' ? side.sidecar.clientPort : port === '5561' ? side.sidecar.controlPort : Number.NaN);
    }
    const routes: GatewayRouteSpec[] = [];
    let n = 0;
    for (const s of kongYml['services'] as Doc[]) {
      const plugins = new Map(((s['plugins'] ?? []) as Doc[]).map((p) => [p['name'] as string, p['config'] as Doc]));
      let grip: GatewayRouteSpec['grip'];
      const gripConfig = plugins.get('grip');
      if (gripConfig !== undefined) {
        const pluginId = `9e000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
        const config = { ...gripConfig, secret: SECRET, origin: originUrl };
        const { Id } = await driver.startInstance('grip', kongPluginConfig(infos[0] as PluginInfo, config, { pluginId, serviceId: `5e000000-0000-4000-8000-${String(n).padStart(12, '0')}` }));
        closers.push(() => driver.closeInstance(Id).then(() => undefined, () => undefined));
        grip = { instanceId: Id, pluginId };
      }
      const upstreamPort = ports.get(s['host']);
      if (upstreamPort === undefined || Number.isNaN(upstreamPort)) throw new Error(`service ${s['name']}: no local stand-in for ${s['host']}`);
      for (const r of s['routes'] as Doc[]) {
        routes.push({
          name: r['name'], paths: r['paths'], methods: r['methods'], strip_path: r['strip_path'] ?? true,
          servicePath: s['path'], upstreamPort,
          ...(plugins.has('key-auth') ? { keyAuth: plugins.get('key-auth') as never } : {}),
          ...(plugins.has('acl') ? { acl: plugins.get('acl') as never } : {}),
          ...(grip === undefined ? {} : { grip }),
        });
      }
    }
    const gateway = await startGateway({ driver: () => driver, consumers: consumersOf(kongYml), routes });
    closers.push(() => gateway.close());
    return { gateway, side, routes, webKey: keyOf(kongYml, false), publisherKey: keyOf(kongYml, true), close };
  } catch (err) {
    await close();
    throw err;
  }
}

let shared: Promise<QuickStart> | undefined;
const quickStart = () => (shared ??= startQuickStart());
test.after.always(async () => { if (shared) await (await shared).close(); });

test.serial('kong-grip/publish with apiKey publishes through kong.yml\'s publish route to an SSE client held through Kong', async (t) => {
  const q = await quickStart();
  const stream = await openStream(q.gateway.url(`/events?apikey=${q.webKey}`), { Accept: 'text/event-stream' });
  t.teardown(() => stream.close());
  t.is(stream.res.statusCode, 200);
  await stream.waitFor('"text":"connected"');
  await waitForSubscribers(q.side.sidecar.hub, 'demo', 1);
  // The control URL a publisher is given in kong.yml: http://kong:8000/rt (it posts to /rt/publish/).
  const publisher = createPublisher({ http: { url: q.gateway.url('/rt'), apiKey: q.publisherKey } });
  t.teardown(() => publisher.close());
  await publisher.publish({ channel: 'demo', httpStream: { content: sseEvent({ data: '{"text":"via kong"}' }) } });
  await stream.waitFor('data: {"text":"via kong"}\n\n');
  // The key in another header, as key-auth with key_names: [apikey] does not read it: refused.
  await t.throwsAsync(publish({ http: { url: q.gateway.url('/rt/'), apiKey: q.publisherKey, apiKeyHeader: 'X-Api-Key' } }, { channel: 'demo', httpStream: { content: 'x' } }), {
    code: 'KG_ERR_PUBLISH_UNAUTHORIZED', message: /answered 401: \{"message":"No API key found in request"\}/,
  });
});

test.serial('the publish route refuses a Bearer token or no key (401), an unknown key (401), and a client key (403, acl)', async (t) => {
  const q = await quickStart();
  const item = { channel: 'demo', httpStream: { content: 'data: no\n\n' } };
  const url = q.gateway.url('/rt/');
  await t.throwsAsync(publish({ http: { url, token: q.publisherKey } }, item), { code: 'KG_ERR_PUBLISH_UNAUTHORIZED', message: /answered 401/ });
  await t.throwsAsync(publish({ http: { url } }, item), { code: 'KG_ERR_PUBLISH_UNAUTHORIZED', message: /answered 401/ });
  await t.throwsAsync(publish({ http: { url, apiKey: 'not-a-key' } }, item), { code: 'KG_ERR_PUBLISH_UNAUTHORIZED', message: /answered 401/ });
  await t.throwsAsync(publish({ http: { url, apiKey: q.webKey } }, item), { code: 'KG_ERR_PUBLISH_UNAUTHORIZED', message: /answered 403: \{"message":"You cannot consume this service"\}/ });
  // key_in_query is false on the publish route.
  const inQuery = await request(q.gateway.url(`/rt/publish/?apikey=${q.publisherKey}`), { method: 'POST', body: '{"items":[]}' });
  t.is(inQuery.status, 401);
});
