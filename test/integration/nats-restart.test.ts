import test from 'ava';
import { within } from '../helpers/buses.js';
import { openStream, request } from '../helpers/http.js';
import {
  metricValue, publishHttp, sidecarArgs, sseItem, startChannelOrigin, waitForInterest, waitForReadiness,
} from '../helpers/nats-e2e.js';
import { NatsServer } from '../helpers/nats-server.js';
import { SidecarProcess } from '../helpers/sidecar-process.js';

// NATS faults with real processes: a sidecar starts without NATS and reports it; when NATS is
// killed, held client connections stay open, health and metrics say so, and once NATS is back
// every channel is subscribed again and publishes are delivered.

test('held connections survive a NATS crash and receive what is published after the restart', async (t) => {
  const nats = await NatsServer.start();
  t.teardown(() => nats.dispose());
  const origin = await startChannelOrigin();
  t.teardown(() => origin.close());
  const [a, b] = await Promise.all([
    SidecarProcess.start(sidecarArgs(nats, origin.url)),
    SidecarProcess.start(sidecarArgs(nats, origin.url)),
  ]);
  t.teardown(() => Promise.all([a.stop(), b.stop()]).then(() => undefined));
  await Promise.all([waitForReadiness(a, true), waitForReadiness(b, true)]);

  const streamA = await openStream(a.url('/sse?ch=live'));
  const streamB = await openStream(b.url('/sse?ch=live'));
  t.teardown(() => { streamA.close(); streamB.close(); });
  await Promise.all([streamA.waitFor('event: open\n'), streamB.waitFor('event: open\n')]);
  const poll = request(a.url('/poll?ch=poll.live'));
  await waitForInterest(nats, 'live', 2);
  await waitForInterest(nats, 'poll.live', 1);

  await nats.stop('SIGKILL');
  await Promise.all([waitForReadiness(a, false), waitForReadiness(b, false)]);
  const health = await request(`${a.controlUri}healthz`);
  t.is(health.status, 200, 'alive though not ready');
  t.is(JSON.parse(health.body).bus.type, 'disconnected');
  const metrics = (await request(`${a.controlUri}metrics`)).body;
  t.is(metricValue(metrics, 'kong_grip_nats_connected'), 0);
  t.is(metricValue(metrics, 'kong_grip_nats_disconnects_total'), 1);
  const refused = await publishHttp(a, [sseItem('live', 'lost')]);
  t.is(refused.status, 503, 'a publish is refused, not silently dropped');
  t.regex(refused.body, /NATS is not connected/);

  await nats.restart();
  await Promise.all([waitForReadiness(a, true), waitForReadiness(b, true)]);
  t.false(streamA.ended || streamB.ended, 'the streams stayed open');
  t.is((await publishHttp(b, [sseItem('live', 'after restart')])).status, 200);
  await Promise.all([streamA.waitFor('data: after restart\n\n'), streamB.waitFor('data: after restart\n\n')]);
  t.is(streamA.text, 'event: open\ndata:\n\ndata: after restart\n\n');
  await publishHttp(b, [{ channel: 'poll.live', formats: { 'http-response': { body: 'answered\n' } } }]);
  t.is((await poll).body, 'answered\n');
  t.is(metricValue((await request(`${a.controlUri}metrics`)).body, 'kong_grip_nats_connected'), 1);
});

test('a sidecar starts while NATS is down, is not ready, and becomes ready when NATS comes up', async (t) => {
  const nats = await NatsServer.start();
  t.teardown(() => nats.dispose());
  await nats.stop();
  const origin = await startChannelOrigin();
  t.teardown(() => origin.close());
  const side = await SidecarProcess.start(sidecarArgs(nats, origin.url));
  t.teardown(() => side.stop().then(() => undefined));

  const ready = await request(`${side.controlUri}readyz`);
  t.is(ready.status, 503);
  t.is(JSON.parse(ready.body).bus.type, 'connecting');
  t.is((await request(`${side.controlUri}healthz`)).status, 200);
  t.is((await publishHttp(side, [sseItem('x', 'y')])).status, 503);
  // Clients are still served while NATS is down; their channel is subscribed once it is up.
  const stream = await openStream(side.url('/sse?ch=early'));
  t.teardown(() => stream.close());
  await within('the stream opened while NATS is down', stream.waitFor('event: open\n'));

  await nats.restart();
  await waitForReadiness(side, true);
  t.is(JSON.parse((await request(`${side.controlUri}readyz`)).body).bus.type, 'connected');
  await waitForInterest(nats, 'early', 1);
  t.is((await publishHttp(side, [sseItem('early', 'hello')])).status, 200);
  await within('the item published once NATS is up', stream.waitFor('data: hello\n\n'));
  t.false(stream.ended, 'the stream stays open');
  t.is(stream.text, 'event: open\ndata:\n\ndata: hello\n\n');
});
