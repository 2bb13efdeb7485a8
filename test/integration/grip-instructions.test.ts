import test from 'ava';
import net from 'node:net';
import { Publisher } from '@fanoutio/grip';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

const setup = async (routes: Parameters<typeof startGripOrigin>[0], overrides: Record<string, unknown> = {}) => {
  const origin = await startGripOrigin(routes);
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, ...overrides });
  const publisher = new Publisher({ control_uri: side.controlUri });
  return { origin, side, publisher, close: async () => { await side.close(); await origin.close(); } };
};

test('Grip-Status rewrites the status of a response without a hold, and Grip headers are removed', async (t) => {
  const { side, close } = await setup({
    '/s': (req, res) => { res.setHeader('Grip-Status', '404 Nope'); res.setHeader('Grip-Foo', 'bar'); res.end('missing\n'); },
  });
  t.teardown(close);
  const res = await request(side.url('/s'));
  t.is(res.status, 404);
  t.is(res.reason, 'Nope');
  t.is(res.body, 'missing\n');
  t.is(res.headers['grip-foo'], undefined);
});

test('a long-poll that sees no publish gets the origin response after Grip-Timeout (raised to the 5 s minimum)', async (t) => {
  const { side, close } = await setup({
    '/p': (req, res) => {
      res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'quiet'); res.setHeader('Grip-Timeout', '1');
      res.setHeader('Grip-Status', '299');
      res.setHeader('X-Kept', 'yes');
      res.end('timeout body');
    },
  });
  t.teardown(close);
  const started = Date.now();
  const res = await request(side.url('/p'));
  t.true(Date.now() - started >= 4900, 'not answered before the 5 s minimum');
  t.is(res.status, 299);
  t.is(res.reason, 'Undefined Reason');
  t.is(res.body, 'timeout body');
  t.is(res.headers['x-kept'], 'yes');
  t.is(res.headers['content-length'], '12');
  t.is(side.sidecar.hub.channelCount(), 0);
});

test('a JSON instruct holds the request and builds the response only from its response object', async (t) => {
  const { side, publisher, close } = await setup({
    '/j': (req, res) => {
      res.setHeader('Content-Type', 'application/grip-instruct');
      res.setHeader('X-Origin-Only', '1');
      res.end(JSON.stringify({
        hold: { mode: 'stream', channels: [{ name: 'jc' }] },
        response: { code: 201, headers: { 'X-I': '1' }, body: 'json open\n' },
      }));
    },
  });
  t.teardown(close);
  const stream = await openStream(side.url('/j'));
  t.is(stream.res.statusCode, 201);
  t.is(stream.res.headers['x-i'], '1');
  t.is(stream.res.headers['x-origin-only'], undefined);
  await stream.waitFor('json open\n');
  await waitForSubscribers(side.sidecar.hub, 'jc', 1);
  await publisher.publishHttpStream('jc', 'more\n');
  t.is(await stream.waitFor('more\n'), 'json open\nmore\n');
  stream.close();
});

test('paged streaming: a response with a next link and no hold is followed until a page has neither', async (t) => {
  const { origin, side, close } = await setup({
    '/page1': (req, res) => { res.setHeader('Grip-Link', '</page2>; rel=next'); res.end('one\n'); },
    '/page2': (req, res) => { res.setHeader('Grip-Link', '</page3?x=1>; rel=next'); res.end('two\n'); },
    '/page3': (req, res) => { res.end('three\n'); },
  });
  t.teardown(close);
  const res = await request(side.url('/page1'), { headers: { Cookie: 'secret=1' } });
  t.is(res.status, 200);
  t.is(res.body, 'one\ntwo\nthree\n');
  t.is(origin.seen.length, 3);
  t.is(origin.seen[2]?.url, '/page3?x=1');
  t.is(origin.seen[1]?.headers.cookie, undefined, 'next-link fetches carry no client cookies');
  t.true(origin.seen[1]?.isSigned);
});

test('a hint makes a long-poll ask the origin again with Grip-Last, and the new answer goes to the client', async (t) => {
  let calls = 0;
  const { origin, side, close } = await setup({
    '/h': (req, res) => {
      calls++;
      if (calls === 1) {
        res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'hc; prev-id=7'); res.end('first');
      } else {
        res.end(`fresh data after ${String(req.headers['grip-last'])}`);
      }
    },
  });
  t.teardown(close);
  const pending = request(side.url('/h'), { method: 'POST', body: 'original body' });
  await waitForSubscribers(side.sidecar.hub, 'hc', 1);
  const hint = await request(`${side.controlUri}publish/`, {
    method: 'POST', body: JSON.stringify({ items: [{ channel: 'hc', formats: { 'http-response': { action: 'hint' } } }] }),
  });
  t.is(hint.status, 200);
  t.is((await pending).body, 'fresh data after hc; last-id=7');
  t.is(origin.seen.length, 2);
  t.is(origin.seen[1]?.method, 'POST');
  t.is(origin.seen[1]?.body, 'original body', 'the retry replays the original request body');
  t.true(origin.seen[1]?.isSigned);
});

test('an http-response item that skips an id makes the long-poll recover from the origin', async (t) => {
  let calls = 0;
  const { side, publisher, close } = await setup({
    '/g': (req, res) => {
      calls++;
      if (calls === 1) {
        res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'gc; prev-id=1'); res.end('first');
      } else {
        res.end(`recovered after ${String(req.headers['grip-last'])}`);
      }
    },
  });
  t.teardown(close);
  const pending = request(side.url('/g'));
  await waitForSubscribers(side.sidecar.hub, 'gc', 1);
  await publisher.publishHttpResponse('gc', 'item 3', '3', '2');
  t.is((await pending).body, 'recovered after gc; last-id=1');
});

test('channels beyond the per-connection limit are dropped and counted', async (t) => {
  const { side, close } = await setup({
    '/many': (req, res) => { res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'a, b, c, d'); res.end('x\n'); },
  }, { limits: { maxChannelsPerConnection: 2 } });
  t.teardown(close);
  const stream = await openStream(side.url('/many'));
  await waitForSubscribers(side.sidecar.hub, 'b', 1);
  t.is(side.sidecar.hub.subscriberCount('a'), 1);
  t.is(side.sidecar.hub.subscriberCount('c'), 0);
  t.is(side.sidecar.hub.subscriberCount('d'), 0);
  const metrics = await request(`${side.controlUri}metrics`);
  t.regex(metrics.body, /kong_grip_channels_dropped_total 2/);
  stream.close();
});

test('requests over maxConnections get 503 while the others stay held', async (t) => {
  const { side, close } = await setup({
    '/s': (req, res) => { res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'lim'); res.end('open\n'); },
  }, { limits: { maxConnections: 2 } });
  t.teardown(close);
  const a = await openStream(side.url('/s'));
  const b = await openStream(side.url('/s'));
  await waitForSubscribers(side.sidecar.hub, 'lim', 2);
  const refused = await request(side.url('/s'));
  t.is(refused.status, 503);
  a.close();
  await waitForSubscribers(side.sidecar.hub, 'lim', 1);
  const c = await openStream(side.url('/s'));
  await waitForSubscribers(side.sidecar.hub, 'lim', 2);
  b.close();
  c.close();
});

test('a client that stops reading is dropped as a slow consumer once its queue passes maxQueueBytes', async (t) => {
  const { side, publisher, close } = await setup({
    '/s': (req, res) => { res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'slow'); res.end('open\n'); },
  }, { limits: { maxQueueBytes: 256 * 1024 } });
  t.teardown(close);
  // A raw socket that sends the request and never reads: the kernel buffers fill, then ours.
  const socket = net.connect(side.sidecar.clientPort, '127.0.0.1');
  socket.write('GET /s HTTP/1.1\r\nHost: x\r\n\r\n');
  socket.pause();
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  await waitForSubscribers(side.sidecar.hub, 'slow', 1);
  const chunk = 'z'.repeat(512 * 1024);
  while (side.sidecar.hub.subscriberCount('slow') > 0) await publisher.publishHttpStream('slow', chunk);
  const metrics = await request(`${side.controlUri}metrics`);
  t.regex(metrics.body, /kong_grip_holds_closed_total\{kind="stream",reason="slow_consumer"\} 1/);
  socket.resume();
  await closed;
});
