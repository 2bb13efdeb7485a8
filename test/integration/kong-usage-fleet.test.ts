import { randomBytes } from 'node:crypto';
import test from 'ava';
import { connect as natsConnect, StringCodec } from 'nats';
import type WebSocket from 'ws';
import { signHandoff } from '../../sidecar/src/kong/handoff-format.js';
import type { UsageRecord } from '../../sidecar/src/usage/usage-ledger.js';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { listenHttp, openStream, request, type StreamReader } from '../helpers/http.js';
import { NatsServer, waitUntil } from '../helpers/nats-server.js';
import { startFleet } from '../helpers/fleet.js';
import type { SidecarProcess } from '../helpers/sidecar-process.js';
import { connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// Usage metering across a fleet: two sidecars of two workers each publish usage records on
// grip.usage every second; a scripted run of SSE and WebSocket clients of two consumers and an
// anonymous one, ended by SIGTERM (the drain flushes the last partial period), must be reported
// exactly: per consumer and channel, messages and bytes add up to what the clients received.

const SECRET = 'kong-usage-fleet-handoff-secret-0123456789';
const OPEN_BODY = 'event: open\ndata:\n\n';

const tokenFor = (origin: string, consumer: string | null): string => signHandoff({
  iat: Math.floor(Date.now() / 1000), nonce: randomBytes(16).toString('base64url'), origin,
  routeId: null, serviceId: null, pluginId: 'usage-plugin',
  consumer: consumer === null ? null : { id: consumer, username: null, customId: null },
}, SECRET);

interface Received { consumer: string | null; channel: string; messages: () => number; bytes: () => number }

test('the usage records of a scripted run, drained with SIGTERM, add up exactly to what the clients received', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  // SSE origin: /sse?ch=X holds a stream on X.
  const sse = await listenHttp((req, res) => {
    const ch = new URL(req.url ?? '/', 'http://x').searchParams.get('ch') ?? 'none';
    res.setHeader('Content-Type', 'application/grip-instruct');
    res.end(JSON.stringify({ hold: { mode: 'stream', channels: [{ name: ch }] }, response: { headers: { 'Content-Type': 'text/event-stream' }, body: OPEN_BODY } }));
  });
  t.teardown(() => sse.close());
  const wsOrigin = await startWsOrigin(echoHandler({ onOpen: (ws) => ws.subscribe('news') }));
  t.teardown(() => wsOrigin.close());

  const records: UsageRecord[] = [];
  const nc = await natsConnect({ servers: nats.url });
  t.teardown(() => nc.close());
  const sc = StringCodec();
  const sub = nc.subscribe('grip.usage');
  void (async () => { for await (const m of sub) records.push(JSON.parse(sc.decode(m.data)) as UsageRecord); })();
  await nc.flush();

  const args = ['--nats', nats.url, '--kong-secret', SECRET, '--kong-allowed-origins', `${sse.url},${wsOrigin.url}`, '--workers', '2', '--sig-key', TEST_SIG_KEY];
  const yaml = 'usage:\n  intervalSec: 1\n';
  const sides = await startFleet(t, args, { yaml });
  const [a, b] = sides as [SidecarProcess, SidecarProcess];

  const openedAt = Date.now();
  const streams: StreamReader[] = [];
  const sockets: WebSocket[] = [];
  const received: Received[] = [];
  const sseClient = async (side: SidecarProcess, consumer: string | null, channel: string): Promise<void> => {
    const s = await openStream(side.url(`/sse?ch=${channel}`), { 'Kong-Grip-Handoff': tokenFor(sse.url, consumer) });
    t.is(s.res.statusCode, 200);
    await s.waitFor(OPEN_BODY);
    streams.push(s);
    const published = () => s.text.slice(OPEN_BODY.length);
    received.push({ consumer, channel, messages: () => published().split('\n\n').length - 1, bytes: () => Buffer.byteLength(published()) });
  };
  await sseClient(a, 'alice', 'news');
  await sseClient(b, 'bob', 'sport');
  await sseClient(a, null, 'news');
  await sseClient(b, 'alice', 'sport');
  const ws = await connect(`${b.url('/chat')}`, { headers: { 'Kong-Grip-Handoff': tokenFor(wsOrigin.url, 'alice') } });
  sockets.push(ws);
  const wsLog = logOf(ws);
  received.push({ consumer: 'alice', channel: 'news', messages: () => wsLog.messages.length, bytes: () => wsLog.messages.reduce((n, m) => n + Buffer.byteLength(m), 0) });

  let n = 0;
  const publish = (channel: string) => {
    n++;
    const text = `${channel} item ${n} ${'x'.repeat(n % 7)}`;
    return request(`${(n % 2 === 0 ? a : b).controlUri}publish/`, {
      method: 'POST',
      body: JSON.stringify({ items: [{ channel, formats: { 'http-stream': { content: `data: ${text}\n\n` }, 'ws-message': { content: text } } }] }),
    });
  };
  // Until every client is subscribed on its worker: publish until each has received something.
  await waitUntil('every client receives', async () => {
    await publish('news');
    await publish('sport');
    return received.every((r) => r.messages() > 0);
  }, 20_000);
  // The scripted run: spread over a few usage periods.
  const startedAt = Date.now();
  for (let i = 0; i < 30; i++) {
    t.is((await publish(i % 3 === 0 ? 'sport' : 'news')).status, 200);
    if (i % 10 === 9) {
      // Let a usage period close (every worker with open connections reports each period).
      const before = records.length;
      await waitUntil('a usage period closes', () => records.length > before, 5000);
    }
  }
  // Everything published has arrived before the drain: the clients of a channel agree.
  await waitUntil('each client got every item of its channel', async () => {
    const counts = (channel: string) => received.filter((r) => r.channel === channel).map((r) => r.messages());
    return new Set(counts('news')).size === 1 && new Set(counts('sport')).size === 1;
  });
  // SIGTERM with every client still connected: the drain ends them and flushes the last period.
  const runSec = (Date.now() - startedAt) / 1000;
  await Promise.all(sides.map(async (side) => { side.signal('SIGTERM'); await side.exited(); }));
  const untilExitSec = (Date.now() - openedAt) / 1000;
  await nc.flush();

  const want = new Map<string, { messages: number; bytes: number }>();
  for (const r of received) {
    const key = `${r.consumer}/${r.channel}`;
    const w = want.get(key) ?? { messages: 0, bytes: 0 };
    w.messages += r.messages();
    w.bytes += r.bytes();
    want.set(key, w);
  }
  const got = new Map<string, { messages: number; bytes: number }>();
  const seconds = new Map<string | null, number>();
  const seen = new Set<string>();
  for (const r of records) {
    const id = `${r.sidecar} ${r.periodStart} ${r.consumer} ${r.channel}`;
    t.false(seen.has(id), `one record per sidecar, period, consumer and channel: ${id}`);
    seen.add(id);
    t.true(Date.parse(r.periodEnd) >= Date.parse(r.periodStart));
    if (r.channel === null) {
      t.is(r.messages + r.bytes, 0);
      t.true(r.connections >= 1);
      seconds.set(r.consumer, (seconds.get(r.consumer) ?? 0) + r.connectionSeconds);
      continue;
    }
    t.is(r.connections + r.connectionSeconds, 0);
    const key = `${r.consumer}/${r.channel}`;
    const g = got.get(key) ?? { messages: 0, bytes: 0 };
    g.messages += r.messages;
    g.bytes += r.bytes;
    got.set(key, g);
  }
  t.log(`records: ${records.length} from ${new Set(records.map((r) => r.sidecar)).size} workers; delivered: ${JSON.stringify(Object.fromEntries(want))}`);
  t.deepEqual(Object.fromEntries(got), Object.fromEntries(want));
  // alice held three connections, bob and the anonymous client one each, from before the run
  // until the drain.
  const within = (consumer: string | null, connections: number): void => {
    const s = seconds.get(consumer) ?? 0;
    t.true(s >= connections * runSec && s <= connections * untilExitSec, `${consumer}: ${s} s for ${connections} connection(s), run ${runSec} s, until exit ${untilExitSec} s`);
  };
  within('alice', 3);
  within('bob', 1);
  within(null, 1);
  t.true(sides.every((side) => side.lines.some((l) => l.msg === 'drained')), 'both drained');
});
