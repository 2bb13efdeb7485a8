import test from 'ava';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { closed, connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// What the client sees when the origin misbehaves or goes away mid-session: a clear close
// (1014 Bad Gateway with a fixed reason), never a crash, and the sidecar keeps serving.

const FAST_RETRIES = { retries: 2, retryBaseMs: 10 };

type Answer = { status?: number; headers?: Record<string, string>; body: string | Buffer };

/** An origin that accepts OPEN with GRIP on, then answers every later POST with `later`. */
async function scriptedOrigin(later: (n: number) => Answer) {
  let n = 0;
  return startWsOrigin(() => undefined, {
    raw: (_req: IncomingMessage, res: ServerResponse) => {
      const answer: Answer = n++ === 0 ? { body: 'OPEN\r\n', headers: { 'Sec-WebSocket-Extensions': 'grip' } } : later(n - 1);
      res.writeHead(answer.status ?? 200, { 'Content-Type': 'application/websocket-events', ...answer.headers });
      res.end(answer.body);
      return true;
    },
  });
}

async function sidecarFor(t: import('ava').ExecutionContext, originUrl: string, ws: Record<string, unknown> = FAST_RETRIES) {
  const side = await startTestSidecar({ origin: originUrl, sigKey: TEST_SIG_KEY, ws });
  t.teardown(() => side.close());
  return side;
}

async function sidecarStillEchoes(t: import('ava').ExecutionContext) {
  const origin = await startWsOrigin(echoHandler());
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/after'));
  const log = logOf(client);
  client.send('still here');
  t.deepEqual(await log.waitForCount(1), ['still here']);
  client.close();
}

const malformed: Array<[string, Answer]> = [
  ['a body cut short', { body: 'TEXT 10\r\nshort' }],
  ['a non-hex length', { body: 'TEXT zz\r\nm:hi\r\n' }],
  ['content without its CRLF', { body: 'TEXT 4\r\nm:hiXX' }],
  ['a 1-byte CLOSE', { body: 'CLOSE 1\r\n\x03\r\n' }],
];

for (const [what, answer] of malformed) {
  test(`origin events with ${what} close the client with 1014, and the sidecar carries on`, async (t) => {
    const origin = await scriptedOrigin(() => answer);
    t.teardown(() => origin.close());
    const side = await sidecarFor(t, origin.url);
    const client = await connect(side.url('/chat'));
    const done = closed(client);
    client.send('hi');
    t.deepEqual(await done, { code: 1014, reason: 'origin sent invalid events' });
    await sidecarStillEchoes(t);
  });
}

test('a malformed reply to OPEN refuses the handshake with 502', async (t) => {
  const origin = await startWsOrigin(() => undefined, {
    raw: (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/websocket-events' });
      res.end('OPEN 5\r\nab');
      return true;
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const err = await t.throwsAsync(connect(side.url('/chat'))) as Error & { status: number };
  t.is(err.status, 502);
});

test('an origin error status mid-session closes the client with 1014 "origin error"', async (t) => {
  const origin = await scriptedOrigin(() => ({ status: 500, headers: { 'Content-Type': 'text/plain' }, body: 'boom' }));
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/chat'));
  const done = closed(client);
  client.send('hi');
  t.deepEqual(await done, { code: 1014, reason: 'origin error' });
});

test('a 200 reply that is not websocket-events closes the client with 1014', async (t) => {
  const origin = await scriptedOrigin(() => ({ headers: { 'Content-Type': 'text/html' }, body: '<html>' }));
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/chat'));
  const done = closed(client);
  client.send('hi');
  t.deepEqual(await done, { code: 1014, reason: 'origin error' });
});

test('a reply over ws.maxResponseBytes closes the client with 1014', async (t) => {
  const origin = await scriptedOrigin(() => ({ body: `TEXT 1002\r\nm:${'x'.repeat(0x1000)}\r\n` }));
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url, { ...FAST_RETRIES, maxResponseBytes: 1000 });
  const client = await connect(side.url('/chat'));
  const done = closed(client);
  client.send('hi');
  t.deepEqual(await done, { code: 1014, reason: 'origin error' });
});

test('an OPEN on an open connection closes the client with 1014', async (t) => {
  const origin = await scriptedOrigin(() => ({ body: 'OPEN\r\n' }));
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/chat'));
  const done = closed(client);
  client.send('hi');
  t.deepEqual(await done, { code: 1014, reason: 'origin error' });
});

test('DISCONNECT from the origin drops the client connection', async (t) => {
  const origin = await scriptedOrigin(() => ({ body: 'TEXT 4\r\nm:hi\r\nDISCONNECT\r\n' }));
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  const done = closed(client);
  client.send('hi');
  t.deepEqual(await done, { code: 1006, reason: '' });
  t.deepEqual(log.messages, ['hi'], 'events before the DISCONNECT were delivered');
});

test('unknown event types from the origin are skipped', async (t) => {
  const origin = await scriptedOrigin(() => ({ body: 'FUTURE 3\r\nabc\r\nTEXT 4\r\nm:ok\r\n' }));
  t.teardown(() => origin.close());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  client.send('hi');
  t.deepEqual(await log.waitForCount(1), ['ok']);
  client.close();
});

test('the origin going down mid-session closes the client with 1014 after the retries', async (t) => {
  const origin = await startWsOrigin(echoHandler());
  const side = await sidecarFor(t, origin.url);
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  client.send('before');
  await log.waitForCount(1);
  await origin.close();
  const done = closed(client);
  client.send('after');
  t.deepEqual(await done, { code: 1014, reason: 'origin unreachable' });
  const failures = await side.sidecar.metrics.originErrors.get();
  t.is(failures.values.find((v) => v.labels['kind'] === 'ws')?.value, 3, 'one try and two retries');
});

test('a POST that could not reach the origin is retried and delivered once it is back', async (t) => {
  const origin = await startWsOrigin(echoHandler());
  const side = await sidecarFor(t, origin.url, { retries: 5, retryBaseMs: 50 });
  const client = await connect(side.url('/chat'));
  const log = logOf(client);
  await origin.close();
  client.send('are you there');
  // Wait for the first failed attempt, then bring the origin back on the same port.
  const metric = side.sidecar.metrics.originErrors;
  while (((await metric.get()).values.find((v) => v.labels['kind'] === 'ws')?.value ?? 0) < 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  const back = await startWsOrigin(echoHandler(), { port: origin.port });
  t.teardown(() => back.close());
  t.deepEqual(await log.waitForCount(1), ['are you there']);
  t.is(back.seen.filter((r) => r.events.some((e) => e.content === 'are you there')).length, 1, 'delivered exactly once');
  client.close();
});
