import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import test from 'ava';
import { signHandoff } from '../../sidecar/src/kong/handoff-format.js';
import type { NonceStore } from '../../sidecar/src/kong/handoff-verifier.js';
import { listenHttp, request } from '../helpers/http.js';
import { NatsServer, waitUntil } from '../helpers/nats-server.js';
import { captureLog, startFleet } from '../helpers/fleet.js';
import { useKongNats } from '../helpers/kong-nats.js';
import { startTestSidecar } from '../helpers/sidecar.js';

const kongNats = useKongNats();

// Kong mode's replay check across the fleet: a handoff token's nonce is claimed once in a NATS
// JetStream KV bucket shared by every worker of every sidecar, so a captured token is accepted
// at most once; an unavailable store refuses handed-off requests (503, fail closed).

const SECRET = 'kong-replay-fleet-handoff-secret-0123456789';

const tokenFor = (origin: string, nonce = randomBytes(16).toString('base64url')): string => signHandoff({
  iat: Math.floor(Date.now() / 1000), nonce, origin,
  routeId: null, serviceId: null, pluginId: 'replay-plugin', consumer: null,
}, SECRET);

const plainOrigin = () => listenHttp((req, res) => { res.end('plain\n'); });

interface Readiness { workers: Array<{ pid: number }> }

test('one token sent to every worker of two sidecars on one NATS is accepted exactly once', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await plainOrigin();
  t.teardown(() => origin.close());
  const args = ['--nats', nats.url, '--kong-secret', SECRET, '--kong-allowed-origins', origin.url, '--workers', '2'];
  const sides = await startFleet(t, args);
  const workerPids = new Set<number>();
  for (const side of sides) {
    for (const w of (JSON.parse((await request(`${side.controlUri}readyz`)).body) as Readiness).workers) workerPids.add(w.pid);
  }
  t.is(workerPids.size, 4);

  // A warm-up token per sidecar, so no worker is still opening the bucket.
  for (const side of sides) {
    await waitUntil('the sidecar accepts a fresh token', async () => (await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': tokenFor(origin.url) } })).status === 200);
  }

  // The same token, on a new connection each time: the primaries hand connections to their
  // workers in turn, so every worker gets it more than once.
  const token = tokenFor(origin.url);
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) {
    for (const side of sides) statuses.push((await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': token } })).status);
  }
  t.is(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses.join(',')}`);
  t.is(statuses.filter((s) => s === 401).length, 11);

  // Every worker saw the token: the refusals (and the one acceptance) come from all four.
  const refusing = new Set(sides.flatMap((side) => side.lines)
    .filter((l) => l.msg === 'handoff refused' && l['reason'] === 'replayed').map((l) => Number(l['pid'])));
  t.true(refusing.size >= 3, `workers that refused: ${[...refusing].join(',')}`);
  for (const pid of refusing) t.true(workerPids.has(pid));
  const metrics = (await request(`${sides[0]!.controlUri}metrics`)).body + (await request(`${sides[1]!.controlUri}metrics`)).body;
  const replayed = [...metrics.matchAll(/^kong_grip_handoff_rejected_total\{reason="replayed"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  t.is(replayed, 11);
});

test('a store outage (nats-server stopped) refuses handed-off requests with 503 and Retry-After, logged once; they pass again after the restart', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await plainOrigin();
  t.teardown(() => origin.close());
  const lines: Array<Record<string, unknown>> = [];
  const side = await startTestSidecar({
    nats: { servers: nats.url, reconnectWaitMs: 100 }, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, logLevel: 'info',
  }, { log: captureLog(lines) });
  t.teardown(() => side.close());
  t.is((await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': tokenFor(origin.url) } })).status, 200);

  await nats.stop();
  const startedAt = Date.now();
  for (let i = 0; i < 5; i++) {
    const res = await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': tokenFor(origin.url) } });
    t.is(res.status, 503);
    t.is(res.headers['retry-after'], '1');
    t.is(res.body, 'Service Unavailable: the handoff check is unavailable, retry.\n');
  }
  t.true(Date.now() - startedAt < 5 * 1100, 'each refusal within the claim timeout');
  // A forged token is still a 401: the local checks come first.
  t.is((await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': tokenFor('http://elsewhere:1') } })).status, 401);
  const metrics = await side.sidecar.metrics.registry.metrics();
  t.regex(metrics, /^kong_grip_handoff_store_unavailable_total 5$/m);
  t.regex(metrics, /^kong_grip_handoff_store_outage 1$/m);
  t.regex(metrics, /^kong_grip_handoff_rejected_total\{reason="store_unavailable"\} 5$/m);
  t.is(lines.filter((l) => l['msg'] === 'handoff nonce store unavailable: refusing handed-off requests until it answers again').length, 1, 'logged once per outage');
  t.is(lines.filter((l) => l['msg'] === 'handoff refused' && l['reason'] === 'store_unavailable').length, 0, 'not logged per request');

  await nats.restart();
  await waitUntil('handed-off requests pass again', async () => (await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': tokenFor(origin.url) } })).status === 200);
  t.regex(await side.sidecar.metrics.registry.metrics(), /^kong_grip_handoff_store_outage 0$/m);
  t.is(lines.filter((l) => l['msg'] === 'handoff nonce store available again').length, 1);
  // The nonces claimed before the outage are still claimed (the bucket is on disk).
});

test('a client that leaves while its nonce is being claimed does not keep its admission slot', async (t) => {
  const origin = await plainOrigin();
  t.teardown(() => origin.close());
  // Claims wait until released (while `isHeld`), then say "free".
  let isHeld = true;
  const waiting: Array<() => void> = [];
  const slow: NonceStore = {
    claimNonce: () => isHeld ? new Promise((resolve) => { waiting.push(() => resolve(true)); }) : Promise.resolve(true),
  };
  const side = await startTestSidecar({
    nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] }, limits: { maxConnections: 1 },
  }, { nonceStore: slow });
  t.teardown(() => side.close());
  const active = async (): Promise<number> =>
    (await side.sidecar.metrics.registry.getSingleMetric('kong_grip_client_connections')!.get()).values.find((v) => v.labels['state'] === 'active')?.value ?? -1;
  // A plain request and an upgrade, each gone before the claim answers.
  for (const head of [
    `GET / HTTP/1.1\r\nHost: x\r\nKong-Grip-Handoff: ${tokenFor(origin.url)}\r\n\r\n`,
    `GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nKong-Grip-Handoff: ${tokenFor(origin.url)}\r\n\r\n`,
  ]) {
    const socket = connect(side.sidecar.clientPort, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(head);
    await waitUntil('the claim is in flight', async () => waiting.length === 1);
    t.is(await active(), 1);
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    waiting.shift()!();
    await waitUntil('the slot is free again', async () => (await active()) === 0);
  }
  // With maxConnections 1, a new request is admitted (and answered) only if no slot leaked.
  isHeld = false;
  t.is((await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': tokenFor(origin.url) } })).status, 200);
});


test('cost of the shared claim: p50 of 200 sequential handed-off requests, with and without it (docs/kong.md)', async (t) => {
  const origin = await plainOrigin();
  t.teardown(() => origin.close());
  const nats = (await kongNats()).url;
  const overrides = { nats, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] } };
  const shared = await startTestSidecar(overrides);
  t.teardown(() => shared.close());
  const local = await startTestSidecar(overrides, { nonceStore: { claimNonce: () => Promise.resolve(true) } });
  t.teardown(() => local.close());
  const timed = async (side: typeof shared): Promise<number> => {
    const token = tokenFor(origin.url);
    const startedAt = performance.now();
    const res = await request(side.url('/'), { headers: { 'Kong-Grip-Handoff': token } });
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    return performance.now() - startedAt;
  };
  for (let i = 0; i < 20; i++) await Promise.all([timed(local), timed(shared)]); // warm-up
  // Interleaved, so both see the same machine load.
  const times: { without: number[]; withClaim: number[] } = { without: [], withClaim: [] };
  for (let i = 0; i < 200; i++) {
    times.without.push(await timed(local));
    times.withClaim.push(await timed(shared));
  }
  const p50 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const without = p50(times.without);
  const withClaim = p50(times.withClaim);
  t.log(`p50 without the shared claim ${without.toFixed(3)} ms, with it ${withClaim.toFixed(3)} ms, added ${(withClaim - without).toFixed(3)} ms`);
  t.true(withClaim - without < 50, 'the claim is one local round trip, not a timeout');
});
