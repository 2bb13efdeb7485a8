import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { parse } from 'yaml';
// @ts-expect-error plain JavaScript example, no types
import { createExampleOrigin } from '../../examples/origin.js';
import { createPublisher, publish, sseEvent } from '../../sidecar/src/publish/publisher.js';
import { openStream, request, type StreamReader } from '../helpers/http.js';
import { startGateway, type Gateway, type GatewayConsumer, type GatewayRouteSpec } from '../helpers/kong-gateway.js';
import {
  KongRpcDriver, kongPluginConfig, buildLauncher, makePrefix, queryPluginInfo, startPluginServer, type PluginInfo,
} from '../helpers/kong-rpc-driver.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';
import { closed, connect, logOf } from '../helpers/ws-origin.js';

// Kong mode needs NATS with JetStream (the fleet-wide nonce store): one server for the file.
const kongNats = useKongNats();

// The docker-compose quick start without Docker: every route of kong/kong.yml, read from the file,
// through the Kong stand-in (key-auth, acl and the grip plugin in the real plugin server, grip-pluginserver)
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
    const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [originUrl] } });
    closers.push(() => side.close());
    example = createExampleOrigin({ publishUrl: `${side.controlUri}publish/` }) as http.Server;

    const plugins = await buildLauncher();
    closers.push(() => plugins.remove());
    const prefix = makePrefix();
    closers.push(() => prefix.remove());
    const { infos } = await queryPluginInfo(plugins.file);
    const server = await startPluginServer(plugins.file, prefix.dir);
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

// --- every route of kong.yml ----------------------------------------------------------------------

type Check = (q: QuickStart, t: import('ava').ExecutionContext) => Promise<void>;

/** An SSE client on /events through Kong, once the sidecar holds it. */
async function sseThroughKong(q: QuickStart, t: import('ava').ExecutionContext): Promise<StreamReader> {
  const stream = await openStream(q.gateway.url(`/events?apikey=${q.webKey}`), { Accept: 'text/event-stream' });
  t.teardown(async () => { stream.close(); await waitForSubscribers(q.side.sidecar.hub, 'demo', 0); });
  t.is(stream.res.statusCode, 200);
  t.is(stream.res.headers['content-type'], 'text/event-stream');
  await stream.waitFor('"text":"connected"');
  await waitForSubscribers(q.side.sidecar.hub, 'demo', 1);
  return stream;
}

/** What each path of kong.yml must do through Kong with a valid key, by the path as written there. */
const checks: Record<string, Check> = {
  '~/$': async (q, t) => {
    const page = await request(q.gateway.url(`/?apikey=${q.webKey}`));
    t.is(page.status, 200);
    t.regex(String(page.headers['content-type']), /^text\/html/);
    t.regex(page.body, /new EventSource\('\/events' \+ location\.search\)/);
    t.regex(page.body, /new WebSocket\(.*'\/ws' \+ location\.search\)/);
    t.is((await request(q.gateway.url(`/nothing-here?apikey=${q.webKey}`))).status, 404, 'only / itself: the regex path is anchored');
  },
  '/say': async (q, t) => {
    const stream = await sseThroughKong(q, t);
    const said = await request(q.gateway.url(`/say?apikey=${q.webKey}`), { method: 'POST', body: 'hello from the page' });
    t.is(said.status, 204);
    await stream.waitFor('"text":"hello from the page"');
  },
  '/events': async (q, t) => {
    const stream = await sseThroughKong(q, t);
    await publish({ http: { url: q.gateway.url('/rt/'), apiKey: q.publisherKey } }, { channel: 'demo', httpStream: { content: sseEvent({ data: '{"text":"published"}' }) } });
    await stream.waitFor('data: {"text":"published"}\n\n');
    // The gallery's reliable feed lives under /events too: posted and read through Kong.
    const feed = await openStream(q.gateway.url(`/events/feed?apikey=${q.webKey}`), { Accept: 'text/event-stream' });
    t.teardown(() => feed.close());
    t.is(feed.res.statusCode, 200);
    await feed.waitFor('retry: 1000\n\n');
    await waitForSubscribers(q.side.sidecar.hub, 'feed', 1);
    const posted = await request(q.gateway.url(`/events/feed?apikey=${q.webKey}`), { method: 'POST', body: 'feed via kong' });
    t.is(posted.status, 201, posted.body);
    await feed.waitFor(`id: ${JSON.parse(posted.body).id}\ndata: {"text":"feed via kong"`);
  },
  '/poll': async (q, t) => {
    const pending = request(q.gateway.url(`/poll?apikey=${q.webKey}`));
    await waitForSubscribers(q.side.sidecar.hub, 'demo', 1);
    t.is((await request(q.gateway.url(`/say?apikey=${q.webKey}`), { method: 'POST', body: 'for the poll' })).status, 204);
    const res = await pending;
    t.is(res.status, 200);
    t.deepEqual(JSON.parse(res.body), { messages: ['for the poll'] });
    await waitForSubscribers(q.side.sidecar.hub, 'demo', 0);
    // The gallery's long-poll notes live under /poll too: a held poll answered by a note, through Kong.
    const { last } = JSON.parse((await request(q.gateway.url(`/poll/notes?apikey=${q.webKey}`))).body) as { last: string };
    const held = request(q.gateway.url(`/poll/notes?apikey=${q.webKey}&after=${last}`));
    await waitForSubscribers(q.side.sidecar.hub, 'notes', 1);
    t.is((await request(q.gateway.url(`/poll/notes?apikey=${q.webKey}`), { method: 'POST', body: 'note via kong' })).status, 201);
    t.like(JSON.parse((await held).body), { notes: [{ text: 'note via kong' }] });
  },
  '/ws': async (q, t) => {
    const url = q.gateway.url(`/ws?apikey=${q.webKey}`);
    const [a, b] = [await connect(url), await connect(url)];
    t.teardown(() => { a.terminate(); b.terminate(); });
    const [logA, logB] = [logOf(a), logOf(b)];
    t.is(JSON.parse((await logA.waitForCount(1))[0] as string).text, 'welcome to #chat');
    await logB.waitForCount(1);
    await waitForSubscribers(q.side.sidecar.hub, 'chat', 2);
    a.send('hi from a');
    for (const log of [logA, logB]) t.is(JSON.parse((await log.waitForCount(2))[1] as string).text, 'hi from a');
    b.send('');
    t.regex(JSON.parse((await logB.waitForCount(3))[2] as string).text, /message must be 1-2000 bytes/, 'an empty message is answered to its sender only');
    const bye = closed(a);
    a.close(4000, 'bye');
    t.is((await bye).code, 4000);
    b.close();
    await waitForSubscribers(q.side.sidecar.hub, 'chat', 0);
    t.is(logA.messages.length, 2);
  },
  '/rt/publish': async (q, t) => {
    const stream = await sseThroughKong(q, t);
    const body = JSON.stringify({ items: [{ channel: 'demo', formats: { 'http-stream': { content: 'data: {"text":"curl"}\n\n' } } }] });
    // The README's curl line: header apikey, POST to /rt/publish/.
    const res = await request(q.gateway.url('/rt/publish/'), { method: 'POST', headers: { apikey: q.publisherKey }, body });
    t.is(res.status, 200, res.body);
    await stream.waitFor('data: {"text":"curl"}\n\n');
    t.is((await request(q.gateway.url('/rt/publish/'), { headers: { apikey: q.publisherKey } })).status, 404, 'methods: [POST] only');
  },
};

const ymlRoutes = (kongYml['services'] as Doc[]).flatMap((s) => (s['routes'] as Doc[]).map((r) => ({
  service: s['name'] as string, name: r['name'] as string, paths: r['paths'] as string[], methods: (r['methods'] ?? ['GET']) as string[],
  plugins: new Map(((s['plugins'] ?? []) as Doc[]).map((p) => [p['name'] as string, (p['config'] ?? {}) as Doc])),
})));

test('kong.yml has routes, and this test has a check for every path they route', (t) => {
  t.true(ymlRoutes.length >= 4);
  for (const r of ymlRoutes) for (const p of r.paths) t.truthy(checks[p], `route ${r.name}: no check for path ${p}`);
});

/** A concrete request path for a kong.yml path: a regex path is only ever ~/$ (the page) here. */
function pathFor(p: string): string {
  if (!p.startsWith('~')) return p;
  if (p !== '~/$') throw new Error(`no request path for the regex path ${p}`);
  return '/';
}

for (const route of ymlRoutes) {
  for (const path of route.paths) {
    test.serial(`route ${route.name} (${path}) works through Kong with a key`, async (t) => {
      const check = checks[path];
      if (check === undefined) return t.fail(`no check for ${path}`);
      await check(await quickStart(), t);
    });
  }
  test.serial(`route ${route.name} refuses what its plugins promise`, async (t) => {
    const q = await quickStart();
    const keyAuth = route.plugins.get('key-auth');
    const acl = route.plugins.get('acl');
    t.truthy(keyAuth, `${route.name} has key-auth`);
    for (const path of route.paths) {
      const url = pathFor(path);
      const method = route.methods[0] as string;
      const send = (query: string, headers: Record<string, string> = {}) => request(q.gateway.url(url + query), { method, headers, body: method === 'POST' ? '{"items":[]}' : undefined });
      const none = await send('');
      t.is(none.status, 401, `${url} without a key`);
      t.deepEqual(JSON.parse(none.body), { message: 'No API key found in request' });
      t.is((await send('', { apikey: 'not-a-key' })).status, 401, `${url} with an unknown key`);
      if (keyAuth?.['key_in_query'] === false) t.is((await send(`?apikey=${q.publisherKey}`)).status, 401, `${url}: key_in_query is off`);
      if (acl !== undefined) {
        const refused = await send('', { apikey: q.webKey });
        t.is(refused.status, 403, `${url}: a consumer outside ${acl['allow']}`);
        t.deepEqual(JSON.parse(refused.body), { message: 'You cannot consume this service' });
      }
    }
    if (route.paths.includes('/ws')) {
      const refused = await connect(q.gateway.url('/ws')).then(() => 'opened', (err: Error) => err.message);
      t.regex(refused, /401/, 'a WebSocket handshake without a key');
    }
  });
}
