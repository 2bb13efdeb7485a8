import test from 'ava';
import { Publisher, WebSocketMessageFormat } from '@fanoutio/grip';
import type WebSocket from 'ws';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';
import { closed, connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// Subscriptions made with control messages and ws-message publishes (spec 4.1, 7.3, 7.4),
// through the same hub and bus as HTTP holds.

async function setup(t: import('ava').ExecutionContext, handler = echoHandler({ onOpen: (ws) => ws.subscribe('room') })) {
  const origin = await startWsOrigin(handler);
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const publisher = new Publisher({ control_uri: side.controlUri });
  const publishRaw = async (items: unknown[]): Promise<void> => {
    const res = await request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items }) });
    if (res.status !== 200) throw new Error(`publish failed: ${res.status} ${res.body}`);
  };
  return { origin, side, publisher, publishRaw };
}

test('a client subscribed by a control message receives what is published to the channel', async (t) => {
  const { side, publisher } = await setup(t);
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  await publisher.publishFormats('room', new WebSocketMessageFormat('hello room'));
  await publisher.publishFormats('elsewhere', new WebSocketMessageFormat('not for you'));
  await publisher.publishFormats('room', new WebSocketMessageFormat(new TextEncoder().encode('\u0000bin')));
  t.deepEqual(await log.waitForCount(2), ['hello room', 'bin:0062696e']);
  client.close();
  await waitForSubscribers(side.sidecar.hub, 'room', 0);
  const sent = async () => (await side.sidecar.metrics.messagesSent.get()).values.find((v) => v.labels['kind'] === 'ws')?.value;
  while ((await sent()) === undefined) await new Promise((resolve) => setImmediate(resolve));
  t.is(await sent(), 2, 'kong_grip_messages_sent_total{kind="ws"} counts deliveries');
});

test('subscribe and unsubscribe work at any time through control messages', async (t) => {
  const { side, publishRaw } = await setup(t, echoHandler({
    onOpen: () => undefined,
    commands: {
      '!sub': (ws) => { ws.subscribe('news'); ws.send('subscribed'); },
      '!unsub': (ws) => { ws.unsubscribe('news'); ws.send('unsubscribed'); },
    },
  }));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  const item = (content: string) => ({ channel: 'news', formats: { 'ws-message': { content } } });
  client.send('!sub');
  await log.waitForCount(1);
  await publishRaw([item('one')]);
  await log.waitForCount(2);
  client.send('!unsub');
  await log.waitForCount(3);
  await publishRaw([item('two')]);
  client.send('ping-through-origin');
  t.deepEqual(await log.waitForCount(4), ['subscribed', 'one', 'unsubscribed', 'ping-through-origin']);
  client.close();
});

test('a published close closes the client with its code and reason, and the origin gets CLOSE', async (t) => {
  const { origin, side, publishRaw } = await setup(t);
  const client = await connect(side.url('/chat'));
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  const done = closed(client);
  await publishRaw([{ channel: 'room', formats: { 'ws-message': { action: 'close', code: 4001, reason: 'pubclose' } } }]);
  t.deepEqual(await done, { code: 4001, reason: 'pubclose' });
  const req = await origin.waitForEvent('CLOSE');
  t.deepEqual(req.events, [{ type: 'CLOSE' }]);
  t.is(side.sidecar.hub.subscriberCount('room'), 0);
});

test('js-grip\'s close format (code only) closes the client with that code', async (t) => {
  const { side, publisher } = await setup(t);
  const client = await connect(side.url('/chat'));
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  const done = closed(client);
  await publisher.publishFormats('room', new WebSocketMessageFormat(null, true, 4002));
  t.deepEqual(await done, { code: 4002, reason: '' });
});

test('published messages and origin replies reach the client in the order they happen', async (t) => {
  const { side, publishRaw } = await setup(t);
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  await publishRaw([1, 2, 3].map((n) => ({ channel: 'room', formats: { 'ws-message': { content: `p${n}` } } })));
  client.send('echo');
  await log.waitForCount(4);
  await publishRaw([{ channel: 'room', formats: { 'ws-message': { content: 'p4' } } }]);
  t.deepEqual(await log.waitForCount(5), ['p1', 'p2', 'p3', 'echo', 'p4']);
  client.close();
});

test('a published refresh makes the sidecar send the origin an empty request, and its reply reaches the client', async (t) => {
  let refreshes = 0;
  const { origin, side, publishRaw } = await setup(t, (ws, _req, res) => {
    if (ws.isOpening()) {
      ws.accept();
      ws.subscribe('room');
    } else if (!ws.canRecv()) {
      ws.send(`refreshed ${++refreshes}`);
    }
    res.end();
  });
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  await publishRaw([{ channel: 'room', formats: { 'ws-message': { action: 'refresh' } } }]);
  t.deepEqual(await log.waitForCount(1), ['refreshed 1']);
  t.is(origin.seen[1]?.bodyLength, 0);
  client.close();
});

test('a detached connection keeps its subscriptions; its messages no longer reach the origin', async (t) => {
  const { origin, side, publisher } = await setup(t, echoHandler({
    onOpen: (ws) => ws.subscribe('room'),
    commands: { '!detach': (ws) => { ws.send('detaching'); ws.detach(); } },
  }));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  client.send('!detach');
  await log.waitForCount(1);
  const closeReq = await origin.waitForEvent('CLOSE');
  t.deepEqual(closeReq.events, [{ type: 'CLOSE' }], 'detach closes the origin side with CLOSE');
  const before = origin.seen.length;
  client.send('dropped');
  await publisher.publishFormats('room', new WebSocketMessageFormat('after detach'));
  t.deepEqual(await log.waitForCount(2), ['detaching', 'after detach']);
  client.close();
  await waitForSubscribers(side.sidecar.hub, 'room', 0);
  t.is(origin.seen.length, before, 'nothing more was posted after the detach');
});

test('a control message with too many filters closes the client with 1011', async (t) => {
  const { side } = await setup(t, echoHandler({
    onOpen: (ws) => ws.sendControl(JSON.stringify({ type: 'subscribe', channel: 'c', filters: ['a', 'b', 'c', 'd', 'e', 'f'] })),
  }));
  const client = await connect(side.url('/chat'));
  t.deepEqual(await closed(client), { code: 1011, reason: "too many filters for channel 'c'" });
});

test('subscriptions beyond maxChannelsPerConnection are ignored', async (t) => {
  const origin = await startWsOrigin(echoHandler({ onOpen: (ws) => { for (const c of ['a', 'b', 'c']) ws.subscribe(c); } }));
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, limits: { maxChannelsPerConnection: 2 } });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const client = await connect(side.url('/chat'));
  await waitForSubscribers(side.sidecar.hub, 'b', 1);
  t.is(side.sidecar.hub.subscriberCount('a'), 1);
  t.is(side.sidecar.hub.subscriberCount('c'), 0);
  client.close();
});

test('1,000 clients on one channel each receive 20 published messages in order', async (t) => {
  t.timeout(120_000);
  const { side, publisher } = await setup(t);
  const clients: WebSocket[] = [];
  const logs: Array<ReturnType<typeof logOf>> = [];
  for (let batch = 0; batch < 10; batch++) {
    const connected = await Promise.all(Array.from({ length: 100 }, () => connect(side.url('/chat'))));
    for (const c of connected) {
      clients.push(c);
      logs.push(logOf(c));
    }
  }
  await waitForSubscribers(side.sidecar.hub, 'room', 1000);
  const expected = Array.from({ length: 20 }, (_, i) => `message ${i}`);
  for (const m of expected) await publisher.publishFormats('room', new WebSocketMessageFormat(m));
  await Promise.all(logs.map((l) => l.waitForCount(20)));
  for (const l of logs) t.deepEqual(l.messages, expected);
  for (const c of clients) c.terminate();
  await waitForSubscribers(side.sidecar.hub, 'room', 0);
});
