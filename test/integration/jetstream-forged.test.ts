import test, { type ExecutionContext } from 'ava';
import { connect, headers as natsHeaders } from 'nats';
import type { BusEvent } from '../../sidecar/src/bus/bus.js';
import { channelToSubject } from '../../sidecar/src/bus/subject.js';
import { within } from '../helpers/buses.js';
import { startFeedOrigin } from '../helpers/feed-origin.js';
import { openStream } from '../helpers/http.js';
import { NatsServer } from '../helpers/nats-server.js';
import { JetStreamPublisher, numberedItem, sseNumbers, whenLive } from '../helpers/reliability.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

// D5: with history, live items arrive on the stream's republished copy (`grip.js.<token>`) and
// their headers say their stream sequence. A plain NATS message there can carry any headers; a
// sequence the stream has not reached must not become the channel's position (every later item
// would then be dropped as a duplicate while publishers still get 200).

/**
 * A history sidecar holding one SSE client on `feed` that has received item 1, a JetStream
 * publisher, and a forger: a plain NATS connection that writes to the history subject.
 */
async function setUp(t: ExecutionContext, stream: string) {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startFeedOrigin();
  t.teardown(() => origin.close());
  const side = await startTestSidecar({
    origin: origin.url, nats: { servers: nats.url, reconnectWaitMs: 100, jetstream: { stream, storage: 'memory' } },
  });
  t.teardown(() => side.close());
  const invalid: Array<Extract<BusEvent, { type: 'payload-invalid' }>> = [];
  side.sidecar.bus.listen((e) => {
    if (e.type === 'payload-invalid') invalid.push(e);
  });
  const publisher = await JetStreamPublisher.connect(nats.url);
  t.teardown(() => publisher.close());
  const client = await openStream(side.url('/sse?ch=feed'));
  t.teardown(() => client.close());
  await waitForSubscribers(side.sidecar.hub, 'feed', 1);
  await within('feed live', whenLive(side.sidecar.bus, 'feed'));
  await publisher.publish('feed', [numberedItem(1)]);
  await within('item 1', client.waitFor('data: 1\n'));
  // Anyone allowed to publish on the history subject (here: no permissions at all).
  const forger = await connect({ servers: nats.url });
  t.teardown(() => forger.close());
  const forge = async (sequences: Record<string, string>): Promise<void> => {
    const h = natsHeaders();
    for (const [name, value] of Object.entries(sequences)) h.set(name, value);
    forger.publish(channelToSubject('grip.js.', 'feed'), JSON.stringify({ formats: { 'http-stream': { content: 'data: forged\n\n' } } }), { headers: h });
    await forger.flush();
  };
  return { invalid, publisher, client, forge };
}

test('a forged history message claiming sequence 9000000000000 is ignored and counted; later items still reach the client', async (t) => {
  const { invalid, publisher, client, forge } = await setUp(t, 'FORGED');
  await forge({
    'Nats-Stream': 'FORGED', 'Nats-Subject': channelToSubject('grip.ch.', 'feed'), 'Nats-Sequence': '9000000000000', 'Nats-Last-Sequence': '1',
  });

  await publisher.publish('feed', [numberedItem(2), numberedItem(3)]);
  await within('items 2 and 3 after the forged message', client.waitFor('data: 3\n'), 5000);
  t.deepEqual(sseNumbers(client.text), [1, 2, 3]);
  t.false(client.text.includes('forged'), 'the forged item is not delivered');
  await within('the forged message reported', (async () => {
    while (invalid.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  })(), 5000);
  t.is(invalid[0]!.subject, channelToSubject('grip.js.', 'feed'));
  t.regex(invalid[0]!.error.message, /9000000000000/);
});

test('a forged history message whose previous-sequence header is ahead of its own sequence is not delivered and hides nothing', async (t) => {
  const { publisher, client, forge } = await setUp(t, 'FORGED2');
  await forge({ 'Nats-Sequence': '1', 'Nats-Last-Sequence': '9000000000000' });
  await publisher.publish('feed', [numberedItem(2)]);
  await within('item 2 after the forged message', client.waitFor('data: 2\n'), 5000);
  t.deepEqual(sseNumbers(client.text), [1, 2]);
  t.false(client.text.includes('forged'));
});
