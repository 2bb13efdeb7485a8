// Grip-Link rel=gone (spec 3.6.10): when a held session ends without the origin's doing, the
// sidecar POSTs an empty body to the gone link, signed like every origin request; never after the
// origin ended the session itself. Real sidecars, origins and clients on 127.0.0.1.
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import { waitUntil, withDeadline } from '../../bench/proc.js';
import { startGripOrigin, TEST_SIG_KEY, type SeenRequest } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';
import { closed, connect, echoHandler, startWsOrigin } from '../helpers/ws-origin.js';

/** The gone POSTs an origin has received, by the `s` query parameter that names the session. */
function goneOf(seen: readonly SeenRequest[]): Array<{ session: string | null; req: SeenRequest }> {
  return seen.filter((r) => r.url.startsWith('/gone')).map((req) => ({ session: new URL(req.url, 'http://x').searchParams.get('s'), req }));
}

async function goneSent(side: TestSidecar): Promise<number> {
  const { values } = await side.sidecar.metrics.goneLinks.get();
  return values.find((v) => v.labels['outcome'] === 'sent')?.value ?? 0;
}

async function httpSetup(t: ExecutionContext, overrides: Record<string, unknown> = {}) {
  const origin = await startGripOrigin({
    '/poll': (req, res) => {
      const s = new URL(req.url ?? '/', 'http://x').searchParams.get('s') ?? '';
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', `poll-${s}`);
      res.setHeader('Grip-Timeout', new URL(req.url ?? '/', 'http://x').searchParams.get('timeout') ?? '55');
      res.setHeader('Grip-Link', `</gone?s=${s}>; rel=gone`);
      res.end('timeout\n');
    },
    '/stream': (req, res) => {
      const s = new URL(req.url ?? '/', 'http://x').searchParams.get('s') ?? '';
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', `stream-${s}`);
      res.setHeader('Grip-Link', `</gone?s=${s}>; rel=gone`);
      res.setHeader('Content-Type', 'text/event-stream');
      res.end('event: open\n\n');
    },
    '/elsewhere': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'stream-elsewhere');
      res.setHeader('Grip-Link', '<http://127.0.0.1:9/gone?s=elsewhere>; rel=gone');
      res.end('event: open\n\n');
    },
    '/gone': (_req, res) => { res.writeHead(204); res.end(); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, ...overrides });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const publish = async (items: unknown[]): Promise<void> => {
    const res = await request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items }) });
    if (res.status !== 200) throw new Error(`publish failed: ${res.status} ${res.body}`);
  };
  const waitForGone = (session: string) => withDeadline(
    (async () => {
      await waitUntil(`gone link of ${session}`, () => goneOf(origin.seen).some((g) => g.session === session));
      return goneOf(origin.seen).find((g) => g.session === session)?.req as SeenRequest;
    })(), 10_000, `the gone POST of session ${session}`);
  return { origin, side, publish, waitForGone };
}

/** A request whose client goes away once the sidecar holds it. */
async function leaveWhileHeld(side: TestSidecar, path: string, channel: string): Promise<void> {
  const req = http.get(side.url(path), { agent: false, headers: { Cookie: 'session=secret', Authorization: 'Bearer secret' } });
  req.on('error', () => undefined);
  await waitForSubscribers(side.sidecar.hub, channel, 1);
  req.destroy();
  await waitForSubscribers(side.sidecar.hub, channel, 0);
}

test('long-poll: the client leaving sends one empty, signed POST to the gone link, with nothing of the client', async (t) => {
  const { side, waitForGone, origin } = await httpSetup(t);
  await leaveWhileHeld(side, '/poll?s=left', 'poll-left');
  const gone = await waitForGone('left');
  t.is(gone.method, 'POST');
  t.is(gone.body, '');
  t.true(gone.isSigned, 'Grip-Sig as on every origin request');
  t.is(gone.headers['grip-feature']?.includes('link:gone'), true);
  t.is(gone.headers['cookie'], undefined);
  t.is(gone.headers['authorization'], undefined);
  t.is(origin.seen.find((r) => r.url.startsWith('/poll'))?.headers['cookie'], 'session=secret', 'the held request itself had them');
  await waitUntil('the answer counted', async () => (await goneSent(side)) === 1);
  t.is(goneOf(origin.seen).length, 1, 'once');
});

test('long-poll: the hold timing out sends the gone link; a published response does not', async (t) => {
  const { side, origin, publish, waitForGone } = await httpSetup(t);
  const answered = request(side.url('/poll?s=answered'));
  await waitForSubscribers(side.sidecar.hub, 'poll-answered', 1);
  await publish([{ channel: 'poll-answered', formats: { 'http-response': { body: 'news\n' } } }]);
  t.is((await answered).body, 'news\n');
  const timedOut = await request(side.url('/poll?s=timeout&timeout=1'));
  t.is(timedOut.body, 'timeout\n');
  await waitForGone('timeout');
  await waitUntil('the answer counted', async () => (await goneSent(side)) === 1);
  t.deepEqual(goneOf(origin.seen).map((g) => g.session), ['timeout']);
});

test('stream: the client leaving and a shutdown send the gone link; a published close does not', async (t) => {
  const { side, origin, publish, waitForGone } = await httpSetup(t);
  const closedByOrigin = await openStream(side.url('/stream?s=closed'));
  await waitForSubscribers(side.sidecar.hub, 'stream-closed', 1);
  await publish([{ channel: 'stream-closed', formats: { 'http-stream': { action: 'close' } } }]);
  await closedByOrigin.waitForEnd();
  await leaveWhileHeld(side, '/stream?s=left', 'stream-left');
  await waitForGone('left');
  const drained = await openStream(side.url('/stream?s=drained'));
  await waitForSubscribers(side.sidecar.hub, 'stream-drained', 1);
  const closing = side.sidecar.close();
  await drained.waitForEnd();
  await waitForGone('drained');
  await closing;
  t.deepEqual(goneOf(origin.seen).map((g) => g.session).sort(), ['drained', 'left']);
});

test('a gone link the outbound policy refuses (another origin) is never requested', async (t) => {
  const { side } = await httpSetup(t);
  await leaveWhileHeld(side, '/elsewhere', 'stream-elsewhere');
  await waitUntil('the refusal counted', async () => {
    const { values } = await side.sidecar.metrics.goneLinks.get();
    return values.find((v) => v.labels['outcome'] === 'refused')?.value === 1;
  });
  t.is(await goneSent(side), 0);
});

test('WebSocket: a gone link on the OPEN reply is sent when the client closes; not when the origin closes', async (t) => {
  const origin = await startWsOrigin(async (ws, req, res) => {
    if (req.url?.startsWith('/gone')) {
      res.writeHead(204);
      res.end();
      return;
    }
    const s = new URL(req.url ?? '/', 'http://x').searchParams.get('s') ?? '';
    if (ws.isOpening()) res.setHeader('Grip-Link', `</gone?s=${s}>; rel=gone`);
    return echoHandler({ commands: { '!bye': (w) => w.close(4000) } })(ws, req, res);
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const byOrigin = await connect(side.url('/chat?s=origin'));
  const originClosed = closed(byOrigin);
  byOrigin.send('!bye');
  t.is((await originClosed).code, 4000);
  const byClient = await connect(side.url('/chat?s=client'));
  byClient.close(1000);
  const gone = await withDeadline(origin.waitFor((r) => r.url.startsWith('/gone')), 10_000, 'the gone POST');
  t.is(gone.url, '/gone?s=client');
  t.is(gone.bodyLength, 0);
  t.true(gone.isSigned);
  await waitUntil('the answer counted', async () => (await goneSent(side)) === 1);
  t.deepEqual(origin.seen.filter((r) => r.url.startsWith('/gone')).map((r) => r.url), ['/gone?s=client']);
});
