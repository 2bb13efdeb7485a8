import test from 'ava';
import { HttpResponseFormat, Publisher } from '@fanoutio/grip';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

const setup = async () => {
  const origin = await startGripOrigin({
    '/poll': (req, res) => {
      const instruct = res.grip!.startInstruct();
      instruct.addChannel('news');
      instruct.setHoldLongPoll(55);
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('X-Custom', 'foo');
      res.end('timeout body\n');
    },
    '/plain': (req, res) => { res.setHeader('Content-Type', 'text/plain'); res.end(`plain ${req.headers['x-client'] ?? ''}\n`); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  const publisher = new Publisher({ control_uri: side.controlUri });
  return { origin, side, publisher, close: async () => { await side.close(); await origin.close(); } };
};

test('a long-poll is answered by the published http-response, over the timeout response headers', async (t) => {
  const { origin, side, publisher, close } = await setup();
  t.teardown(close);
  const pending = request(side.url('/poll'));
  await origin.waitForRequests(1);
  // The hold is installed once the origin has answered; wait until the channel has a subscriber.
  await waitForSubscribers(side.sidecar.hub, 'news', 1);
  await publisher.publishFormats('news', new HttpResponseFormat({ code: '202', headers: { 'X-Pub': '1', 'Content-Type': 'application/json' }, body: '{"items":[42]}' }));
  const res = await pending;
  t.is(res.status, 202);
  t.is(res.reason, 'Accepted');
  t.is(res.body, '{"items":[42]}');
  t.is(res.headers['x-custom'], 'foo');
  t.is(res.headers['x-pub'], '1');
  t.is(res.headers['content-type'], 'application/json');
  t.is(res.headers['content-length'], String(Buffer.byteLength('{"items":[42]}')));
  t.is(Object.keys(res.headers).filter((h) => h.startsWith('grip-')).length, 0);
  t.true(origin.seen[0]?.isSigned, 'the origin validated the Grip-Sig');
  t.is(side.sidecar.hub.subscriberCount('news'), 0, 'the hold unsubscribed after answering');
});

test('publishHttpResponse with a plain string body reaches the held client', async (t) => {
  const { side, publisher, close } = await setup();
  t.teardown(close);
  const pending = request(side.url('/poll'));
  await waitForSubscribers(side.sidecar.hub, 'news', 1);
  await publisher.publishHttpResponse('news', 'hello world\n');
  const res = await pending;
  t.is(res.status, 200);
  t.is(res.body, 'hello world\n');
  t.is(res.headers['content-type'], 'text/plain');
});

test('a non-GRIP response is relayed unchanged, with the client Grip-* headers stripped before the origin', async (t) => {
  const { origin, side, close } = await setup();
  t.teardown(close);
  const res = await request(side.url('/plain'), { headers: { 'X-Client': 'c1', 'Grip-Sig': 'fake', 'Grip-Foo': 'evil' } });
  t.is(res.status, 200);
  t.is(res.body, 'plain c1\n');
  const seen = origin.seen[0];
  t.truthy(seen);
  t.not(seen?.headers['grip-sig'], 'fake');
  t.is(seen?.headers['grip-foo'], undefined);
  t.true(seen?.isSigned);
  // Pushpin 1.41's list without `session` (GRIP session ids are not implemented).
  t.is(seen?.headers['grip-feature'],
    'status, link:next, link:gone, filter:skip-self, filter:skip-users, filter:require-sub, filter:build-id, filter:var-subst');
});
