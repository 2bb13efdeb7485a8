import { randomBytes } from 'node:crypto';
import test from 'ava';
import { signHandoff, type HandoffLimits } from '../../sidecar/src/kong/handoff-format.js';
import { listenHttp, openStream, request, type StreamReader } from '../helpers/http.js';
import { NatsServer, waitUntil } from '../helpers/nats-server.js';
import { captureLog, startFleet } from '../helpers/fleet.js';
import type { SidecarProcess } from '../helpers/sidecar-process.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';

const kongNats = useKongNats();

// max_connections_per_consumer across the fleet: two sidecars of two workers each on one NATS
// count one consumer's connections together (per-process leases in the JetStream KV bucket
// kong-grip-leases). Over the limit: 429 before any origin request; a close frees a slot; a
// killed sidecar's slots come back within the lease time; a burst never goes over.

const SECRET = 'kong-quota-fleet-handoff-secret-0123456789';
const PLUGIN = 'quota-plugin';
const LEASE_SEC = 2;

const limitsOf = (max: number): HandoffLimits => ({ maxConnectionsPerConsumer: max, wsMessagesPerSecond: 0, wsBurst: 0 });

const tokenFor = (origin: string, consumer: string | null, limits: HandoffLimits): string => signHandoff({
  iat: Math.floor(Date.now() / 1000), nonce: randomBytes(16).toString('base64url'), origin,
  routeId: null, serviceId: null, pluginId: PLUGIN,
  consumer: consumer === null ? null : { id: consumer, username: null, customId: null }, limits,
}, SECRET);

/** /sse holds an SSE stream on channel q; anything else answers at once. Counts requests. */
async function startOrigin() {
  let requests = 0;
  const server = await listenHttp((req, res) => {
    requests++;
    if (req.url?.startsWith('/sse')) {
      res.setHeader('Content-Type', 'application/grip-instruct');
      res.end(JSON.stringify({ hold: { mode: 'stream', channels: [{ name: 'q' }] }, response: { headers: { 'Content-Type': 'text/event-stream' }, body: 'event: open\ndata:\n\n' } }));
      return;
    }
    res.end('plain\n');
  });
  return { ...server, get requests() { return requests; } };
}

interface Readiness { workers: Array<{ pid: number }> }

/** Two Kong-mode sidecars of two workers each, short leases, no metering. */
function quotaFleet(t: { teardown(fn: () => Promise<void> | void): void }, nats: NatsServer, originUrl: string): Promise<SidecarProcess[]> {
  const args = ['--nats', nats.url, '--kong-secret', SECRET, '--kong-allowed-origins', originUrl, '--workers', '2'];
  return startFleet(t, args, { yaml: `kong:\n  connectionLeaseSec: ${LEASE_SEC}\nusage:\n  enabled: false\n` });
}

// Every test here is serial: they share this list, and fleets of processes starting at once
// on a busy machine would time out.
const streams: StreamReader[] = [];
test.afterEach.always(() => {
  for (const s of streams.splice(0)) s.close();
});

async function open(side: SidecarProcess, originUrl: string, consumer: string | null, limits: HandoffLimits): Promise<StreamReader> {
  const s = await openStream(side.url('/sse'), { 'Kong-Grip-Handoff': tokenFor(originUrl, consumer, limits) });
  streams.push(s);
  if (s.res.statusCode === 200) await s.waitFor('event: open');
  else await s.waitForEnd();
  return s;
}

test.serial('the quota holds across two sidecars of two workers: N+1th refused with 429 before the origin, others unaffected, a close frees a slot, a killed sidecar\'s slots return within the lease', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const sides = await quotaFleet(t, nats, origin.url);
  const [a, b] = sides as [SidecarProcess, SidecarProcess];
  const three = limitsOf(3);

  const alice: StreamReader[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await open(sides[i % 2]!, origin.url, 'alice', three);
    t.is(s.res.statusCode, 200, `open ${i + 1}`);
    alice.push(s);
  }
  const originRequests = origin.requests;
  for (const side of sides) {
    const refused = await open(side, origin.url, 'alice', three);
    t.is(refused.res.statusCode, 429);
    t.is(refused.res.headers['retry-after'], '5');
    t.is(refused.text, 'Too Many Requests: this consumer already has 3 open connections (max_connections_per_consumer); close one and retry.\n');
  }
  t.is(origin.requests, originRequests, 'refused before any origin request');

  // Another consumer has its own count; anonymous requests are not counted.
  t.is((await open(b, origin.url, 'bob', three)).res.statusCode, 200);
  for (let i = 0; i < 4; i++) t.is((await open(sides[i % 2]!, origin.url, null, three)).res.statusCode, 200, 'anonymous');

  // A close frees a slot for the whole fleet (the freed one was on b, the new one opens on a).
  alice[1]!.close();
  let reopened: StreamReader | undefined;
  await waitUntil('alice may open again after a close', async () => {
    const s = await open(a, origin.url, 'alice', three);
    if (s.res.statusCode === 200) reopened = s;
    return reopened !== undefined;
  });
  t.is((await open(b, origin.url, 'alice', three)).res.statusCode, 429, 'and only one');

  // carol's three connections all on b; b and its workers are killed (no drain): carol's slots
  // come back once b's lease runs out.
  for (let i = 0; i < 3; i++) t.is((await open(b, origin.url, 'carol', three)).res.statusCode, 200);
  t.is((await open(a, origin.url, 'carol', three)).res.statusCode, 429);
  const workers = (JSON.parse((await request(`${b.controlUri}readyz`)).body) as Readiness).workers.map((w) => w.pid);
  for (const pid of workers) process.kill(pid, 'SIGKILL');
  b.signal('SIGKILL');
  const killedAt = Date.now();
  await b.exited();
  let back = 0;
  await waitUntil('carol may open on a again', async () => {
    const s = await open(a, origin.url, 'carol', three);
    if (s.res.statusCode === 200) back = Date.now() - killedAt;
    return back > 0;
  }, (LEASE_SEC + 10) * 1000);
  t.log(`a killed sidecar's slots returned after ${back} ms (lease ${LEASE_SEC * 1000} ms)`);
  t.true(back <= LEASE_SEC * 1000 + 1500, `returned within the lease time (plus one renewal and a retry): ${back} ms`);
});

test.serial('accuracy under a burst: 40 simultaneous opens of one consumer on four workers admit exactly the limit, every round', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const sides = await quotaFleet(t, nats, origin.url);
  // Warm up every worker's lease store (a first connection and the bucket).
  for (let i = 0; i < 8; i++) {
    const s = await open(sides[i % 2]!, origin.url, `warm-${i}`, limitsOf(1));
    t.is(s.res.statusCode, 200);
    s.close();
  }
  const LIMIT = 5;
  const admitted: number[] = [];
  for (let round = 0; round < 5; round++) {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => open(sides[i % 2]!, origin.url, `burst-${round}`, limitsOf(LIMIT))));
    const statuses = results.map((s) => s.res.statusCode);
    t.true(statuses.every((s) => s === 200 || s === 429), statuses.join(','));
    admitted.push(statuses.filter((s) => s === 200).length);
  }
  // An open whose lease round trip timed out (1 s) is admitted uncounted (fail open), and counted
  // in kong_grip_quota_store_unavailable_total: the only way over the limit.
  let unavailable = 0;
  for (const side of sides) {
    const text = (await request(`${side.controlUri}metrics`)).body;
    unavailable += Number(/^kong_grip_quota_store_unavailable_total (\d+)$/m.exec(text)?.[1] ?? 'NaN');
  }
  t.log(`admitted per round of 40 simultaneous opens with limit ${LIMIT}: ${admitted.join(', ')}; admitted uncounted (store timeout): ${unavailable}`);
  t.is(admitted.reduce((n, x) => n + x, 0), LIMIT * admitted.length + unavailable);
  for (const n of admitted) t.true(n >= LIMIT);
});

test.serial('cost of the quota check: p50 of 200 sequential handed-off requests with and without it (docs/kong.md)', async (t) => {
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, usage: { enabled: false } });
  t.teardown(() => side.close());
  const time = async (limits: HandoffLimits): Promise<number> => {
    const started = performance.now();
    const res = await request(side.url('/plain'), { headers: { 'Kong-Grip-Handoff': tokenFor(origin.url, 'cost', limits) } });
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    return performance.now() - started;
  };
  for (let i = 0; i < 20; i++) { await time(limitsOf(0)); await time(limitsOf(1_000_000)); }
  const without: number[] = [];
  const withQuota: number[] = [];
  for (let i = 0; i < 200; i++) {
    without.push(await time(limitsOf(0)));
    withQuota.push(await time(limitsOf(1_000_000)));
  }
  const p50 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  t.log(`p50 without the quota ${p50(without).toFixed(3)} ms, with it ${p50(withQuota).toFixed(3)} ms, added ${(p50(withQuota) - p50(without)).toFixed(3)} ms`);
  t.true(p50(withQuota) >= p50(without) * 0.8, 'the measurement ran');
  const metrics = await side.sidecar.metrics.registry.metrics();
  t.regex(metrics, /^kong_grip_quota_refused_total 0$/m);
  t.regex(metrics, /^kong_grip_quota_store_unavailable_total 0$/m);
});

test.serial('a lease store outage (nats-server stopped) admits without the quota, counted and logged once; enforced again once it answers', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const lines: Array<Record<string, unknown>> = [];
  // The nonce store (which fails closed) is replaced, so only the lease store sees the outage.
  const side = await startTestSidecar({
    nats: { servers: nats.url, reconnectWaitMs: 100 }, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, usage: { enabled: false }, logLevel: 'info',
  }, { nonceStore: { claimNonce: () => Promise.resolve(true) }, log: captureLog(lines) });
  t.teardown(() => side.close());
  const one = limitsOf(1);
  const openHere = async (consumer: string): Promise<StreamReader> => {
    const s = await openStream(side.url('/sse'), { 'Kong-Grip-Handoff': tokenFor(origin.url, consumer, one) });
    streams.push(s);
    if (s.res.statusCode === 200) await s.waitFor('event: open');
    else await s.waitForEnd();
    return s;
  };
  t.is((await openHere('dave')).res.statusCode, 200);
  t.is((await openHere('dave')).res.statusCode, 429);

  await nats.stop();
  for (let i = 0; i < 3; i++) t.is((await openHere('dave')).res.statusCode, 200, 'admitted uncounted during the outage');
  const metrics = await side.sidecar.metrics.registry.metrics();
  t.regex(metrics, /^kong_grip_quota_store_unavailable_total 3$/m);
  t.regex(metrics, /^kong_grip_quota_store_outage 1$/m);
  const outageLine = 'connection lease store unavailable: connection quotas are not enforced until it answers again';
  t.is(lines.filter((l) => l['msg'] === outageLine).length, 1, 'logged once per outage');

  await nats.restart();
  // erin has no connection yet: her first open is counted again, her second refused.
  await waitUntil('the lease store answers again', async () => {
    await openHere(`probe-${randomBytes(4).toString('hex')}`);
    return /^kong_grip_quota_store_outage 0$/m.test(await side.sidecar.metrics.registry.metrics());
  }, 20_000);
  t.is((await openHere('erin')).res.statusCode, 200);
  t.is((await openHere('erin')).res.statusCode, 429);
  t.is(lines.filter((l) => l['msg'] === 'connection lease store available again: connection quotas enforced').length, 1);
});

