import test from 'ava';
import { connect } from 'nats';
import { whenLive } from '../../sidecar/src/bus/bus.js';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { NatsServer } from '../helpers/nats-server.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { connect as connectWs, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// The first-subscription race (spec 3.5) over real NATS: an item published after the origin
// computed its answer but before the sidecar's NATS subscription is live is never received.
// The refresh asks the origin again once the subscription is live, so the client still gets
// the current state; an item published while that refresh is in flight is not lost either.

let nats: NatsServer | undefined;
test.before(async () => {
  nats = await NatsServer.start();
});
test.after.always(async () => {
  await nats?.dispose();
});

const sidecarFor = (origin: string, hold: Record<string, unknown>) => startTestSidecar({
  origin, sigKey: TEST_SIG_KEY, nats: { servers: nats!.url, reconnectWaitMs: 100 }, hold,
});

test('a long-poll gets what was published before its channel was live, through the refresh', async (t) => {
  const publisher = await connect({ servers: nats!.url });
  t.teardown(() => publisher.close());
  let version = 'v1';
  const origin = await startGripOrigin({
    '/poll': async (req, res) => {
      if (req.headers['grip-last'] === undefined && version === 'v1') {
        // The data changes and is published just after this answer was computed: no sidecar
        // has interest in the subject yet, so NATS drops the message.
        version = 'v2';
        publisher.publish('grip.ch.race', Buffer.from('{"formats":{"http-response":{"body":"v2 via NATS"}}}'));
        await publisher.flush();
        res.setHeader('Grip-Hold', 'response');
        res.setHeader('Grip-Channel', 'race; prev-id=v1');
        res.setHeader('Grip-Timeout', '60');
        res.end('nothing new\n');
        return;
      }
      res.end(`current ${version}\n`);
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { firstSubscriptionRefreshMs: 0 });
  t.teardown(() => side.close());

  const res = await request(side.url('/poll'));
  t.is(res.body, 'current v2\n');
  t.is(origin.seen.length, 2, 'asked once, then refreshed');
  t.is(origin.seen[1]?.headers['grip-last'], 'race; last-id=v1');
  t.is(side.sidecar.hub.subscriberCount('race'), 0, 'the answered hold no longer holds');
});

test('an item published while a refresh is in flight still reaches the long-poll', async (t) => {
  let releaseRefresh: () => void = () => {};
  const refreshHeld = new Promise<void>((resolve) => { releaseRefresh = resolve; });
  let refreshArrived: () => void = () => {};
  const refreshStarted = new Promise<void>((resolve) => { refreshArrived = resolve; });
  const origin = await startGripOrigin({
    '/poll': async (req, res) => {
      if (req.headers['grip-last'] !== undefined) {
        refreshArrived();
        await refreshHeld; // the origin is slow to answer the refresh
      }
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', 'inflight; prev-id=a');
      res.end('timeout body\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { firstSubscriptionRefreshMs: 0 });
  t.teardown(() => side.close());

  const pending = request(side.url('/poll'));
  await refreshStarted;
  const publish = await request(`${side.controlUri}publish/`, {
    method: 'POST',
    body: JSON.stringify({ items: [{ channel: 'inflight', formats: { 'http-response': { body: 'published\n' } } }] }),
  });
  t.is(publish.status, 200);
  const res = await pending;
  t.is(res.status, 200);
  t.is(res.body, 'published\n');
  releaseRefresh(); // its answer comes too late and is dropped
});

test('a stream with a next link fetches it with Grip-Last when its channel goes live', async (t) => {
  const origin = await startGripOrigin({
    '/stream': (req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'paged; prev-id=7');
      res.setHeader('Grip-Link', '</next>; rel=next; timeout=120');
      res.end('start\n');
    },
    '/next': (req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'paged; prev-id=8');
      res.setHeader('Grip-Link', '</next>; rel=next; timeout=120');
      res.end(`caught up after ${String(req.headers['grip-last'])}\n`);
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { firstSubscriptionRefreshMs: 0 });
  t.teardown(() => side.close());
  const stream = await openStream(side.url('/stream'));
  t.teardown(() => stream.close());
  await stream.waitFor('caught up after paged; last-id=7\n');
  await whenLive(side.sidecar.bus, 'paged');
  t.is(origin.seen.filter((r) => r.url === '/next').length, 1, 'one refresh, no loop');
});

test('no refresh happens when it is turned off', async (t) => {
  const origin = await startGripOrigin({
    '/poll': (req, res) => {
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', 'quiet');
      res.end('timeout body\n');
    },
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { refreshOnFirstSubscription: false, firstSubscriptionRefreshMs: 0 });
  t.teardown(() => side.close());
  const pending = request(side.url('/poll'));
  await origin.waitForRequests(1);
  await whenLive(side.sidecar.bus, 'quiet');
  // The refresh would have been scheduled with the live event; a publish is handled after it.
  await request(`${side.controlUri}publish/`, {
    method: 'POST',
    body: JSON.stringify({ items: [{ channel: 'quiet', formats: { 'http-response': { body: 'done\n' } } }] }),
  });
  t.is((await pending).body, 'done\n');
  t.is(origin.seen.length, 1);
});

test('a WebSocket session asks its origin again when its channel goes live', async (t) => {
  let opened = false;
  const origin = await startWsOrigin((ws, _req, res) => {
    if (ws.isOpening()) {
      ws.accept();
      ws.subscribe('ws.room');
      opened = true;
    } else if (opened && !ws.canRecv()) {
      // The refresh request: nothing from the client, a chance to send what was missed.
      ws.send('caught up');
    }
    res.end();
  });
  t.teardown(() => origin.close());
  const side = await sidecarFor(origin.url, { firstSubscriptionRefreshMs: 0 });
  t.teardown(() => side.close());
  const client = await connectWs(side.url('/chat'));
  t.teardown(() => client.close());
  t.deepEqual(await logOf(client).waitForCount(1), ['caught up']);
  t.true(origin.seen.length >= 2, 'OPEN, then the refresh');
});
