// Every hold is tied to its client's connection, and the origin side goes with it (hardening
// issue D2, D3, D10, D12): real sidecars and origins on 127.0.0.1, clients on raw sockets where
// pipelining matters. Leak checks compare the hold gauges and the hub's subscriber counts with
// their values before; every wait has a deadline.
import test from 'ava';
import type { ServerResponse } from 'node:http';
import net from 'node:net';
import { waitUntil, withDeadline } from '../../bench/proc.js';
import type { Metrics } from '../../sidecar/src/metrics.js';
import { listenHttp, openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

async function gauge(metrics: Metrics, kind: string): Promise<number> {
  const { values } = await metrics.connections.get();
  return values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

/** Origin requests received and the ones whose connection has closed, by path. */
function originLedger() {
  const open = new Set<ServerResponse>();
  let received = 0;
  let closedEarly = 0;
  return {
    track(res: ServerResponse): void {
      received++;
      open.add(res);
      res.once('close', () => {
        open.delete(res);
        if (!res.writableFinished) closedEarly++;
      });
    },
    received: () => received,
    /** Requests whose connection the sidecar closed before the origin had answered in full. */
    closedEarly: () => closedEarly,
    open: () => open.size,
    endAll(): void { for (const r of open) r.destroy(); },
  };
}

/** Opens a raw connection, sends `text`, and resolves once the socket is connected. */
async function rawClient(port: number, text: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  await withDeadline(new Promise<void>((resolve) => socket.once('connect', resolve)), 5000, 'the client connection');
  socket.write(text);
  return socket;
}

const pipelined = (paths: string[]): string => paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');

for (const kind of ['stream', 'response'] as const) {
  test(`pipelined requests answered with ${kind} holds all end when their connection closes; no admission slot is lost (D2)`, async (t) => {
    const origin = await listenHttp((req, res) => {
      res.writeHead(200, { 'Grip-Hold': kind, 'Grip-Channel': 'pipe', 'Content-Type': 'text/plain' });
      res.end('open\n');
    });
    const side = await startTestSidecar({ origin: origin.url, limits: { maxConnections: 4 } });
    t.teardown(async () => { await side.close(); await origin.close(); });
    const { hub, metrics } = side.sidecar;
    const before = await gauge(metrics, kind);
    const socket = await rawClient(side.sidecar.clientPort, pipelined(['/1', '/2', '/3', '/4']));
    await waitForSubscribers(hub, 'pipe', 4, 5000);
    socket.destroy();
    await waitForSubscribers(hub, 'pipe', 0, 5000);
    await waitUntil('the hold gauge is back', async () => (await gauge(metrics, kind)) === before, 5000);
    // All four slots are free again: four new holds are admitted.
    const clients = await Promise.all([1, 2, 3, 4].map(() => rawClient(side.sidecar.clientPort, pipelined(['/again']))));
    t.teardown(() => { for (const c of clients) c.destroy(); });
    await waitForSubscribers(hub, 'pipe', 4, 5000);
    // And no more than four: each closed request was released once, not twice.
    t.is((await withDeadline(request(side.url('/fifth')), 5000, 'the refusal')).status, 503);
  });
}

test('pipelined requests whose connection closed before the origin answered never become holds; their origin requests are cancelled (D2, D10)', async (t) => {
  const ledger = originLedger();
  const origin = await listenHttp((req, res) => { ledger.track(res); }); // answers only when told
  const side = await startTestSidecar({ origin: origin.url, limits: { maxConnections: 3 } });
  t.teardown(async () => { ledger.endAll(); await side.close(); await origin.close(); });
  const { hub, metrics } = side.sidecar;
  const socket = await rawClient(side.sidecar.clientPort, pipelined(['/1', '/2', '/3']));
  await waitUntil('the origin has the three requests', () => ledger.received() === 3, 5000);
  socket.destroy();
  await waitUntil('the sidecar has closed the three origin requests', () => ledger.closedEarly() === 3, 5000);
  t.is(hub.subscriberCount('late'), 0);
  t.is(await gauge(metrics, 'stream'), 0);
  t.is(await gauge(metrics, 'response'), 0);
  // The three slots are free: three new requests are admitted and answered.
  const answered = Promise.all([1, 2, 3].map(() => request(side.url('/now'))));
  await waitUntil('the origin has the new requests', () => ledger.received() === 6, 5000);
  ledger.endAll();
  t.deepEqual((await withDeadline(answered, 5000, 'the new requests')).map((r) => r.status), [502, 502, 502]);
});

test('clients that leave a slow origin cancel their origin requests; the next client is served at once (D3, D10)', async (t) => {
  const ledger = originLedger();
  const origin = await listenHttp((req, res) => {
    if (req.url === '/fast') {
      res.end('fast\n');
      return;
    }
    ledger.track(res); // never answers
  });
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { ledger.endAll(); await side.close(); await origin.close(); });
  const clients = await Promise.all([1, 2, 3, 4, 5].map(() => rawClient(side.sidecar.clientPort, pipelined(['/slow']))));
  await waitUntil('the origin has every request', () => ledger.received() === 5, 5000);
  for (const c of clients) c.destroy();
  await waitUntil('every origin request is closed', () => ledger.closedEarly() === 5 && ledger.open() === 0, 5000);
  const res = await withDeadline(request(side.url('/fast')), 5000, 'a normal request');
  t.is(res.body, 'fast\n');
});

test('a client that leaves a stream whose origin body never ends closes that origin response (D10)', async (t) => {
  const ledger = originLedger();
  const origin = await listenHttp((req, res) => {
    ledger.track(res);
    res.writeHead(200, { 'Grip-Hold': 'stream', 'Grip-Channel': 'endless', 'Content-Type': 'text/plain' });
    res.write('first\n'); // and never ends
  });
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { ledger.endAll(); await side.close(); await origin.close(); });
  const stream = await openStream(side.url('/s'));
  await withDeadline(stream.waitFor('first\n'), 5000, 'the initial body');
  stream.close();
  await waitUntil('the origin response is closed', () => ledger.closedEarly() === 1, 5000);
  await waitUntil('the stream gauge is back', async () => (await gauge(side.sidecar.metrics, 'stream')) === 0, 5000);
  t.is(side.sidecar.hub.subscriberCount('endless'), 0);
});

test('a client that leaves while a hint\'s retry is at the origin cancels the retry; nothing is held (D3, D10)', async (t) => {
  const ledger = originLedger();
  let calls = 0;
  const origin = await listenHttp((req, res) => {
    if (++calls === 1) {
      res.writeHead(200, { 'Grip-Hold': 'response', 'Grip-Channel': 'lp', 'Content-Type': 'text/plain' });
      res.end('timeout\n');
      return;
    }
    ledger.track(res); // the retry: never answered
  });
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { ledger.endAll(); await side.close(); await origin.close(); });
  const { hub, metrics } = side.sidecar;
  const socket = await rawClient(side.sidecar.clientPort, pipelined(['/lp']));
  await waitForSubscribers(hub, 'lp', 1, 5000);
  const publish = await fetch(`${side.controlUri}publish/`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ items: [{ channel: 'lp', formats: { 'http-response': { action: 'hint' } } }] }),
  });
  t.is(publish.status, 200);
  await waitUntil('the retry reached the origin', () => ledger.received() === 1, 5000);
  socket.destroy();
  await waitUntil('the retry is cancelled', () => ledger.closedEarly() === 1, 5000);
  t.is(hub.subscriberCount('lp'), 0);
  t.is(await gauge(metrics, 'response'), 0);
});

/** An origin that sends its head and part of its body, then nothing: `head` and `part` as raw HTTP. */
async function stallingOrigin(head: string, part: string): Promise<{ url: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => s.write(head + part));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

for (const [what, head] of [
  ['a long-poll\'s timeout body', 'HTTP/1.1 200 OK\r\nGrip-Hold: response\r\nGrip-Channel: stall\r\nContent-Length: 100\r\n\r\n'],
  ['a JSON instruct', 'HTTP/1.1 200 OK\r\nContent-Type: application/grip-instruct\r\nContent-Length: 100\r\n\r\n'],
] as const) {
  test(`an origin that stalls in ${what} gives 502 after originBodyTimeoutMs (D12)`, async (t) => {
    const origin = await stallingOrigin(head, '{"hold"');
    const side = await startTestSidecar({ origin: origin.url, limits: { originBodyTimeoutMs: 200 } });
    t.teardown(async () => { await side.close(); origin.close(); });
    const res = await withDeadline(request(side.url('/x')), 5000, 'the 502');
    t.is(res.status, 502);
    t.is(res.body, 'Error while proxying to origin.\n');
    t.is(side.sidecar.hub.subscriberCount('stall'), 0);
  });
}

for (const [what, head] of [
  ['a relayed non-GRIP body', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n'],
  ['a stream hold\'s initial body', 'HTTP/1.1 200 OK\r\nGrip-Hold: stream\r\nGrip-Channel: stall\r\nTransfer-Encoding: chunked\r\n\r\n'],
] as const) {
  test(`an origin that stalls in ${what} has the client's response closed after originBodyTimeoutMs (D12)`, async (t) => {
    const origin = await stallingOrigin(head, head.includes('chunked') ? '6\r\nstart\n\r\n' : 'start\n');
    const side = await startTestSidecar({ origin: origin.url, limits: { originBodyTimeoutMs: 200 } });
    t.teardown(async () => { await side.close(); origin.close(); });
    const stream = await openStream(side.url('/x'));
    t.is(stream.res.statusCode, 200);
    await withDeadline(stream.waitFor('start\n'), 5000, 'the start of the body');
    await withDeadline(stream.waitForEnd(), 5000, 'the response to close');
    await waitUntil('no stream is held', async () => (await gauge(side.sidecar.metrics, 'stream')) === 0, 5000);
    t.is(side.sidecar.hub.subscriberCount('stall'), 0);
  });
}

test('an origin status line Node cannot write is relayed with the standard reason phrase (D1)', async (t) => {
  const origin = await stallingOrigin('HTTP/1.1 200 O\x01K\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n', 'ok\n');
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { await side.close(); origin.close(); });
  const res = await withDeadline(request(side.url('/x')), 5000, 'the relayed answer');
  t.is(res.status, 200);
  t.is(res.reason, 'OK');
  t.is(res.body, 'ok\n');
});
