import test from 'ava';
import net from 'node:net';
import { WebSocketEvent } from '@fanoutio/grip';
import WebSocket from 'ws';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { closed, connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// WebSocket-over-HTTP (spec 7.1) end to end: a ws client, the sidecar, and an origin written
// with @fanoutio/serve-grip's WebSocketContext.

async function setup(t: import('ava').ExecutionContext, handler = echoHandler(), ws: Record<string, unknown> = {}) {
  const origin = await startWsOrigin(handler);
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, ws });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  return { origin, side };
}

test('echoes a message through the origin, which sees OPEN then TEXT on one connection id', async (t) => {
  const { origin, side } = await setup(t);
  const client = await connect(side.url('/chat?room=1'));
  const log = logOf(client);
  client.send('hello');
  t.deepEqual(await log.waitForCount(1), ['hello']);
  client.close();

  const open = origin.seen[0];
  const text = await origin.waitFor((r) => r.events.some((e) => e.type === 'TEXT'));
  t.deepEqual(open?.events, [{ type: 'OPEN' }]);
  t.deepEqual(text.events, [{ type: 'TEXT', content: 'hello' }]);
  t.is(open?.url, '/chat?room=1');
  t.truthy(open?.headers['connection-id']);
  t.is(text.headers['connection-id'], open?.headers['connection-id']);
  t.regex(String(open?.headers['connection-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.true(open?.isSigned, 'every POST carries a valid Grip-Sig');
  t.true(text.isSigned);
});

test('each POST carries the protocol headers and replays the handshake headers, minus client Meta-*', async (t) => {
  const { origin, side } = await setup(t);
  const client = await connect(side.url('/chat'), {
    headers: { Cookie: 's=1', 'Meta-User': 'mallory', 'X-Custom': 'yes', 'Grip-Sig': 'forged' },
  });
  const log = logOf(client);
  client.send('x');
  await log.waitForCount(1);
  client.close();
  for (const r of origin.seen.slice(0, 2)) {
    t.is(r.headers['content-type'], 'application/websocket-events');
    t.is(r.headers['accept'], 'application/websocket-events');
    t.is(r.headers['sec-websocket-extensions'], 'grip');
    t.is(r.headers['cookie'], 's=1');
    t.is(r.headers['x-custom'], 'yes');
    t.truthy(r.headers['sec-websocket-key']);
    t.is(r.headers['sec-websocket-version'], '13');
    t.is(r.headers['meta-user'], undefined, 'client Meta-* never reaches the origin');
    t.is(r.headers['upgrade'], undefined);
    t.is(r.headers['content-length'], String(r.bodyLength));
  }
});

test('Set-Meta-* from the origin comes back as Meta-* on later requests, and an empty value deletes it', async (t) => {
  const { origin, side } = await setup(t, echoHandler({
    onOpen: (ws) => { ws.meta['user'] = 'alice'; },
    commands: { '!forget': (ws) => { delete ws.meta['user']; ws.send('forgotten'); } },
  }));
  const client = await connect(side.url('/chat'), { headers: { 'Meta-User': 'mallory' } });
  const log = logOf(client);
  client.send('one');
  await log.waitForCount(1);
  client.send('!forget');
  await log.waitForCount(2);
  client.send('two');
  await log.waitForCount(3);
  client.close();
  const [, one, forget, two] = origin.seen;
  t.is(one?.headers['meta-user'], 'alice');
  t.is(forget?.headers['meta-user'], 'alice');
  t.is(two?.headers['meta-user'], undefined);
});

test('the 101 carries the origin headers, and the origin may pick the subprotocol', async (t) => {
  const { side } = await setup(t, (ws, _req, res) => {
    ws.accept();
    res.setHeader('X-Origin', 'yes');
    res.setHeader('Sec-WebSocket-Protocol', 'chat.v2');
    res.end();
  });
  const client = new WebSocket(side.url('/chat').replace('http', 'ws'), ['chat.v1', 'chat.v2']);
  let headers: Record<string, string | string[] | undefined> = {};
  client.once('upgrade', (res) => { headers = res.headers; });
  await new Promise((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  t.is(client.protocol, 'chat.v2');
  t.is(headers['x-origin'], 'yes');
  t.is(headers['content-type'], undefined);
  t.is(headers['sec-websocket-extensions'], undefined, 'the grip extension is between origin and sidecar only');
  client.close();
});

test('without a subprotocol from the origin none is selected', async (t) => {
  const { side } = await setup(t);
  const client = await connect(side.url('/chat'), { protocols: ['chat.v1'] }).catch((err: Error) => err);
  // ws clients fail a handshake that offered protocols and got none back.
  t.true(client instanceof Error);
  t.regex((client as Error).message, /Server sent no subprotocol/);
});

test('a clean client close reaches the origin as CLOSE with the code and reason', async (t) => {
  const { origin, side } = await setup(t);
  const client = await connect(side.url('/chat'));
  client.close(4321, 'see you');
  const req = await origin.waitForEvent('CLOSE');
  t.deepEqual(req.events, [{ type: 'CLOSE', code: 4321, content: 'see you' }]);
});

test('an abrupt client disconnect reaches the origin as DISCONNECT', async (t) => {
  const { origin, side } = await setup(t);
  const client = await connect(side.url('/chat'));
  client.terminate();
  const req = await origin.waitForEvent('DISCONNECT');
  t.deepEqual(req.events, [{ type: 'DISCONNECT' }]);
});

test('a CLOSE from the origin closes the client with that code and reason', async (t) => {
  const { side } = await setup(t, echoHandler({
    commands: {
      // js-grip's close() carries a code only; queue a CLOSE event with a reason by hand.
      '!bye': (ws) => { ws.outEvents.push(new WebSocketEvent('CLOSE', new Uint8Array(Buffer.from('\x0f\xa0bye', 'latin1')))); },
      '!close': (ws) => ws.close(4001),
    },
  }));
  let client = await connect(side.url('/chat'));
  let done = closed(client);
  client.send('!bye');
  t.deepEqual(await done, { code: 4000, reason: 'bye' });

  client = await connect(side.url('/chat'));
  done = closed(client);
  client.send('!close');
  t.deepEqual(await done, { code: 4001, reason: '' });
});

test('the client\'s reply to an origin CLOSE goes back to the origin as CLOSE', async (t) => {
  const { origin, side } = await setup(t, echoHandler({ commands: { '!close': (ws) => ws.close(4001) } }));
  const client = await connect(side.url('/chat'));
  client.send('!close');
  await closed(client);
  const reply = await origin.waitForEvent('CLOSE');
  t.deepEqual(reply.events, [{ type: 'CLOSE', code: 4001, content: '' }]);
});

test('js-grip\'s close() without a code (code 0) closes the client without a status', async (t) => {
  const { side } = await setup(t, echoHandler({ commands: { '!close': (ws) => ws.close() } }));
  const client = await connect(side.url('/chat'));
  const done = closed(client);
  client.send('!close');
  t.deepEqual(await done, { code: 1005, reason: '' });
});

test('the origin refusing OPEN refuses the handshake with its status, headers and body', async (t) => {
  const { side } = await setup(t, (_ws, _req, res) => {
    res.writeHead(403, { 'Content-Type': 'text/plain', 'X-Why': 'no-token' });
    res.end('go away\n');
  });
  const err = await t.throwsAsync(connect(side.url('/chat'))) as Error & { status: number; body: string; headers: Record<string, string> };
  t.is(err.status, 403);
  t.is(err.body, 'go away\n');
  t.is(err.headers['x-why'], 'no-token');
});

test('an origin reply to OPEN without OPEN refuses the handshake with 502', async (t) => {
  const { side } = await setup(t, (ws, _req, res) => {
    ws.send('not accepted');
    res.end();
  });
  const err = await t.throwsAsync(connect(side.url('/chat'))) as Error & { status: number; body: string };
  t.is(err.status, 502);
  t.is(err.body, 'Error while proxying to origin.\n');
});

test('an unreachable origin refuses the handshake with 502', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const side = await startTestSidecar({ origin: `http://127.0.0.1:${port}`, sigKey: TEST_SIG_KEY });
  t.teardown(() => side.close());
  const err = await t.throwsAsync(connect(side.url('/chat'))) as Error & { status: number };
  t.is(err.status, 502);
});

test('an invalid handshake is refused with 400 before the origin is asked', async (t) => {
  const { origin, side } = await setup(t);
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(side.sidecar.clientPort, '127.0.0.1', () => {
      socket.write('GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    let data = '';
    socket.on('data', (c: Buffer) => { data += c.toString(); });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
  t.regex(reply, /^HTTP\/1.1 400 Bad Request\r\n/);
  t.regex(reply, /Sec-WebSocket-Key must be 16 bytes in base64/);
  t.is(origin.seen.length, 0);
});

test('a client that leaves while the origin decides on OPEN is reported to the origin with DISCONNECT', async (t) => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => { release = resolve; });
  const accept = echoHandler();
  const { origin, side } = await setup(t, async (ws, req, res) => {
    if (ws.isOpening()) await held;
    await accept(ws, req, res);
  });
  const client = new WebSocket(side.url('/chat').replace('http', 'ws'));
  client.on('error', () => undefined);
  await origin.waitForEvent('OPEN');
  client.terminate();
  const metric = side.sidecar.metrics.holdsClosed;
  while (((await metric.get()).values.find((v) => v.labels['reason'] === 'client_gone')?.value ?? 0) < 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  release();
  const bye = await origin.waitForEvent('DISCONNECT');
  t.deepEqual(bye.events, [{ type: 'DISCONNECT' }]);
  t.is(bye.headers['connection-id'], origin.seen[0]?.headers['connection-id']);
});
