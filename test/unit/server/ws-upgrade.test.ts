import { EventEmitter, once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import WebSocket from 'ws';
import { MemoryBus } from '../../../sidecar/src/bus/memory-bus.js';
import { DEFAULT_LIMITS, DEFAULT_WS } from '../../../sidecar/src/config.js';
import { forwardRequestHeaders } from '../../../sidecar/src/grip/headers.js';
import { encodeWsEvents } from '../../../sidecar/src/grip/ws-events.js';
import { systemClock, type Clock } from '../../../sidecar/src/holds/clock.js';
import { KeepAliveWheel } from '../../../sidecar/src/holds/keep-alive-wheel.js';
import { Hub } from '../../../sidecar/src/hub/hub.js';
import { createLogger } from '../../../sidecar/src/log.js';
import { createMetrics, type Metrics } from '../../../sidecar/src/metrics.js';
import type { PostWsEvents, WsOriginOutcome } from '../../../sidecar/src/origin/ws-origin.js';
import { WsUpgradeHandler } from '../../../sidecar/src/server/ws-upgrade.js';
import { within } from '../../helpers/buses.js';
import { FakeClock } from '../holds/fake-clock.js';
import { metricValue } from '../holds/http-fakes.js';
import { NO_GONE_LINKS } from '../../../sidecar/src/origin/gone-link.js';

// WsUpgradeHandler's own job, on real sockets on 127.0.0.1: a tiny HTTP server whose 'upgrade'
// starts a session, `ws` clients (or a raw socket that never answers), and an in-process origin
// that accepts OPEN (refuses it under /refuse). What a session does with its client and origin
// is tested in test/unit/holds/ws-session.test.ts.

const OPEN_REPLY: WsOriginOutcome = {
  type: 'reply', status: 200, reason: 'OK',
  headers: [['Content-Type', 'application/websocket-events'], ['Sec-WebSocket-Extensions', 'grip']],
  body: encodeWsEvents([{ type: 'OPEN' }]),
};
const EMPTY_REPLY: WsOriginOutcome = { ...OPEN_REPLY, body: Buffer.alloc(0) };
const REFUSAL: WsOriginOutcome = { type: 'reply', status: 403, reason: 'Forbidden', headers: [], body: Buffer.from('no') };

const post: PostWsEvents = async (url, _headers, body) => {
  if (body.subarray(0, 4).toString() !== 'OPEN') return EMPTY_REPLY;
  return url.pathname === '/refuse' ? REFUSAL : OPEN_REPLY;
};

/** 1012 Service Restart: what a draining sidecar closes its clients with. */
const SERVICE_RESTART = 1012;

/** A handler on a real hub and keep-alive wheel, with the origin above. */
function newHandler(t: ExecutionContext, clock: Clock, onSessionEnded: () => void): { handler: WsUpgradeHandler; metrics: Metrics } {
  const metrics = createMetrics();
  const keepAlives = new KeepAliveWheel();
  t.teardown(() => keepAlives.close());
  const handler = new WsUpgradeHandler({
    hub: new Hub(new MemoryBus(), metrics), post, metrics, log: createLogger('silent'),
    limits: DEFAULT_LIMITS, ws: DEFAULT_WS, keepAlives, clock, gone: NO_GONE_LINKS, onSessionEnded,
  });
  return { handler, metrics };
}

/** A server on 127.0.0.1 whose upgrades start sessions of a new handler, and `ws` clients for it. */
async function setup(t: ExecutionContext, clock: Clock = systemClock) {
  const ends = new EventEmitter();
  let ended = 0;
  const { handler, metrics } = newHandler(t, clock, () => {
    ended++;
    ends.emit('ended');
  });
  /** The server side of every upgrade. */
  const serverSockets: Duplex[] = [];
  const server = http.createServer();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    serverSockets.push(socket);
    t.is(handler.handshakeProblem(req), undefined, 'the clients here send good handshakes');
    handler.start(req, socket, head, { url: new URL(`http://origin.invalid${req.url ?? '/'}`), headers: forwardRequestHeaders(req.rawHeaders) });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const clients: WebSocket[] = [];
  t.teardown(async () => {
    for (const client of clients) client.terminate();
    for (const socket of serverSockets) socket.destroy();
    await within('the handler drained at teardown', handler.drain());
    server.close();
  });

  /** A client the origin has accepted, open. */
  const connect = async (path = '/chat') => {
    const client = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    clients.push(client);
    await within(`client ${path} open`, once(client, 'open'));
    return client;
  };
  /** Resolves once onSessionEnded has run `n` times in all. */
  const untilEnded = (n: number) => within(`${n} sessions ended`, (async () => {
    while (ended < n) await once(ends, 'ended');
  })());
  return { handler, metrics, port, serverSockets, clients, connect, untilEnded, ended: () => ended };
}

/** The client's close code and reason, once it has closed. */
async function closeOf(client: WebSocket): Promise<{ code: number; reason: string }> {
  const [code, reason] = await within('client closed', once(client, 'close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

test('handshakeProblem names what is wrong with a bad handshake, and nothing for a good one', (t) => {
  const { handler } = newHandler(t, systemClock, () => undefined);
  const good = ['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version', '13'];
  const problem = (method: string, rawHeaders: string[]) => handler.handshakeProblem({ method, rawHeaders } as unknown as IncomingMessage);
  const without = (name: string) => good.filter((_, i) => good[i - (i % 2)] !== name);
  const replaced = (name: string, value: string) => good.map((v, i) => (i % 2 === 1 && good[i - 1] === name ? value : v));

  t.is(problem('GET', good), undefined);
  t.regex(problem('POST', good) ?? '', /must use GET, got "POST"/);
  t.regex(problem('GET', without('Upgrade')) ?? '', /Upgrade must be "websocket", got undefined/);
  t.regex(problem('GET', replaced('Upgrade', 'h2c')) ?? '', /Upgrade must be "websocket", got "h2c"/);
  t.regex(problem('GET', without('Sec-WebSocket-Key')) ?? '', /Sec-WebSocket-Key must be 16 bytes in base64/);
  t.regex(problem('GET', replaced('Sec-WebSocket-Key', 'c2hvcnQ=')) ?? '', /Sec-WebSocket-Key must be 16 bytes in base64/);
  t.regex(problem('GET', replaced('Sec-WebSocket-Version', '12')) ?? '', /Sec-WebSocket-Version must be 13, got "12"/);
});

test('start() counts the session until it ends; onSessionEnded runs once per session, however it ends', async (t) => {
  const { handler, connect, untilEnded, ended, port } = await setup(t);
  t.is(handler.sessionCount, 0);
  const first = await connect();
  const second = await connect();
  t.is(handler.sessionCount, 2);

  // The client leaves.
  first.close(1000, 'bye');
  t.is((await closeOf(first)).code, 1000);
  await untilEnded(1);
  t.is(handler.sessionCount, 1);

  // The origin refuses OPEN: the session was counted, and ends with the refusal.
  const refused = new WebSocket(`ws://127.0.0.1:${port}/refuse`);
  const [, res] = await within('the refusal', once(refused, 'unexpected-response')) as [unknown, IncomingMessage];
  t.is(res.statusCode, 403);
  res.resume();
  await untilEnded(2);
  t.is(handler.sessionCount, 1);

  // Shutdown closes the last one; the two already ended are not ended again.
  const secondClosed = closeOf(second);
  await within('drain', handler.drain());
  t.is((await secondClosed).code, SERVICE_RESTART);
  t.is(handler.sessionCount, 0);
  t.is(ended(), 3);
});

test('drain() closes every session with 1012 (reason shutdown) and resolves once every client has gone', async (t) => {
  const { handler, metrics, connect, serverSockets, ended } = await setup(t);
  const clients = [await connect(), await connect(), await connect()];
  const closes = clients.map(closeOf);
  const drained = handler.drain();
  t.is(handler.drain(), drained, 'drain() again waits on the same drain');
  await within('drain', drained);
  t.true(serverSockets.every((s) => s.destroyed), 'every client socket is gone when drain() resolves');
  t.is(handler.sessionCount, 0);
  t.is(ended(), 3);
  t.deepEqual((await Promise.all(closes)).map((c) => c.code), [SERVICE_RESTART, SERVICE_RESTART, SERVICE_RESTART]);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'ws', reason: 'shutdown' }), 3);
});

test('close(grace) does not wait for the grace when every client answers the close frame', async (t) => {
  const { handler, connect, serverSockets } = await setup(t);
  const client = await connect();
  const closed = closeOf(client);
  await within('close, long before its 60 s grace', handler.close(60_000));
  t.is((await closed).code, SERVICE_RESTART);
  t.true(serverSockets.every((s) => s.destroyed));
});

test('close(grace) cuts off a client that does not answer the close frame once the grace is over', async (t) => {
  const clock = new FakeClock();
  t.teardown(() => clock.close());
  const { handler, port, serverSockets, ended } = await setup(t, clock);
  // A client that completes the handshake and then reads frames without ever answering.
  const raw = net.connect(port, '127.0.0.1');
  t.teardown(() => raw.destroy());
  let received = Buffer.alloc(0);
  const data = new EventEmitter();
  raw.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    data.emit('data');
  });
  const rawClosed = once(raw, 'close');
  raw.write('GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  const headEnd = () => received.indexOf('\r\n\r\n');
  /** The close frame's code, once the server has sent one (0x88: FIN + close). */
  const closeCode = () => {
    const at = received.indexOf(0x88, headEnd() + 4);
    return at >= 0 && received.length >= at + 4 ? received.readUInt16BE(at + 2) : undefined;
  };
  await within('the 101', (async () => { while (headEnd() < 0) await once(data, 'data'); })());
  t.regex(received.toString('latin1'), /^HTTP\/1\.1 101 /);
  t.is(handler.sessionCount, 1);

  const closing = handler.close(1000);
  await within('the close frame', (async () => { while (closeCode() === undefined) await once(data, 'data'); })());
  t.is(closeCode(), SERVICE_RESTART);
  t.is(ended(), 1, 'the session has ended; its client has not gone');
  t.is(clock.pending, 1, 'only the grace timer');
  clock.advance(999);
  t.false(serverSockets[0]?.destroyed, 'not cut before the grace is over');
  clock.advance(1);
  t.true(serverSockets[0]?.destroyed, 'cut once the grace is over');
  await within('close', closing);
  await within('the raw client sees the connection cut', rawClosed);
});
