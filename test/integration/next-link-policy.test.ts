import { randomBytes } from 'node:crypto';
import test from 'ava';
import { signHandoff } from '../../sidecar/src/kong/handoff-format.js';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { listenHttp, request } from '../helpers/http.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';

// Kong mode needs NATS with JetStream (the fleet-wide nonce store): one server for the file.
const kongNats = useKongNats();

// D6: a Grip-Link rel=next is fetched with the sidecar's network position and its Grip-Sig, so
// it must stay on the request's origin (or, in Kong mode, under kong.allowedOrigins) and never
// name one of the sidecar's own listeners. A refused link ends the stream at once (no retries)
// and no request is sent.

const SECRET = 'next-link-policy-handoff-secret-0123456789ab';

/** Another service on another port, recording what reaches it. */
const otherService = async () => {
  const seen: string[] = [];
  const http = await listenHttp((req, res) => {
    seen.push(req.url ?? '');
    res.end('internal secret\n');
  });
  return { ...http, seen };
};

const handoff = (origin: string) => signHandoff({
  iat: Math.floor(Date.now() / 1000), nonce: randomBytes(16).toString('base64url'), origin,
  routeId: null, serviceId: null, pluginId: 'next-link-policy', consumer: null,
}, SECRET);

test('a next link to another host:port than the origin is refused: the stream ends and the other server sees no request', async (t) => {
  const other = await otherService();
  const origin = await startGripOrigin({
    '/page1': (req, res) => { res.setHeader('Grip-Link', `<${other.url}/admin>; rel=next`); res.end('one\n'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); await other.close(); });
  const started = Date.now();
  const res = await request(side.url('/page1'));
  t.is(res.status, 200);
  t.is(res.body, 'one\n');
  t.deepEqual(other.seen, []);
  // Five tries of a failing link take at least 15 s (1, 2, 4, 8 s apart); a refusal is not retried.
  t.true(Date.now() - started < 10_000, 'refused at once, not retried');
});

test('a next link to the sidecar\'s own control port /metrics is refused', async (t) => {
  let controlPort = 0;
  const origin = await startGripOrigin({
    '/page1': (req, res) => { res.setHeader('Grip-Link', `<http://localhost:${controlPort}/metrics>; rel=next`); res.end('one\n'); },
    '/page2': (req, res) => { res.setHeader('Grip-Link', `<http://127.0.0.1:${controlPort}/metrics>; rel=next`); res.end('two\n'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  controlPort = side.sidecar.controlPort;
  t.teardown(async () => { await side.close(); await origin.close(); });
  for (const path of ['/page1', '/page2']) {
    const res = await request(side.url(path));
    t.is(res.status, 200);
    t.false(res.body.includes('kong_grip'), 'no metrics relayed');
    t.is(res.body, path === '/page1' ? 'one\n' : 'two\n');
  }
});

test('a next link to the sidecar\'s own client port is refused, even when the origin is on loopback', async (t) => {
  let clientPort = 0;
  let calls = 0;
  const origin = await startGripOrigin({
    '/page1': (req, res) => { calls++; res.setHeader('Grip-Link', `<http://127.0.0.1:${clientPort}/page1>; rel=next`); res.end('one\n'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  clientPort = side.sidecar.clientPort;
  t.teardown(async () => { await side.close(); await origin.close(); });
  const res = await request(side.url('/page1'));
  t.is(res.body, 'one\n');
  t.is(calls, 1, 'no loop through the sidecar');
});

test('a later link of a chain is checked against the original request, not the previous page', async (t) => {
  const other = await otherService();
  const origin = await startGripOrigin({
    '/page1': (req, res) => { res.setHeader('Grip-Link', '</page2>; rel=next'); res.end('one\n'); },
    '/page2': (req, res) => { res.setHeader('Grip-Link', `<${other.url}/internal>; rel=next`); res.end('two\n'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); await other.close(); });
  const res = await request(side.url('/page1'));
  t.is(res.body, 'one\ntwo\n');
  t.deepEqual(other.seen, []);
});

test('a same-origin next link is still followed', async (t) => {
  const origin = await startGripOrigin({
    '/page1': (req, res) => { res.setHeader('Grip-Link', `<${origin.url}/page2>; rel=next`); res.end('one\n'); },
    '/page2': (req, res) => { res.end('two\n'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const res = await request(side.url('/page1'));
  t.is(res.body, 'one\ntwo\n');
  t.is(origin.seen.length, 2);
  t.true(origin.seen[1]?.isSigned);
});

test('Kong mode: a next link under kong.allowedOrigins is followed, one outside it is refused', async (t) => {
  const other = await startGripOrigin({
    '/allowed': (req, res) => { res.end('from the other allowed origin\n'); },
  });
  const outside = await otherService();
  const origin = await startGripOrigin({
    '/to-allowed': (req, res) => { res.setHeader('Grip-Link', `<${other.url}/allowed>; rel=next`); res.end('one\n'); },
    '/to-outside': (req, res) => { res.setHeader('Grip-Link', `<${outside.url}/x>; rel=next`); res.end('one\n'); },
  });
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url, other.url] }, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); await other.close(); await outside.close(); });
  const allowed = await request(side.url('/to-allowed'), { headers: { 'Kong-Grip-Handoff': handoff(origin.url) } });
  t.is(allowed.status, 200);
  t.is(allowed.body, 'one\nfrom the other allowed origin\n');
  t.true(other.seen[0]?.isSigned);
  const refused = await request(side.url('/to-outside'), { headers: { 'Kong-Grip-Handoff': handoff(origin.url) } });
  t.is(refused.body, 'one\n');
  t.deepEqual(outside.seen, []);
});
