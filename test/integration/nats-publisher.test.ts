import test from 'ava';
import { withDeadline } from '../../bench/proc.js';
import { whenLive } from '../../sidecar/src/bus/bus.js';
import { createPublisher, publish, sseEvent } from '../../sidecar/src/publish/publisher.js';
import { openStream, request, waitForEach } from '../helpers/http.js';
import { startChannelOrigin, TEST_SIG_KEY } from '../helpers/nats-e2e.js';
import { NatsServer } from '../helpers/nats-server.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

// kong-grip/publish against a real sidecar on a real NATS: the same typed items reach clients
// whether they go straight into NATS or through the sidecar's publish API.

let nats: NatsServer;
test.before(async () => {
  nats = await NatsServer.start();
});
test.after.always(async () => {
  await nats?.dispose();
});

async function setup(t: { teardown(fn: () => unknown): void }, extra: Record<string, unknown> = {}) {
  const origin = await startChannelOrigin();
  t.teardown(() => origin.close());
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, nats: nats.url, ...extra });
  t.teardown(() => side.close());
  return side;
}

test('publishes typed items into NATS, in order, to clients of the sidecar', async (t) => {
  const side = await setup(t);
  const stream = await openStream(side.url('/sse?ch=user.7'));
  t.teardown(() => stream.close());
  await stream.waitFor('event: open\n');
  await whenLive(side.sidecar.bus, 'user.7');
  const publisher = createPublisher({ nats: { servers: nats.url } });
  t.teardown(() => publisher.close());
  await publisher.publish({ channel: 'user.7', httpStream: { content: sseEvent({ data: 'one', id: '1' }) } });
  await publisher.publish([
    { channel: 'user.7', httpStream: { content: sseEvent({ data: 'two' }) } },
    { channel: 'user.7', httpStream: { content: new Uint8Array(Buffer.from('data: three\n\n')) } },
  ]);
  await stream.waitFor('data: three\n\n');
  t.is(stream.text, 'event: open\ndata:\n\nid: 1\ndata: one\n\ndata: two\n\ndata: three\n\n');
});

test('publishes through the sidecar HTTP API with a token, and reports refusals by code', async (t) => {
  const side = await setup(t, { publishToken: 'secret-token-1' });
  const pending = request(side.url('/poll?ch=jobs'));
  await waitForSubscribers(side.sidecar.hub, 'jobs', 1);
  await whenLive(side.sidecar.bus, 'jobs');
  await publish({ http: { url: side.controlUri, token: 'secret-token-1' } }, {
    channel: 'jobs', httpResponse: { code: 202, headers: { 'X-Job': '9' }, body: 'job 9 done\n' },
  });
  const res = await pending;
  t.is(res.status, 202);
  t.is(res.headers['x-job'], '9');
  t.is(res.body, 'job 9 done\n');

  await t.throwsAsync(publish({ http: { url: side.controlUri, token: 'wrong-token' } }, { channel: 'jobs', httpStream: { content: 'x' } }), {
    code: 'KG_ERR_PUBLISH_UNAUTHORIZED', message: /answered 401/,
  });
  await t.throwsAsync(publish({ http: { url: side.controlUri } }, { channel: 'jobs' }), {
    code: 'KG_ERR_PUBLISH_INVALID', message: /items\[0\]: no formats specified/,
  });
});

test('fails with KG_ERR_BUS_UNAVAILABLE when NATS cannot be reached in time', async (t) => {
  const down = await NatsServer.start();
  t.teardown(() => down.dispose());
  await down.stop();
  await t.throwsAsync(publish({ nats: { servers: down.url, connectTimeoutMs: 300 } }, { channel: 'x', httpStream: { content: 'y' } }), {
    code: 'KG_ERR_BUS_UNAVAILABLE', message: /not connected within 300 ms/,
  });
});

test('publishes under a custom subject prefix that sidecars share', async (t) => {
  const side = await setup(t, { nats: { servers: nats.url, subjectPrefix: 'app.rt.' } });
  const stream = await withDeadline(openStream(side.url('/sse?ch=room 1')), 5000, 'the response head');
  t.teardown(() => stream.close());
  await waitForEach([stream], 'event: open\n');
  await withDeadline(whenLive(side.sidecar.bus, 'room 1'), 5000, "the NATS subscription of 'room 1'");
  t.true((await nats.subjects()).includes('app.rt.room%201'));
  await publish({ nats: { servers: [nats.url], subjectPrefix: 'app.rt' } }, { channel: 'room 1', httpStream: { content: 'data: hi\n\n' } });
  await waitForEach([stream], 'data: hi\n\n');
  t.is(stream.text, 'event: open\ndata:\n\ndata: hi\n\n');
});
