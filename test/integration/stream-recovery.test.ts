import test from 'ava';
import { Publisher } from '@fanoutio/grip';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

test('a gap in the item chain makes the stream fetch its next link with Grip-Last and splice the answer in (spec A.2)', async (t) => {
  const origin = await startGripOrigin({
    '/feed': (req, res) => {
      res.setHeader('Content-Type', 'text/event-stream');
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'feed; prev-id=9');
      res.setHeader('Grip-Link', '</feed/recover?after=9>; rel=next; timeout=120');
      res.end('event: open\ndata:\n\n');
    },
    '/feed/recover': (req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'feed; prev-id=12');
      res.setHeader('Grip-Link', '</feed/recover?after=12>; rel=next; timeout=120');
      res.end('data: eleven\n\ndata: twelve\n\n');
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const publisher = new Publisher({ control_uri: side.controlUri });
  const stream = await openStream(side.url('/feed'), { Cookie: 'session=1' });
  await stream.waitFor('event: open\n');
  await waitForSubscribers(side.sidecar.hub, 'feed', 1);
  await publisher.publishHttpStream('feed', 'data: ten\n\n', '10', '9');
  await stream.waitFor('data: ten\n\n');
  await publisher.publishHttpStream('feed', 'data: twelve-pushed\n\n', '12', '11'); // 11 never arrives
  await stream.waitFor('data: twelve\n\n');
  const recover = origin.seen[1];
  t.is(recover?.url, '/feed/recover?after=9');
  t.is(recover?.headers['grip-last'], 'feed; last-id=10');
  t.is(recover?.headers.cookie, undefined);
  // The stream goes on from the recovered position.
  await publisher.publishHttpStream('feed', 'data: thirteen\n\n', '13', '12');
  const text = await stream.waitFor('data: thirteen\n\n');
  t.is(text, 'event: open\ndata:\n\ndata: ten\n\ndata: eleven\n\ndata: twelve\n\ndata: thirteen\n\n');
  stream.close();
});

test('a hint on a stream fetches the next link instead of carrying content', async (t) => {
  const origin = await startGripOrigin({
    '/s': (req, res) => {
      res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'hs');
      res.setHeader('Grip-Link', '</s/more>; rel=next'); res.end('start\n');
    },
    '/s/more': (req, res) => {
      res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'hs'); res.end('pulled from origin\n');
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const stream = await openStream(side.url('/s'));
  await waitForSubscribers(side.sidecar.hub, 'hs', 1);
  await fetch(`${side.controlUri}publish/`, {
    method: 'POST', body: JSON.stringify({ items: [{ channel: 'hs', formats: { 'http-stream': { action: 'hint' } } }] }),
  });
  t.is(await stream.waitFor('pulled from origin\n'), 'start\npulled from origin\n');
  t.is(origin.seen.length, 2);
  stream.close();
});
