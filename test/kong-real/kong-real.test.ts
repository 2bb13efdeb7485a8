import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import test, { type ExecutionContext } from 'ava';
// @ts-expect-error plain JavaScript example, no types
import { createExampleOrigin } from '../../examples/origin.js';
import { HANDOFF_HEADER } from '../../sidecar/src/kong/handoff-format.js';
import { createPublisher, publish, sseEvent } from '../../sidecar/src/publish/publisher.js';
import { openStream, request, type SimpleResponse, type StreamReader } from '../helpers/http.js';
import { waitForInterest, waitForNoInterest } from '../helpers/nats-e2e.js';
import { NatsServer } from '../helpers/nats-server.js';
import { findKongBundle, openTempDir, preparePluginServer, RealKong, transformKongYml, unpackKongBundle, workerIds } from '../helpers/real-kong.js';
import { SidecarProcess } from '../helpers/sidecar-process.js';
import { closed, connect, logOf } from '../helpers/ws-origin.js';

// The project's kong/kong.yml in a real Kong OSS 3.9.1 (from the runtime bundle developers keep
// beside the checkout; a clone without it skips this file): Kong starts the plugin server itself,
// two Kong-mode sidecars and the example origin sit behind it, and a nats-server with JetStream
// carries publishes and the fleet-wide nonce store. kong.yml is changed only by a text transform:
// the compose host names become local ports, each GRIP service gets its own example origin (so a
// request reaching the wrong origin shows), and three services are added before `consumers:`
// (grip and no grip straight to an origin for the per-request cost; one used only after the kill). The secret comes through Kong's env vault, as kong.yml
// says. One Kong for the whole file; the tests run in order, the plugin-server kill last.

const tarball = findKongBundle();
if (tarball === undefined) {
  console.log('kong-real: no Kong 3.9.1 bundle (set KONG_BUNDLE to kong-3.9.1-bundle.tar.gz): the real-Kong suite is skipped');
  test.skip('real Kong 3.9.1 end to end (no bundle)', () => undefined);
} else {
  registerTests(tarball);
}

const SECRET = 'kong-real-handoff-secret-0123456789abcdef';
const kongYmlText = readFileSync(new URL('../../kong/kong.yml', import.meta.url), 'utf8');
// kong.yml's demo consumers.
const WEB_KEY = 'demo-web-key-change-me';
const PUBLISHER_KEY = 'demo-publisher-key-change-me';

/** An HTTP server whose requests go to the example origin made later, recording each request's URL. */
interface RecordingOrigin {
  url: string;
  seen: string[];
  /** Requests that carried a handoff token (only those sent by Kong straight to the origin keep it). */
  handoffs: number;
  attach(handler: http.Server): void;
  close(): Promise<void>;
}

async function recordingOrigin(): Promise<RecordingOrigin> {
  let example: http.Server | undefined;
  const seen: string[] = [];
  let handoffs = 0;
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.headers[HANDOFF_HEADER.toLowerCase()] !== undefined) handoffs++;
    if (example === undefined) { res.writeHead(503); res.end(); return; }
    example.emit('request', req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    get handoffs() { return handoffs; },
    attach: (handler) => { example = handler; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * Services appended to kong.yml: the same page straight from origin A with and without grip (the
 * per-request cost), and a grip route straight to origin B used only after the plugin-server kill
 * (a route no worker has an instance for yet: what a new instance gets in the gap).
 */
function addedServices(originA: string, originB: string): string {
  const service = (name: string, origin: string, grip: boolean) => `
  - name: ${name}
    url: ${origin}
    routes:
      - name: ${name}
        paths: [/${name}]
        strip_path: true
    plugins:
      - name: key-auth
        config: { key_names: [apikey] }
      - name: rate-limiting
        config: { minute: 100000, limit_by: consumer, policy: local, fault_tolerant: true }
${grip ? `      - name: grip
        config: { secret: "{vault://env/grip-handoff-secret}", origin: ${origin}, forward_consumer: true }
` : ''}`;
  return `  # --- added by kong-real.test.ts ---${service('measure-plain', originA, false)}${service('measure-grip', originA, true)}${service('cold-grip', originB, true)}`;
}

interface Setup {
  kong: RealKong;
  nats: NatsServer;
  sidecars: SidecarProcess[];
  originA: RecordingOrigin;
  originB: RecordingOrigin;
  close(): Promise<void>;
}

async function startSetup(tarballPath: string): Promise<Setup> {
  const closers: Array<() => Promise<unknown> | void> = [];
  const close = async () => { for (const c of closers.reverse()) await c(); };
  try {
    const bundle = await unpackKongBundle(tarballPath);
    const nats = await NatsServer.start({ jetstream: true });
    closers.push(() => nats.dispose());
    const [originA, originB] = [await recordingOrigin(), await recordingOrigin()];
    closers.push(() => originA.close(), () => originB.close());
    const args = ['--nats', nats.url, '--kong-secret', SECRET, '--kong-allowed-origins', `${originA.url},${originB.url}`, '--workers', '1'];
    const sidecars = await Promise.all([SidecarProcess.start(args), SidecarProcess.start(args)]);
    for (const s of sidecars) closers.push(() => s.stop());
    const [s1, s2] = sidecars as [SidecarProcess, SidecarProcess];
    originA.attach(createExampleOrigin({ publishUrl: `${s1.controlUri}publish/` }) as http.Server);
    originB.attach(createExampleOrigin({ publishUrl: `${s2.controlUri}publish/` }) as http.Server);

    const yml = transformKongYml(kongYmlText, [
      { from: 'sidecar-1:7999', to: `127.0.0.1:${s1.clientPort}` },
      { from: 'sidecar-2:7999', to: `127.0.0.1:${s2.clientPort}` },
      { from: 'sidecar-1:5561', to: `127.0.0.1:${s1.controlPort}` },
      { from: 'sidecar-2:5561', to: `127.0.0.1:${s2.controlPort}` },
      // grip-streams, then grip-websocket.
      { from: 'origin: http://origin:8080', to: [`origin: ${originA.url}`, `origin: ${originB.url}`] },
      { from: '\nconsumers:', to: `\n${addedServices(originA.url, originB.url)}\nconsumers:` },
    ]);
    const psDir = openTempDir('kg-pluginserver-');
    closers.push(() => rmSync(psDir, { recursive: true, force: true }));
    const pluginServer = await preparePluginServer(psDir);
    const kong = await RealKong.start({ bundle, kongYml: yml, pluginServer, env: { GRIP_HANDOFF_SECRET: SECRET } });
    closers.push(() => kong.stop());
    return { kong, nats, sidecars, originA, originB, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * An SSE client on /events through Kong, once a sidecar has subscribed for it. Each test leaves
 * no subscription behind, so the next one's wait for interest means its own client.
 */
async function sseThroughKong(s: Setup, t: ExecutionContext): Promise<StreamReader> {
  const stream = await openStream(s.kong.url(`/events?apikey=${WEB_KEY}`), { Accept: 'text/event-stream' });
  t.teardown(async () => { stream.close(); await waitForNoInterest(s.nats, 'demo'); });
  t.is(stream.res.statusCode, 200);
  t.is(stream.res.headers['content-type'], 'text/event-stream');
  await stream.waitFor('"text":"connected"');
  await waitForInterest(s.nats, 'demo', 1);
  return stream;
}

/**
 * Sequential GETs, one keep-alive connection per URL, taken in turn (so every URL sees the same
 * machine load); the median time of each in ms.
 */
async function mediansMs(urls: string[], n: number): Promise<number[]> {
  const agents = urls.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const once = (i: number) => new Promise<number>((resolve, reject) => {
    const url = urls[i] as string;
    const start = performance.now();
    http.get(url, { agent: agents[i] }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`${url}: ${res.statusCode}`))));
    }).on('error', reject);
  });
  try {
    const times: number[][] = urls.map(() => []);
    for (let round = -20; round < n; round++) { // 20 warm-up rounds: connections, plugin instances, caches
      for (let i = 0; i < urls.length; i++) {
        const ms = await once(i);
        if (round >= 0) times[i]?.push(ms);
      }
    }
    return times.map((list) => list.sort((a, b) => a - b)[Math.floor(n / 2)] as number);
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

function registerTests(tarballPath: string): void {
  let shared: Promise<Setup> | undefined;
  const setup = () => (shared ??= startSetup(tarballPath));
  test.after.always(async () => { if (shared) await (await shared).close(); });

  test.serial('Kong 3.9.1 loads kong.yml with grip on both GRIP services and runs the plugin server it started', async (t) => {
    t.timeout(120_000); // the shared set-up: two sidecars, NATS, the launcher's build and `kong start`
    const s = await setup();
    // Not the Admin API's GET /: Kong 3.9.1 answers it 500 on the worker that started a plugin
    // server ("Cannot serialise cdata": kong.configuration.pluginservers holds the ngx.pipe).
    const listed = await request(s.kong.adminUrl('/plugins'));
    t.is(listed.headers['server'], 'kong/3.9.1');
    const plugins = JSON.parse(listed.body) as { data: Array<{ name: string; config: { origin?: string } }> };
    const grips = plugins.data.filter((p) => p.name === 'grip').map((p) => p.config.origin).sort();
    t.deepEqual(grips, [s.originA.url, s.originA.url, s.originB.url, s.originB.url].sort());
    const pids = s.kong.pluginServerPids();
    t.is(pids.length, 1, 'one plugin server');
    if (process.getuid?.() === 0) {
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pids[0]}/status`, 'utf8'))?.[1];
      t.is(uid, String(workerIds().uid), 'Kong started as root runs the plugin server as its workers\' user');
    }
  });

  test.serial('the example page through Kong reaches origin A through a sidecar', async (t) => {
    const s = await setup();
    const page = await request(s.kong.url(`/?apikey=${WEB_KEY}`));
    t.is(page.status, 200);
    t.regex(String(page.headers['content-type']), /^text\/html/);
    t.regex(page.body, /new EventSource\('\/events' \+ location\.search\)/);
    t.true(s.originA.seen.includes('GET /'), 'key-auth hid the key from the origin');
  });

  test.serial('SSE through Kong receives a kong-grip/publish through the /rt route (apiKey) and a publish on NATS', async (t) => {
    const s = await setup();
    const stream = await sseThroughKong(s, t);
    const viaKong = createPublisher({ http: { url: s.kong.url('/rt'), apiKey: PUBLISHER_KEY } });
    t.teardown(() => viaKong.close());
    await viaKong.publish({ channel: 'demo', httpStream: { content: sseEvent({ data: '{"text":"through kong"}' }) } });
    await stream.waitFor('data: {"text":"through kong"}\n\n');
    const onNats = createPublisher({ nats: { servers: s.nats.url } });
    t.teardown(() => onNats.close());
    await onNats.publish({ channel: 'demo', httpStream: { content: sseEvent({ data: '{"text":"on nats"}' }) } });
    await stream.waitFor('data: {"text":"on nats"}\n\n');
  });

  test.serial('a long-poll through Kong is held and answered by the next message', async (t) => {
    const s = await setup();
    const pending = request(s.kong.url(`/poll?apikey=${WEB_KEY}`));
    await waitForInterest(s.nats, 'demo', 1);
    t.is((await request(s.kong.url(`/say?apikey=${WEB_KEY}`), { method: 'POST', body: 'for the poll' })).status, 204);
    const res = await pending;
    t.is(res.status, 200);
    t.deepEqual(JSON.parse(res.body), { messages: ['for the poll'] });
    await waitForNoInterest(s.nats, 'demo');
  });

  test.serial('a WebSocket chat through Kong (origin B over WebSocket-over-HTTP) reaches both clients', async (t) => {
    const s = await setup();
    const url = s.kong.url(`/ws?apikey=${WEB_KEY}`);
    const before = await Promise.all(s.sidecars.map(activeConnections));
    const [a, b] = [await connect(url), await connect(url)];
    t.teardown(() => { a.terminate(); b.terminate(); });
    const [logA, logB] = [logOf(a), logOf(b)];
    t.is(JSON.parse((await logA.waitForCount(1))[0] as string).text, 'welcome to #chat');
    await logB.waitForCount(1);
    // Kong's least-connections balancer may put the two clients on one sidecar or on both: the
    // message is sent once every sidecar holding a client has subscribed on NATS.
    const after = await Promise.all(s.sidecars.map(activeConnections));
    const holding = after.filter((n, i) => n > (before[i] as number)).length;
    t.true(holding >= 1);
    await waitForInterest(s.nats, 'chat', holding);
    a.send('hi from a');
    for (const log of [logA, logB]) t.is(JSON.parse((await log.waitForCount(2))[1] as string).text, 'hi from a');
    const bye = closed(a);
    a.close(4000, 'bye');
    t.is((await bye).code, 4000);
    t.true(s.originB.seen.some((r) => r.startsWith('POST /ws')), 'the chat ran on origin B');
    t.false(s.originA.seen.some((r) => r.startsWith('POST /ws')), 'never on origin A');
  });

  test.serial('key-auth 401, acl 403 and rate-limiting 429 through Kong', async (t) => {
    const s = await setup();
    const none = await request(s.kong.url('/events'));
    t.is(none.status, 401);
    t.is((JSON.parse(none.body) as { message: string }).message, 'No API key found in request');
    t.is((await request(s.kong.url('/'), { headers: { apikey: 'not-a-key' } })).status, 401);
    const wsRefused = await connect(s.kong.url('/ws')).then(() => 'opened', (err: Error) => err.message);
    t.regex(wsRefused, /401/, 'a WebSocket handshake without a key');
    const item = { channel: 'demo', httpStream: { content: 'data: no\n\n' } };
    await t.throwsAsync(publish({ http: { url: s.kong.url('/rt/'), token: PUBLISHER_KEY } }, item), { message: /answered 401/ });
    await t.throwsAsync(publish({ http: { url: s.kong.url('/rt/'), apiKey: WEB_KEY } }, item), { message: /answered 403: You cannot consume this service/ });
    // The publish route allows 50 requests a second per consumer: batches of 10 at once until refused.
    const statuses = new Set<number>();
    let limited: SimpleResponse | undefined;
    for (let batch = 0; batch < 100 && limited === undefined; batch++) {
      const results = await Promise.all(Array.from({ length: 10 }, () => request(s.kong.url('/rt/publish/'), {
        method: 'POST', headers: { apikey: PUBLISHER_KEY, 'Content-Type': 'application/json' }, body: '{"items":[]}',
      })));
      for (const r of results) statuses.add(r.status);
      limited = results.find((r) => r.status === 429);
    }
    t.deepEqual([...statuses].sort(), [200, 429]);
    t.is((JSON.parse(limited?.body ?? '{}') as { message?: string }).message, 'API rate limit exceeded');
    t.is(limited?.headers['x-ratelimit-limit-second'], '50');
  });

  test.serial('a request straight to a sidecar is refused (401), with a consumer key or a forged handoff', async (t) => {
    const s = await setup();
    for (const side of s.sidecars) {
      t.is((await request(side.url(`/?apikey=${WEB_KEY}`))).status, 401);
      t.is((await request(side.url('/events'), { headers: { apikey: WEB_KEY, 'X-Consumer-Username': 'web-app' } })).status, 401);
      t.is((await request(side.url('/'), { headers: { [HANDOFF_HEADER]: 'v1.e30.AAAA' } })).status, 401);
      const ws = await connect(side.url('/ws')).then(() => 'opened', (err: Error) => err.message);
      t.regex(ws, /401/);
    }
    t.false(s.originA.seen.some((r) => r.includes('apikey')), 'nothing reached an origin');
  });

  test.serial('per-request cost of the plugin: p50 of sequential requests, grip route vs plain key-auth route (printed, not asserted)', async (t) => {
    t.timeout(120_000); // 660 sequential requests on a machine that may be busy
    const s = await setup();
    const n = 200;
    const handoffsBefore = s.originA.handoffs;
    const [plain, grip, real] = await mediansMs(['/measure-plain/', '/measure-grip/', '/'].map((p) => s.kong.url(`${p}?apikey=${WEB_KEY}`)), n) as [number, number, number];
    t.is(s.originA.handoffs - handoffsBefore, n + 20, 'the plugin ran on every request of the grip route (its token reached the origin)');
    const line = `kong-real: p50 over ${n} sequential keep-alive requests (the example page): key-auth + rate-limiting → origin ${plain.toFixed(2)} ms; + grip → origin ${grip.toFixed(2)} ms (plugin adds ${(grip - plain).toFixed(2)} ms); kong.yml route (+ grip → sidecar → origin) ${real.toFixed(2)} ms`;
    console.log(line);
    t.log(line);
  });

  test.serial('a killed plugin server: what clients get in the gap, Kong respawns it, and every route then reaches its own origin', async (t) => {
    t.timeout(120_000); // up to 20 s of gap, then 99 requests
    const s = await setup();
    // A stream opened before the kill keeps receiving: it no longer needs the plugin.
    const stream = await sseThroughKong(s, t);
    const onNats = createPublisher({ nats: { servers: s.nats.url } });
    t.teardown(() => onNats.close());

    const routes = [
      { name: 'grip-events (/)', path: '/', origin: s.originA, other: s.originB, ok: 200, warm: true },
      // A plain GET on /ws: the sidecar passes it to origin B, whose only /ws is the chat (404 otherwise).
      { name: 'grip-ws (/ws)', path: '/ws', origin: s.originB, other: s.originA, ok: 404, warm: true },
      // Never requested before the kill: every worker starts its instance in the gap.
      { name: 'cold-grip (new instance)', path: '/cold-grip/', origin: s.originB, other: s.originA, ok: 200, warm: false },
    ] as const;
    type Route = (typeof routes)[number];
    /** Whether an origin saw this probe (its id is the query's last parameter; cold-grip keeps the key). */
    const saw = (origin: RecordingOrigin, id: string) => origin.seen.some((x) => x.endsWith(`?${id}`) || x.endsWith(`&${id}`));
    let probe = 0;
    const sent: Array<{ r: Route; id: string; res: SimpleResponse }> = [];
    const send = async (r: Route): Promise<{ r: Route; id: string; res: SimpleResponse }> => {
      const id = `probe=${++probe}`;
      // The publisher consumer: its own rate-limiting budget, apart from the web consumer's.
      const res = await request(s.kong.url(`${r.path}?apikey=${PUBLISHER_KEY}&${id}`));
      sent.push({ r, id, res });
      return { r, id, res };
    };
    // Both kong.yml routes' instances are warm before the kill.
    for (const r of routes) if (r.warm) t.is((await send(r)).res.status, r.ok);

    const [oldPid] = s.kong.pluginServerPids();
    t.truthy(oldPid);
    const logBefore = s.kong.errorLog().length;
    process.kill(oldPid as number, 'SIGKILL');
    const killedAt = performance.now();
    // When the new server answers on the socket (polled beside the client requests).
    let respawnedMs: number | undefined;
    const respawned = (async () => {
      while (performance.now() - killedAt < 20_000) {
        const pids = s.kong.pluginServerPids();
        if (pids.length > 0 && !pids.includes(oldPid as number) && await s.kong.socketAnswers()) {
          respawnedMs = Math.round(performance.now() - killedAt);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 10)); // polling interval
      }
    })();

    // The gap: requests in turn on the three routes until each has answered normally 5 times in a row.
    const gap: Array<{ ms: number; route: string; status: number; body: string }> = [];
    let published = false;
    const streak = new Map<string, number>();
    for (let i = 0; [...streak.values()].filter((n) => n >= 5).length < routes.length; i++) {
      if (performance.now() - killedAt > 20_000) return t.fail(`no recovery within 20 s: ${JSON.stringify(gap.slice(-6))}`);
      const { r, res } = await send(routes[i % routes.length] as Route);
      gap.push({ ms: Math.round(performance.now() - killedAt), route: r.name, status: res.status, body: res.body.replace(/\s+/g, ' ').replace(/"request_id":"\w+"/, '').slice(0, 70) });
      streak.set(r.name, res.status === r.ok ? (streak.get(r.name) ?? 0) + 1 : 0);
      if (!published) {
        published = true;
        await onNats.publish({ channel: 'demo', httpStream: { content: sseEvent({ data: '{"text":"during the outage"}' }) } });
      }
      await new Promise((resolve) => setTimeout(resolve, 20)); // pacing, not a wait for an event
    }
    await stream.waitFor('data: {"text":"during the outage"}\n\n');
    await respawned;
    t.truthy(respawnedMs, 'the new plugin server answered on the socket');
    const newPids = s.kong.pluginServerPids();
    t.is(newPids.length, 1);
    t.not(newPids[0], oldPid, 'Kong started a new plugin server');

    // What clients got, and what Kong logged, in the gap.
    const failures = gap.filter((g) => g.status !== routes.find((r) => r.name === g.route)?.ok);
    const byAnswer = new Map<string, number>();
    for (const f of failures) byAnswer.set(`${f.route}: ${f.status} ${f.body}`, (byAnswer.get(`${f.route}: ${f.status} ${f.body}`) ?? 0) + 1);
    const logged = new Map<string, number>();
    for (const line of s.kong.errorLog().slice(logBefore).split('\n')) {
      const m = /\[(?:error|crit|warn|alert)\] .*?\] (.*?)(?:, client:|, context:|$)/.exec(line);
      if (m?.[1] !== undefined && !m[1].includes('rate-limiting: config.redis')) logged.set(m[1].slice(0, 140), (logged.get(m[1].slice(0, 140)) ?? 0) + 1);
    }
    const summary = [
      `kong-real: plugin server killed; Kong's new one answered on the socket after ${respawnedMs} ms; ${gap.length} requests in turn on 3 routes, ~20 ms apart; ${failures.length} refused, the last ${failures.at(-1)?.ms ?? 0} ms after the kill; 5 normal answers in a row on every route by ${gap.at(-1)?.ms} ms`,
      ...[...byAnswer].map(([k, n]) => `  ${n} × ${k}`),
      '  Kong logged:',
      ...[...logged].map(([k, n]) => `  ${n} × ${k}`),
    ].join('\n');
    console.log(summary);
    t.log(summary);
    // Fail closed: in the gap a request is refused by Kong (500/503) or by the sidecar (401).
    for (const f of failures) t.true([401, 500, 503].includes(f.status), `${f.route}: ${f.status} ${f.body}`);
    // The grip route straight to an origin has no sidecar behind it: only Kong can refuse it.
    t.true(failures.filter((f) => f.route.startsWith('cold-grip')).every((f) => f.status >= 500));

    // Recovery with no wrong configuration: requests in turn on the routes each reach their route's origin.
    const recovered: Array<Awaited<ReturnType<typeof send>>> = [];
    for (let i = 0; i < 99; i++) recovered.push(await send(routes[i % routes.length] as Route));
    for (const { r, id, res } of recovered) {
      t.is(res.status, r.ok, `${r.name} ${id}: ${res.body}`);
      t.true(saw(r.origin, id), `${r.name} ${id} reached its origin`);
    }
    // Before, in and after the gap, no request ever reached the other route's origin, and every
    // refused one reached no origin at all.
    const wrong = sent.filter(({ r, id }) => saw(r.other, id));
    t.deepEqual(wrong.map(({ r, id }) => `${r.name} ${id}`), []);
    const leaked = sent.filter(({ r, id, res }) => res.status !== r.ok && saw(r.origin, id));
    t.deepEqual(leaked.map(({ r, id, res }) => `${r.name} ${id} ${res.status}`), []);
  });
}

/** A sidecar's active client connections (requests in progress and WebSockets), from its metrics. */
async function activeConnections(side: SidecarProcess): Promise<number> {
  const metrics = (await request(`${side.controlUri}metrics`)).body;
  return Number(/^kong_grip_client_connections\{state="active"\} (\d+)$/m.exec(metrics)?.[1] ?? Number.NaN);
}
