import test from 'ava';
import net from 'node:net';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { listenHttp, request } from '../helpers/http.js';
import { startTestSidecar } from '../helpers/sidecar.js';

test('an origin that is down gives 502 with Pushpin\'s text, not naming the origin', async (t) => {
  // A port that was free a moment ago: connections are refused.
  const probe = await listenHttp(() => undefined);
  const deadUrl = probe.url;
  await probe.close();
  const side = await startTestSidecar({ origin: deadUrl });
  t.teardown(() => side.close());
  const res = await request(side.url('/x'));
  t.is(res.status, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
  const metrics = await (await fetch(`${side.controlUri}metrics`)).text();
  t.regex(metrics, /kong_grip_origin_errors_total\{kind="unreachable"\} 1/);
});

test('an origin that hangs gives 504 after the configured origin timeout, and nothing stays held', async (t) => {
  const sockets: net.Socket[] = [];
  const hanging = net.createServer((s) => { sockets.push(s); s.on('error', () => undefined); });
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); hanging.close(); });
  const port = (hanging.address() as net.AddressInfo).port;
  const side = await startTestSidecar({ origin: `http://127.0.0.1:${port}`, limits: { originTimeoutMs: 200 } });
  t.teardown(() => side.close());
  const res = await request(side.url('/x'));
  t.is(res.status, 504);
  t.is(res.body, 'Error while proxying to origin.\n');
});

test('malformed Grip-* instructions give 502 with Pushpin\'s text; what is wrong is counted', async (t) => {
  const origin = await startGripOrigin({
    '/bad-hold': (req, res) => { res.setHeader('Grip-Hold', 'forever'); res.setHeader('Grip-Channel', 'a'); res.end(); },
    '/bad-timeout': (req, res) => {
      res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'a'); res.setHeader('Grip-Timeout', 'abc'); res.end();
    },
    '/bad-json': (req, res) => { res.setHeader('Content-Type', 'application/grip-instruct'); res.end('{not json'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); });
  for (const path of ['/bad-hold', '/bad-timeout', '/bad-json']) {
    const res = await request(side.url(path));
    t.is(res.status, 502, path);
    t.is(res.body, 'Error while proxying to origin.\n', path);
    t.is(side.sidecar.hub.channelCount(), 0);
  }
  const metrics = await (await fetch(`${side.controlUri}metrics`)).text();
  t.regex(metrics, /kong_grip_requests_total\{outcome="KG_ERR_INSTRUCT_INVALID"\} 3/);
});

test('a response-hold body over the buffered limit gives 502', async (t) => {
  const origin = await startGripOrigin({
    '/huge': (req, res) => { res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'a'); res.end('x'.repeat(2000)); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, limits: { maxInstructBodyBytes: 1000 } });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const res = await request(side.url('/huge'));
  t.is(res.status, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
});

test('a client body too large to keep gets 400 when the origin answers with GRIP, and is relayed when it does not', async (t) => {
  const origin = await startGripOrigin({
    '/hold': (req, res) => { res.setHeader('Grip-Hold', 'response'); res.setHeader('Grip-Channel', 'a'); res.end(); },
    '/echo': (req, res, seen) => { res.end(`got ${seen.body.length}\n`); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, limits: { maxRequestBodyBytes: 1000 } });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const big = 'y'.repeat(5000);
  const held = await request(side.url('/hold'), { method: 'POST', body: big });
  t.is(held.status, 400);
  t.is(held.body, 'Request too large to accept GRIP instruct.\n');
  const echoed = await request(side.url('/echo'), { method: 'POST', body: big });
  t.is(echoed.status, 200);
  t.is(echoed.body, 'got 5000\n');
});

/**
 * An origin whose kept-alive connections die on their second request, as when its idle timeout
 * closes a connection just as the sidecar reuses it.
 */
async function startOriginClosingReusedConnections(): Promise<{ url: string; connections: () => number; close: () => void }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    let requests = 0;
    s.on('data', () => {
      if (++requests > 1) {
        s.destroy();
        return;
      }
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

test('a GET that meets a kept-alive origin connection closed meanwhile is sent again on a new one', async (t) => {
  const origin = await startOriginClosingReusedConnections();
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { await side.close(); origin.close(); });
  const first = await request(side.url('/a'));
  t.is(first.status, 200);
  const second = await request(side.url('/b'));
  t.is(second.status, 200, second.body);
  t.is(second.body, 'ok\n');
  t.is(origin.connections(), 2); // the reused one failed; the request went again on a fresh one
});

test('a POST that meets a closed kept-alive origin connection is not sent again: the client gets 502', async (t) => {
  const origin = await startOriginClosingReusedConnections();
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { await side.close(); origin.close(); });
  t.is((await request(side.url('/a'))).status, 200);
  const res = await request(side.url('/b'), { method: 'POST', body: 'x=1' });
  t.is(res.status, 502);
  t.is(origin.connections(), 1);
});
