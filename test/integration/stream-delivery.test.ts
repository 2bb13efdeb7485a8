import test from 'ava';
import type { ServerResponse } from 'node:http';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

// How published items and the origin's initial body reach held streams: publishes answered
// before the fan-out, items of back-to-back publishes sent together, the initial body written
// with the head or, when it comes later, as it comes.

const publishItems = (controlUri: string, channel: string, texts: string[]) => request(`${controlUri}publish/`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ items: texts.map((content) => ({ channel, formats: { 'http-stream': { content } } })) }),
});

test('every item of back-to-back publishes reaches each stream once, in publish order', async (t) => {
  const origin = await startGripOrigin({
    '/feed': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'burst');
      res.end('open\n');
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const streams = await Promise.all([1, 2, 3].map(() => openStream(side.url('/feed'))));
  t.teardown(() => { for (const s of streams) s.close(); });
  await waitForSubscribers(side.sidecar.hub, 'burst', 3);
  const expected: string[] = [];
  for (let request = 0; request < 20; request++) {
    const texts = Array.from({ length: 10 }, (_, i) => `m${request}-${i}\n`);
    expected.push(...texts);
    const answer = await publishItems(side.controlUri, 'burst', texts);
    t.is(answer.status, 200);
  }
  const last = expected[expected.length - 1] as string;
  for (const s of streams) {
    const text = await s.waitFor(last);
    t.is(text, `open\n${expected.join('')}`);
  }
});

test('an origin body that comes after the head is relayed as it comes, then published items follow', async (t) => {
  let originRes: ServerResponse | undefined;
  let onHeld: () => void = () => {};
  const held = new Promise<void>((resolve) => { onHeld = resolve; });
  const origin = await startGripOrigin({
    '/slow': (_req, res) => {
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', 'slow');
      res.flushHeaders(); // the head now, the body when the test says
      originRes = res;
      onHeld();
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const stream = await openStream(side.url('/slow'));
  t.teardown(() => stream.close());
  t.is(stream.res.statusCode, 200);
  await held;
  originRes?.write('first part\n');
  await stream.waitFor('first part\n');
  originRes?.end('second part\n');
  await stream.waitFor('second part\n');
  await waitForSubscribers(side.sidecar.hub, 'slow', 1);
  await publishItems(side.controlUri, 'slow', ['published\n']);
  t.is(await stream.waitFor('published\n'), 'first part\nsecond part\npublished\n');
});
