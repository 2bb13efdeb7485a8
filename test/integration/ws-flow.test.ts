import test from 'ava';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';
import { closed, connect, echoHandler, logOf, startWsOrigin, type WsHandler } from '../helpers/ws-origin.js';

// Flow rules of a session: one request in flight with batching, keep-alives both ways, message
// prefixes, pings, and the bounds (message size, slow consumers, pending bytes).

async function setup(t: import('ava').ExecutionContext, handler: WsHandler, config: Record<string, unknown> = {},
  raw?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean) {
  const origin = await startWsOrigin(handler, raw === undefined ? {} : { raw });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, ...config });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  return { origin, side };
}

/** An origin answering each POST (after OPEN) with the next scripted body. */
function scripted(openHeaders: Record<string, string>, openBody: string, later: (body: Buffer) => string = () => '') {
  let n = 0;
  return (_req: IncomingMessage, res: ServerResponse, body: Buffer): boolean => {
    res.writeHead(200, { 'Content-Type': 'application/websocket-events', ...(n === 0 ? openHeaders : {}) });
    res.end(n++ === 0 ? openBody : later(body));
    return true;
  };
}

test('one request in flight per connection: messages sent meanwhile go in one batch, in order', async (t) => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => { release = resolve; });
  const inFlight = new Map<string, number>();
  let maxInFlight = 0;
  const echo = echoHandler();
  const { origin, side } = await setup(t, async (ws, req, res) => {
    const cid = String(req.headers['connection-id']);
    inFlight.set(cid, (inFlight.get(cid) ?? 0) + 1);
    maxInFlight = Math.max(maxInFlight, inFlight.get(cid) ?? 0);
    if (ws._inEvents.some((e) => e.type === 'TEXT' && Buffer.from(e.content as Uint8Array).toString() === 'slow')) await held;
    inFlight.set(cid, (inFlight.get(cid) ?? 1) - 1);
    await echo(ws, req, res);
  }, { ws: { answerPings: true } });
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  client.send('slow');
  await origin.waitFor((r) => r.events.some((e) => e.content === 'slow'));
  const rest = Array.from({ length: 50 }, (_, i) => `m${i}`);
  for (const m of rest) client.send(m);
  // The sidecar answers pings itself here, in order with the frames before: a pong means it has
  // read every message above.
  client.ping();
  await once(client, 'pong');
  release();
  t.deepEqual(await log.waitForCount(51), ['slow', ...rest]);
  t.is(maxInFlight, 1);
  const batch = origin.seen[2];
  t.deepEqual(batch?.events.map((e) => e.content), rest, 'everything sent while a request was out went in one batch');
  client.close();
});

test('with little room for pending messages the sidecar stops reading the client, losing nothing', async (t) => {
  const { side } = await setup(t, echoHandler(), { ws: { maxPendingBytes: 100 } });
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  const sent = Array.from({ length: 300 }, (_, i) => `${i}`.padStart(40, '.'));
  for (const m of sent) client.send(m);
  t.deepEqual(await log.waitForCount(300), sent);
  client.close();
});

test('Keep-Alive-Interval makes the sidecar post an empty request when idle', async (t) => {
  const { origin, side } = await setup(t, (ws, _req, res) => {
    if (ws.isOpening()) ws.accept();
    res.setHeader('Keep-Alive-Interval', '1');
    res.end();
  }, { ws: { keepAliveMinSec: 1 } });
  const client = await connect(side.url('/chat'));
  const keepAlive = await origin.waitFor((r) => r.bodyLength === 0);
  t.deepEqual(keepAlive.events, []);
  t.is(keepAlive.headers['content-length'], '0');
  client.close();
});

test('an empty first reply with Keep-Alive-Interval defers the decision; OPEN is asked again', async (t) => {
  let opens = 0;
  const { origin, side } = await setup(t, () => undefined, { ws: { keepAliveMinSec: 1 } }, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/websocket-events', 'Keep-Alive-Interval': '1' });
    res.end(++opens === 1 ? '' : 'OPEN\r\n');
    return true;
  });
  const client = await connect(side.url('/chat'));
  t.deepEqual(origin.seen.map((r) => r.events), [[{ type: 'OPEN' }], [{ type: 'OPEN' }]]);
  client.close();
});

test('an empty first reply without keep-alives refuses the handshake', async (t) => {
  const { side } = await setup(t, () => undefined, {}, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/websocket-events' });
    res.end();
    return true;
  });
  const err = await t.throwsAsync(connect(side.url('/chat'))) as Error & { status: number };
  t.is(err.status, 502);
});

test('with GRIP on, unprefixed origin messages are dropped and the prefix is stripped', async (t) => {
  const { side } = await setup(t, () => undefined, {}, scripted(
    { 'Sec-WebSocket-Extensions': 'grip' },
    'OPEN\r\nTEXT c\r\nno prefix!!!\r\nTEXT 5\r\nm:one\r\nBINARY 4\r\nm:\x01\x02\r\nBINARY 2\r\n\x01\x02\r\n',
  ));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  client.send('x');
  await log.waitForCount(2);
  t.deepEqual(log.messages, ['one', 'bin:0102']);
  client.close();
});

test('the grip extension may set another message prefix, including an empty one', async (t) => {
  const { side } = await setup(t, () => undefined, {}, scripted(
    { 'Sec-WebSocket-Extensions': 'grip; message-prefix=""' },
    'OPEN\r\nTEXT 7\r\n{"a":1}\r\nTEXT 24\r\nc:{"type":"subscribe","channel":"q"}\r\n',
  ));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  t.deepEqual(await log.waitForCount(1), ['{"a":1}']);
  await waitForSubscribers(side.sidecar.hub, 'q', 1);
  client.close();
});

test('with GRIP off every origin message passes through and c: is not a control message', async (t) => {
  const { side } = await setup(t, () => undefined, {}, scripted(
    {}, 'OPEN\r\nTEXT 24\r\nc:{"type":"subscribe","channel":"q"}\r\nTEXT 5\r\nplain\r\n',
  ));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  t.deepEqual(await log.waitForCount(2), ['c:{"type":"subscribe","channel":"q"}', 'plain']);
  t.is(side.sidecar.hub.subscriberCount('q'), 0);
  client.close();
});

test('client pings go to the origin as PING, and the origin\'s PONG goes back to the client', async (t) => {
  const { origin, side } = await setup(t, () => undefined, {}, scripted(
    { 'Sec-WebSocket-Extensions': 'grip' }, 'OPEN\r\n',
    (body) => (body.includes('PING') ? 'PONG 4\r\nabcd\r\n' : ''),
  ));
  const client = await connect(side.url('/chat'));
  client.ping(Buffer.from('abcd'));
  const [pong] = await once(client, 'pong') as [Buffer];
  t.is(pong.toString(), 'abcd');
  t.deepEqual(origin.seen[1]?.events, [{ type: 'PING', content: 'abcd' }]);
  client.close();
});

test('with ws.answerPings the sidecar answers pings and the origin is not asked', async (t) => {
  const { origin, side } = await setup(t, echoHandler(), { ws: { answerPings: true } });
  const client = await connect(side.url('/chat'));
  client.ping(Buffer.from('hi'));
  const [pong] = await once(client, 'pong') as [Buffer];
  t.is(pong.toString(), 'hi');
  t.is(origin.seen.length, 1);
  client.close();
});

test('origin PING reaches the client as a ping', async (t) => {
  const { side } = await setup(t, () => undefined, {}, scripted({ 'Sec-WebSocket-Extensions': 'grip' }, 'OPEN\r\n', () => 'PING 2\r\nhb\r\n'));
  const client = await connect(side.url('/chat'));
  const ping = once(client, 'ping') as Promise<[Buffer]>;
  client.send('x');
  t.is((await ping)[0].toString(), 'hb');
  client.close();
});

test('keep-alive control messages send their content to an idle client', async (t) => {
  const { side } = await setup(t, echoHandler({
    onOpen: (ws) => ws.sendControl(JSON.stringify({ type: 'keep-alive', content: 'KA', timeout: 1 })),
  }));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  t.deepEqual(await log.waitForCount(2), ['KA', 'KA']);
  client.close();
});

test('send-delayed sends once after the timeout, and flush-delayed sends it at once', async (t) => {
  const { side } = await setup(t, echoHandler({
    onOpen: (ws) => ws.sendControl(JSON.stringify({ type: 'send-delayed', content: 'later', timeout: 1 })),
    commands: {
      '!delay': (ws) => ws.sendControl(JSON.stringify({ type: 'send-delayed', content: 'flushed', timeout: 600 })),
      '!flush': (ws) => ws.sendControl(JSON.stringify({ type: 'flush-delayed' })),
    },
  }));
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  t.deepEqual(await log.waitForCount(1), ['later']);
  client.send('!delay');
  client.send('!flush');
  t.deepEqual(await log.waitForCount(2), ['later', 'flushed']);
  client.close();
});

test('a client message over ws.maxMessageBytes closes the client with 1009; the origin sees DISCONNECT', async (t) => {
  const { origin, side } = await setup(t, echoHandler(), { ws: { maxMessageBytes: 1000 } });
  const client = await connect(side.url('/chat'));
  const done = closed(client);
  client.send('x'.repeat(1001));
  t.is((await done).code, 1009);
  await origin.waitForEvent('DISCONNECT');
  t.false(origin.seen.some((r) => r.events.some((e) => e.type === 'TEXT')));
});

test('a client that does not read is dropped as a slow consumer and counted', async (t) => {
  const { side } = await setup(t, echoHandler({ onOpen: (ws) => ws.subscribe('firehose') }),
    { limits: { maxQueueBytes: 256 * 1024, maxPublishBodyBytes: 2_000_000 } });
  const client = await connect(side.url('/chat'));
  const other = await connect(side.url('/chat'));
  const otherLog = logOf(other);
  await waitForSubscribers(side.sidecar.hub, 'firehose', 2);
  client.pause();
  const done = closed(client);
  const big = 'x'.repeat(512 * 1024);
  const metrics = side.sidecar.metrics;
  const slowCount = async () => (await metrics.holdsClosed.get()).values.find((v) => v.labels['reason'] === 'slow_consumer')?.value ?? 0;
  let published = 0;
  while ((await slowCount()) < 1) {
    const res = await request(`${side.controlUri}publish/`, {
      method: 'POST', body: JSON.stringify({ items: [{ channel: 'firehose', formats: { 'ws-message': { content: big } } }] }),
    });
    t.is(res.status, 200);
    published++;
  }
  t.is(await slowCount(), 1, 'only the client that stopped reading was dropped');
  t.is(side.sidecar.hub.subscriberCount('firehose'), 1);
  client.resume();
  t.is((await done).code, 1006);
  await otherLog.waitForCount(published);
  other.close();
});
