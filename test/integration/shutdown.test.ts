import test from 'ava';
import http from 'node:http';
import { connect } from 'nats';
import { startFeedOrigin } from '../helpers/feed-origin.js';
import { openStream, request } from '../helpers/http.js';
import { whenLive } from '../../sidecar/src/bus/bus.js';
import { waitForReadiness } from '../helpers/nats-e2e.js';
import { NatsServer } from '../helpers/nats-server.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';
import { SidecarProcess } from '../helpers/sidecar-process.js';
import { closed, connect as connectWs } from '../helpers/ws-origin.js';

// SIGTERM drains: the sidecar stops taking work, ends every held connection the way its client
// can resume from (a stream's clean end, a long-poll's timeout response, WebSocket close 1012),
// refuses new publishes with 503 while it finishes the ones it accepted, and exits within
// shutdown.drainMs even when a connection does not go.

/** Starts a publish whose body is only half sent; resolves once the sidecar has taken it (100 Continue). */
function startSlowPublish(controlPort: number, body: string): Promise<{ finish(): Promise<{ status: number; text: string }> }> {
  return new Promise((resolve, reject) => {
    const bytes = Buffer.from(body);
    const half = Math.floor(bytes.length / 2);
    const req = http.request({
      host: '127.0.0.1', port: controlPort, method: 'POST', path: '/publish/', agent: false,
      headers: { 'Content-Length': String(bytes.length), Expect: '100-continue' },
    });
    const answered = new Promise<{ status: number; text: string }>((done, fail) => {
      req.once('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => done({ status: res.statusCode ?? 0, text }));
      });
      req.once('error', fail);
    });
    req.once('error', reject);
    req.once('continue', () => {
      req.write(bytes.subarray(0, half));
      resolve({
        finish: () => {
          req.end(bytes.subarray(half));
          return answered;
        },
      });
    });
    req.flushHeaders();
  });
}

test('a drain ends held connections cleanly, refuses new publishes, delivers the accepted one, and ends within the drain time', async (t) => {
  // In this process: close() is what SIGTERM runs (cli.ts); the worker test below sends the signal.
  const nats = await NatsServer.start();
  t.teardown(() => nats.dispose());
  const origin = await startFeedOrigin({ wsChannel: 'drain' });
  t.teardown(() => origin.close());
  const drainMs = 1500;
  const side = await startTestSidecar({ origin: origin.url, nats: { servers: nats.url }, shutdown: { drainMs } });
  t.teardown(() => side.close());

  const stream = await openStream(side.url('/sse?ch=drain'));
  await stream.waitFor('event: open\n');
  const poll = request(side.url('/poll?ch=drain'));
  const ws = await connectWs(side.url('/ws'));
  const wsClosed = closed(ws);
  // A relayed response that never ends keeps the drain busy until drainMs.
  const slow = await openStream(side.url('/slow'));
  await slow.waitFor('first chunk\n');
  await waitForSubscribers(side.sidecar.hub, 'drain', 3);
  await whenLive(side.sidecar.bus, 'drain');
  const watcher = await connect({ servers: nats.url });
  t.teardown(() => watcher.close());
  const delivered = watcher.subscribe('grip.ch.drain', { max: 1 });
  await watcher.flush();
  const accepted = await startSlowPublish(side.sidecar.controlPort, JSON.stringify({ items: [{ channel: 'drain', formats: { 'http-stream': { content: 'accepted\n' } } }] }));

  const startedAt = Date.now();
  const drained = side.close();
  await stream.waitForEnd();
  t.true(stream.res.complete, 'the stream ended with its last chunk, not cut');
  const timeout = await poll;
  t.is(timeout.status, 200);
  t.is(timeout.body, 'timeout body\n', 'the long-poll got its timeout response');
  t.deepEqual(await wsClosed, { code: 1012, reason: 'service restart' });

  t.is((await request(`${side.controlUri}readyz`)).status, 503, 'not ready while draining');
  const refused = await request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items: [] }) });
  t.is(refused.status, 503);
  t.regex(refused.body, /shutting down/);
  const answer = await accepted.finish();
  t.is(answer.status, 200, 'a publish taken before the drain is accepted');
  for await (const m of delivered) t.regex(m.string(), /accepted/, 'and reached NATS');

  await drained;
  const tookMs = Date.now() - startedAt;
  await slow.waitForEnd();
  t.false(slow.res.complete, 'the response that would not end was cut at the end of the drain');
  t.true(tookMs >= drainMs - 50 && tookMs < drainMs + 2000, `drained in ${tookMs} ms (drainMs ${drainMs})`);
  t.regex(await side.sidecar.metrics.registry.metrics(), /kong_grip_publish_rejected_total\{reason="shutting_down"\} 1/);
});

test('SIGTERM to a sidecar with worker processes drains every worker: streams end, WebSockets close with 1012, exit 0', async (t) => {
  const nats = await NatsServer.start();
  t.teardown(() => nats.dispose());
  const origin = await startFeedOrigin({ wsChannel: 'drain.w' });
  t.teardown(() => origin.close());
  const side = await SidecarProcess.start(['--origin', origin.url, '--nats', nats.url, '--workers', '2'], { yaml: 'shutdown:\n  drainMs: 3000\n' });
  t.teardown(() => side.stop().then(() => undefined));
  const streams = await Promise.all([1, 2, 3, 4].map(() => openStream(side.url('/sse?ch=drain.w'))));
  await Promise.all(streams.map((s) => s.waitFor('event: open\n')));
  const sockets = await Promise.all([1, 2].map(() => connectWs(side.url('/ws'))));
  const socketsClosed = sockets.map((ws) => closed(ws));
  await waitForReadiness(side, true);

  side.signal('SIGTERM');
  for (const s of streams) {
    await s.waitForEnd();
    t.true(s.res.complete);
  }
  for (const c of await Promise.all(socketsClosed)) t.is(c.code, 1012);
  t.is(await side.exited(), 0);
});
