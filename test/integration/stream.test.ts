import test from 'ava';
import { HttpStreamFormat, Publisher } from '@fanoutio/grip';
import { EventSource } from 'eventsource';
import { withDeadline } from '../../bench/proc.js';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

const setup = async () => {
  const origin = await startGripOrigin({
    '/events': (req, res) => {
      const instruct = res.grip!.startInstruct();
      instruct.addChannel('feed');
      instruct.setHoldStream();
      res.setHeader('Content-Type', 'text/event-stream');
      res.end('event: open\ndata:\n\n');
    },
    '/stream': (req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'raw');
      res.setHeader('Grip-Keep-Alive', '\\n; format=cstring; timeout=1');
      res.setHeader('Content-Type', 'text/plain');
      res.end('stream open\n');
    },
    '/big': (req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'big');
      res.write('a'.repeat(100_000));
      res.end('b'.repeat(10_000) + '\n');
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  const publisher = new Publisher({ control_uri: side.controlUri });
  return { origin, side, publisher, close: async () => { await side.close(); await origin.close(); } };
};

test('an EventSource client gets the initial event and every published event in order', async (t) => {
  const { side, publisher, close } = await setup();
  t.teardown(close);
  const es = new EventSource(side.url('/events'));
  t.teardown(() => es.close());
  const received: string[] = [];
  const gotAll = new Promise<void>((resolve) => {
    es.addEventListener('message', (e) => { received.push(e.data); if (received.length === 20) resolve(); });
  });
  await new Promise<void>((resolve) => es.addEventListener('open', () => resolve()));
  await waitForSubscribers(side.sidecar.hub, 'feed', 1);
  for (let i = 0; i < 20; i++) await publisher.publishHttpStream('feed', `data: m${i}\n\n`);
  await gotAll;
  t.deepEqual(received, Array.from({ length: 20 }, (_, i) => `m${i}`));
});

test('a stream is chunked, keeps the origin headers, gets keep-alives, and ends on a close item', async (t) => {
  const { side, publisher, close } = await setup();
  t.teardown(close);
  const stream = await openStream(side.url('/stream'));
  t.is(stream.res.statusCode, 200);
  t.is(stream.res.headers['content-type'], 'text/plain');
  t.is(stream.res.headers['transfer-encoding'], 'chunked');
  t.is(stream.res.headers['grip-hold'], undefined);
  await stream.waitFor('stream open\n');
  await stream.waitFor('stream open\n\n'); // the cstring keep-alive after 1 s of silence
  await waitForSubscribers(side.sidecar.hub, 'raw', 1);
  await publisher.publishHttpStream('raw', 'hello world\n');
  await stream.waitFor('hello world\n');
  await publisher.publishFormats('raw', new HttpStreamFormat(null, true));
  const text = await stream.waitForEnd();
  t.true(stream.res.complete, 'the response ended with a terminating chunk');
  t.true(text.startsWith('stream open\n\n'));
  t.true(text.endsWith('hello world\n'));
  await waitForSubscribers(side.sidecar.hub, 'raw', 0);
});

test('a stream-hold body larger than the buffered limit is relayed completely', async (t) => {
  const { side, publisher, close } = await setup();
  t.teardown(close);
  const stream = await openStream(side.url('/big'));
  await stream.waitFor('b'.repeat(10_000) + '\n');
  await waitForSubscribers(side.sidecar.hub, 'big', 1);
  await publisher.publishHttpStream('big', 'after\n');
  const text = await stream.waitFor('after\n');
  t.is(text.length, 100_000 + 10_001 + 6);
  stream.close();
});

test('a client that disconnects is unsubscribed', async (t) => {
  const { side, close } = await setup();
  t.teardown(close);
  const stream = await withDeadline(openStream(side.url('/events')), 5000, 'the /events response head');
  await waitForSubscribers(side.sidecar.hub, 'feed', 1);
  t.is(side.sidecar.hub.channelCount(), 1);
  stream.close();
  await waitForSubscribers(side.sidecar.hub, 'feed', 0);
  t.is(side.sidecar.hub.subscriberCount('feed'), 0);
  t.is(side.sidecar.hub.channelCount(), 0, 'no channel is left with a subscriber');
});
