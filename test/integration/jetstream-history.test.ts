import test from 'ava';
import { startFeedOrigin } from '../helpers/feed-origin.js';
import { openStream, request, type StreamReader } from '../helpers/http.js';
import { NatsServer } from '../helpers/nats-server.js';
import {
  busStatus, JetStreamPublisher, numberedItem, range, sseNumbers, tally, whenLive,
} from '../helpers/reliability.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { connect as connectWs, logOf } from '../helpers/ws-origin.js';
import type WebSocket from 'ws';

// History in JetStream (nats.jetstream): a sidecar that loses NATS resumes every channel from
// the last stored item it delivered, so its held clients miss nothing and get nothing twice;
// a hold whose prev-id is behind is caught up from the stream without asking the origin.
// Each fault test logs its tally: published, delivered, duplicated, lost (per client).

interface Clients {
  streams: StreamReader[];
  sockets: WebSocket[];
}

async function holdClients(side: TestSidecar, sse: number): Promise<Clients> {
  const streams = await Promise.all(range(1, sse).map(() => openStream(side.url('/sse?ch=feed'))));
  const sockets = [await connectWs(side.url('/ws'))];
  await waitForSubscribers(side.sidecar.hub, 'feed', sse + sockets.length);
  await whenLive(side.sidecar.bus, 'feed');
  return { streams, sockets };
}

async function waitForAll(clients: Clients, n: number): Promise<void> {
  await Promise.all([
    ...clients.streams.map((s) => s.waitFor(`data: ${n}\n`)),
    ...clients.sockets.map(async (ws) => {
      const log = logOf(ws);
      while (!log.messages.includes(String(n))) await log.waitForCount(log.messages.length + 1);
    }),
  ]);
}

function tallies(clients: Clients, published: number[]) {
  return [
    ...clients.streams.map((s) => tally(published, sseNumbers(s.text))),
    ...clients.sockets.map((ws) => tally(published, logOf(ws).messages.map(Number))),
  ];
}

function summary(fault: string, results: ReturnType<typeof tallies>): string {
  const sum = (key: 'delivered' | 'duplicated' | 'lost'): number => results.reduce((n, r) => n + r[key], 0);
  return `${fault}: ${results.length} clients, ${results[0]?.published} published, ${sum('delivered')} delivered, `
    + `${sum('duplicated')} duplicated, ${sum('lost')} lost, in order: ${results.every((r) => r.inOrder)}`;
}

function closeAll(clients: Clients): void {
  for (const s of clients.streams) s.close();
  for (const ws of clients.sockets) ws.terminate();
}

test('a sidecar cut off from NATS while 100 items are stored gives every held client all of them, in order, once', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  // Only the sidecar's link is cut: the server keeps storing what the publisher sends.
  const link = await TcpProxy.start(nats.port);
  t.teardown(() => link.close());
  const origin = await startFeedOrigin();
  t.teardown(() => origin.close());
  const side = await startTestSidecar({
    origin: origin.url, nats: { servers: link.url, reconnectWaitMs: 100, jetstream: { stream: 'CUT', storage: 'memory' } },
  });
  t.teardown(() => side.close());
  const publisher = await JetStreamPublisher.connect(nats.url);
  t.teardown(() => publisher.close());
  const clients = await holdClients(side, 3);
  t.teardown(() => closeAll(clients));

  await publisher.publish('feed', [numberedItem(1)]);
  await waitForAll(clients, 1);
  link.cut();
  await busStatus(side.sidecar.bus, 'not-connected');
  await publisher.publish('feed', range(2, 101).map((n) => numberedItem(n)));
  t.not(side.sidecar.bus.status().type, 'connected', 'all 100 were stored while the sidecar was cut off');
  const resumed = new Promise<number>((resolve) => side.sidecar.bus.listen((e) => { if (e.type === 'channel-resumed') resolve(e.items); }));
  link.restore();
  await waitForAll(clients, 101);
  await publisher.publish('feed', [numberedItem(102)]);
  await waitForAll(clients, 102);

  const published = range(1, 102);
  for (const result of tallies(clients, published)) {
    t.deepEqual(result, { published: 102, delivered: 102, duplicated: 0, lost: 0, inOrder: true });
  }
  t.log(summary('link cut, 100 stored meanwhile', tallies(clients, published)));
  // The read goes on to the stream's end (it may take 102 too), then reports.
  t.true((await resumed) >= 100);
  const metrics = await side.sidecar.metrics.registry.metrics();
  t.regex(metrics, /kong_grip_history_items_total\{use="resume"\} 10[01]/);
  t.regex(metrics, /kong_grip_history_resumes_total\{cause="reconnect"\} 1/);
});

test('nats-server killed and restarted on its store while the sidecar waits to reconnect: nothing published meanwhile is lost or repeated', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startFeedOrigin();
  t.teardown(() => origin.close());
  // The sidecar retries every 2 s: long enough for the server to restart and take 100 items first.
  const side = await startTestSidecar({
    origin: origin.url, nats: { servers: nats.url, reconnectWaitMs: 2000, jetstream: { stream: 'RESTART' } },
  });
  t.teardown(() => side.close());
  const clients = await holdClients(side, 2);
  t.teardown(() => closeAll(clients));
  const first = await JetStreamPublisher.connect(nats.url);
  await first.publish('feed', [numberedItem(1)]);
  await first.close();
  await waitForAll(clients, 1);

  await nats.stop('SIGKILL');
  await busStatus(side.sidecar.bus, 'not-connected');
  await nats.restart();
  const publisher = await JetStreamPublisher.connect(nats.url);
  t.teardown(() => publisher.close());
  await publishWhenStreamIsBack(publisher, range(2, 101));
  t.not(side.sidecar.bus.status().type, 'connected', 'all 100 were stored before the sidecar was back');
  await waitForAll(clients, 101);
  await publisher.publish('feed', [numberedItem(102)]);
  await waitForAll(clients, 102);

  const published = range(1, 102);
  for (const result of tallies(clients, published)) {
    t.deepEqual(result, { published: 102, delivered: 102, duplicated: 0, lost: 0, inOrder: true });
  }
  t.log(summary('server killed and restarted, 100 stored before the sidecar reconnected', tallies(clients, published)));
});

/** Right after a restart JetStream may still be loading its streams: the first publish is retried. */
async function publishWhenStreamIsBack(publisher: JetStreamPublisher, numbers: number[]): Promise<void> {
  const [head, ...rest] = numbers;
  for (let attempt = 0; ; attempt++) {
    try {
      await publisher.publish('feed', [numberedItem(head!)]);
      break;
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await publisher.publish('feed', rest.map((n) => numberedItem(n)));
}

test('a long-poll whose prev-id is behind its channel is answered from history, without asking the origin again', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startGripOrigin({
    '/poll': (req, res) => {
      const after = new URL(req.url ?? '/', 'http://x').searchParams.get('after') ?? '0';
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', `lp; prev-id=${after}`);
      res.end('nothing new\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await startTestSidecar({
    origin: origin.url, sigKey: TEST_SIG_KEY, nats: { servers: nats.url, jetstream: { stream: 'POLL', storage: 'memory' } },
  });
  t.teardown(() => side.close());
  await busStatus(side.sidecar.bus, 'connected'); // the sidecar has set the stream up
  const publisher = await JetStreamPublisher.connect(nats.url);
  t.teardown(() => publisher.close());
  const answer = (n: number) => ({ id: String(n), 'prev-id': String(n - 1), formats: { 'http-response': { body: `item ${n}\n` } } });
  await publisher.publish('lp', [answer(1), answer(2), answer(3)]);

  const current = request(side.url('/poll?after=3'));
  await waitForSubscribers(side.sidecar.hub, 'lp', 1);
  await whenLive(side.sidecar.bus, 'lp');
  await publisher.publish('lp', [answer(4)]);
  t.is((await current).body, 'item 4\n');
  t.is(side.sidecar.hub.position('lp'), '4');

  const behind = await request(side.url('/poll?after=2'));
  t.is(behind.body, 'item 3\n', 'the first item after its prev-id, from the stream');
  t.is(origin.seen.length, 2, 'each long-poll asked the origin once');
  t.regex(await side.sidecar.metrics.registry.metrics(), /kong_grip_catch_ups_total\{result="history"\} 2/);
});

test('a hold a little behind a channel this sidecar delivers is caught up from the items kept in memory, with no stream read', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startGripOrigin({
    '/stream': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'kept');
      res.end('');
    },
    '/poll': (req, res) => {
      const after = new URL(req.url ?? '/', 'http://x').searchParams.get('after') ?? '0';
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', `kept; prev-id=${after}`);
      res.end('nothing new\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await startTestSidecar({
    origin: origin.url, sigKey: TEST_SIG_KEY, nats: { servers: nats.url, jetstream: { stream: 'KEPT', storage: 'memory' } },
  });
  t.teardown(() => side.close());
  await busStatus(side.sidecar.bus, 'connected');
  const stream = await openStream(side.url('/stream'));
  t.teardown(() => stream.close());
  await waitForSubscribers(side.sidecar.hub, 'kept', 1);
  await whenLive(side.sidecar.bus, 'kept');
  const publisher = await JetStreamPublisher.connect(nats.url);
  t.teardown(() => publisher.close());
  const item = (n: number) => ({
    id: String(n), 'prev-id': String(n - 1),
    formats: { 'http-stream': { content: `data: ${n}\n\n` }, 'http-response': { body: `item ${n}\n` } },
  });
  await publisher.publish('kept', [item(1), item(2), item(3), item(4), item(5)]);
  await stream.waitFor('data: 5\n');

  const behind = await request(side.url('/poll?after=2'));
  t.is(behind.body, 'item 3\n');
  const metrics = await side.sidecar.metrics.registry.metrics();
  t.regex(metrics, /kong_grip_catch_ups_total\{result="history"\} 1/);
  t.regex(metrics, /kong_grip_history_kept_items_total 3\b/, 'items 3, 4 and 5 came from memory');
});
