import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Publisher } from '@fanoutio/grip';
import WebSocket from 'ws';
import { waitUntil, withDeadline } from '../../bench/proc.js';
import { openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';
import { connect } from '../helpers/ws-origin.js';

// The one admission gate of the client port (server/admission.ts, server/client-server.ts): one
// maxConnections count for plain requests and WebSockets, a bound on idle connections, and the
// time a client has to send its request head and its body. Real sockets on 127.0.0.1; raw `net`
// sockets play the idle and slow clients.

/**
 * An origin for both kinds: GET /s holds a stream on channel "adm", a WebSocket-over-HTTP OPEN is
 * accepted (later events get an empty answer), /upload answers once the whole body has arrived.
 */
async function startOrigin() {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      if (req.headers['content-type'] === 'application/websocket-events') {
        res.writeHead(200, { 'Content-Type': 'application/websocket-events' });
        res.end(body.startsWith('OPEN') ? 'OPEN\r\n' : '');
      } else if (req.url === '/s') {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Grip-Hold': 'stream', 'Grip-Channel': 'adm' });
        res.end('open\n');
      } else {
        res.end(`got ${body.length}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function setup(t: ExecutionContext, limits: Record<string, number>, ws: Record<string, unknown> = {}) {
  const origin = await startOrigin();
  const side = await startTestSidecar({ origin: origin.url, limits, ws });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  return side;
}

/** A raw client socket: what it received, and when it was closed (ms after it connected). */
interface RawClient {
  socket: net.Socket;
  text: () => string;
  closed: Promise<number>;
  isClosed: () => boolean;
}

async function rawClient(side: TestSidecar): Promise<RawClient> {
  const socket = net.connect(side.sidecar.clientPort, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const connectedAt = performance.now();
  let received = '';
  let isClosed = false;
  socket.on('data', (c: Buffer) => { received += c.toString('latin1'); });
  const closed = new Promise<number>((resolve) => socket.once('close', () => { isClosed = true; resolve(performance.now() - connectedAt); }));
  return { socket, text: () => received, closed, isClosed: () => isClosed };
}

/** Writes `bytes` one at a time, every `everyMs`, until the socket closes (a slowloris). */
function trickle(socket: net.Socket, bytes: string, everyMs = 40): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) {
      clearInterval(timer);
      return;
    }
    socket.write(bytes[i % bytes.length] as string);
    i++;
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

async function metricValue(side: TestSidecar, name: string, labels: string): Promise<number> {
  const text = await side.sidecar.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

const idleCount = (side: TestSidecar) => metricValue(side, 'kong_grip_client_connections', 'state="idle"');

test('plain requests and WebSocket sessions share one maxConnections count (D11)', async (t) => {
  const side = await setup(t, { maxConnections: 2 });
  const stream = await openStream(side.url('/s'));
  t.is(stream.res.statusCode, 200);
  await waitForSubscribers(side.sidecar.hub, 'adm', 1);
  const ws = await connect(side.url('/chat'));
  t.is(await metricValue(side, 'kong_grip_client_connections', 'state="active"'), 2);

  // Over the one count: a third connection of either kind gets the connection-limit answer.
  const refused = await openStream(side.url('/s'));
  t.is(refused.res.statusCode, 503);
  t.is(refused.res.headers['retry-after'], '1');
  refused.close();
  const wsRefused = await connect(side.url('/chat')).then(() => undefined, (err: { status?: number; headers?: Record<string, string> }) => err);
  t.is(wsRefused?.status, 503);
  t.is(wsRefused?.headers?.['retry-after'], '1');
  t.is(await metricValue(side, 'kong_grip_requests_total', 'outcome="over_limit"'), 2);

  // A stream's end frees its place for a WebSocket.
  stream.close();
  await waitForSubscribers(side.sidecar.hub, 'adm', 0);
  await waitUntil('the stream is released', async () => (await metricValue(side, 'kong_grip_client_connections', 'state="active"')) === 1, 5000);
  const second = await connect(side.url('/chat'));
  t.is(second.readyState, WebSocket.OPEN);
  ws.close();
  second.close();
});

test('over maxIdleConnections the oldest idle connection is closed, never one with a request in progress (D11, D15)', async (t) => {
  const side = await setup(t, { maxConnections: 10, maxIdleConnections: 2 });
  const publisher = new Publisher({ control_uri: side.controlUri });
  const stream = await openStream(side.url('/s'));
  await waitForSubscribers(side.sidecar.hub, 'adm', 1);

  const first = await rawClient(side);
  await waitUntil('1 idle connection', async () => (await idleCount(side)) === 1, 5000);
  const second = await rawClient(side);
  // Half a request head: still idle (no complete request).
  second.socket.write('GET /ok HTTP/1.1\r\n');
  await waitUntil('2 idle connections', async () => (await idleCount(side)) === 2, 5000);
  const third = await rawClient(side);

  await withDeadline(first.closed, 5000, 'the oldest idle connection to be closed');
  t.is(first.text(), '');
  t.is(await idleCount(side), 2);
  t.is(await metricValue(side, 'kong_grip_requests_total', 'outcome="idle_limit"'), 1);
  // The two newer ones were kept: each still gets its request answered.
  second.socket.write('Host: x\r\n\r\n');
  third.socket.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitUntil('both answered', () => second.text().includes('got 0') && third.text().includes('got 0'), 5000);
  t.false(second.isClosed() || third.isClosed());
  // The held stream, busy the whole time, was not touched.
  await publisher.publishHttpStream('adm', 'still here\n');
  await withDeadline(stream.waitFor('still here'), 5000, 'the held stream to get the publish');
  stream.close();
  second.socket.destroy();
  third.socket.destroy();
});

test('a request head must arrive within headerTimeoutMs: silent, trickling (slowloris) and kept-alive connections are cut at the deadline', async (t) => {
  const side = await setup(t, { headerTimeoutMs: 300, requestBodyTimeoutMs: 10_000 });
  const silent = await rawClient(side);
  const slow = await rawClient(side);
  trickle(slow.socket, 'GET /ok HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
  const kept = await rawClient(side);
  kept.socket.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitUntil('the first request on the kept-alive connection is answered', () => kept.text().includes('got 0'), 5000);
  const answeredAt = performance.now();
  trickle(kept.socket, 'GET /ok HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');

  const silentAfter = await withDeadline(silent.closed, 3000, 'the silent connection to be closed');
  const slowAfter = await withDeadline(slow.closed, 3000, () => `the slowloris to be cut (got ${JSON.stringify(slow.text())})`);
  await withDeadline(kept.closed, 3000, 'the kept-alive slowloris to be cut');
  const keptAfter = performance.now() - answeredAt;
  // Cut at the deadline: not before it, and not kept alive by the bytes that kept coming. The
  // kept-alive connection's deadline runs from the end of its first response, which the poll
  // above sees only later: only the upper bound holds for it.
  for (const after of [silentAfter, slowAfter]) t.true(after >= 250 && after < 2500, `cut after ${after} ms`);
  t.true(keptAfter < 2500, `kept-alive connection cut after ${keptAfter} ms`);
  t.is(silent.text(), '');
  t.regex(slow.text(), /^HTTP\/1\.1 408 /);
  t.regex(kept.text(), /got 0\n[^]*HTTP\/1\.1 408 /);
  t.is(await metricValue(side, 'kong_grip_requests_total', 'outcome="header_timeout"'), 2);
  t.is(await idleCount(side), 0);
});

test('a request body not complete within requestBodyTimeoutMs gets 408 and its connection is closed (D21)', async (t) => {
  const side = await setup(t, { headerTimeoutMs: 300, requestBodyTimeoutMs: 300 });
  // In time: answered.
  const quick = await request(side.url('/upload'), { method: 'POST', body: 'x'.repeat(5000) });
  t.is(quick.body, 'got 5000\n');
  const slow = await rawClient(side);
  slow.socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\nsome');
  trickle(slow.socket, 'b');
  const after = await withDeadline(slow.closed, 5000, () => `the slow body to be cut (got ${JSON.stringify(slow.text())})`);
  t.true(after >= 250, `cut after ${after} ms`);
  t.regex(slow.text(), /^HTTP\/1\.1 408 /);
  t.is(await metricValue(side, 'kong_grip_requests_total', 'outcome="body_timeout"'), 1);
});

test("Node's request timeout ends with the request: a held stream and a WebSocket session outlive it", async (t) => {
  // server.requestTimeout is measured from a request's first byte to its last (Node 20's
  // connections checker); these show it does not cut a response, or an upgraded socket.
  const side = await setup(t, { headerTimeoutMs: 200, requestBodyTimeoutMs: 200 }, { answerPings: true });
  const publisher = new Publisher({ control_uri: side.controlUri });
  const stream = await openStream(side.url('/s'));
  await waitForSubscribers(side.sidecar.hub, 'adm', 1);
  const ws = await connect(side.url('/chat'));
  let wsClosed = false;
  ws.once('close', () => { wsClosed = true; });
  // A slow body started after both: once it is cut, both are older than the request timeout.
  const slow = await rawClient(side);
  slow.socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\nsome');
  trickle(slow.socket, 'b');
  await withDeadline(slow.closed, 5000, 'the slow body to be cut');
  await publisher.publishHttpStream('adm', 'after the timeout\n');
  await withDeadline(stream.waitFor('after the timeout'), 5000, 'the stream to get a publish after the timeout');
  ws.ping();
  await withDeadline(once(ws, 'pong'), 5000, 'a pong after the timeout');
  t.false(wsClosed);
  stream.close();
  ws.close();
});
