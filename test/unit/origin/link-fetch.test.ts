import test from 'ava';
import { once } from 'node:events';
import { KgError } from '../../../sidecar/src/errors.js';
import { LinkFetcher } from '../../../sidecar/src/origin/link-fetch.js';
import { FakeOrigin, originResponse } from '../holds/http-fakes.js';

const LINK = 'http://origin.test/next?page=2';

function fetcher(maxBodyBytes = 100) {
  const origin = new FakeOrigin();
  return { origin, links: new LinkFetcher(origin, maxBodyBytes) };
}

test('GETs the link with Grip-Last for each channel and nothing of the client', async (t) => {
  const { origin, links } = fetcher();
  const page = links.fetch(LINK, new Map([['a', '4'], ['b', '9']]));
  const call = await origin.nextCall();
  t.is(call.req.method, 'GET');
  t.is(call.req.url.href, LINK);
  t.deepEqual(call.req.headers, [['Grip-Last', 'a; last-id=4'], ['Grip-Last', 'b; last-id=9']]);
  t.is(call.body, undefined);
  const res = originResponse(200, [['Content-Type', 'text/event-stream']], 'data: page\n\n');
  call.answer(res);
  const fetched = await page;
  t.is(fetched.instruct, undefined, 'no GRIP headers, no instructions');
  t.is(fetched.body, res);
});

test('an answer other than 2xx fails the fetch and is drained', async (t) => {
  const { origin, links } = fetcher();
  const page = links.fetch(LINK, new Map());
  const res = originResponse(503, [], 'busy');
  const ended = once(res, 'end');
  (await origin.nextCall()).answer(res);
  const err = await page.then(() => undefined, (e: unknown) => e);
  t.true(err instanceof KgError && err.code === 'KG_ERR_ORIGIN_UNREACHABLE');
  t.is((err as Error).message, `next link ${LINK} answered 503`);
  await ended;
});

test('a page with a stream hold changes the hold; its body is appended as it arrives', async (t) => {
  const { origin, links } = fetcher();
  const page = links.fetch(LINK, new Map());
  const res = originResponse(200, [['Grip-Hold', 'stream'], ['Grip-Channel', 'c'], ['Grip-Link', '</next3>; rel=next']], 'more', { streaming: true });
  (await origin.nextCall()).answer(res);
  const fetched = await page;
  t.deepEqual(fetched.instruct?.hold?.channels.map((c) => c.name), ['c']);
  t.is(fetched.instruct?.nextLink?.url, 'http://origin.test/next3');
  t.is(fetched.body, res);
});

test('a JSON instruct page is read whole within the limit', async (t) => {
  const { origin, links } = fetcher(100);
  const page = links.fetch(LINK, new Map());
  const doc = { hold: { mode: 'stream', channels: [{ name: 'c' }] }, response: { body: 'json page' } };
  (await origin.nextCall()).answer(originResponse(200, [['Content-Type', 'application/grip-instruct']], JSON.stringify(doc)));
  const fetched = await page;
  t.is(fetched.body.toString(), 'json page');
  const tooLarge = links.fetch(LINK, new Map());
  (await origin.nextCall()).answer(originResponse(200, [['Content-Type', 'application/grip-instruct']], JSON.stringify({ ...doc, pad: 'x'.repeat(100) })));
  const err = await tooLarge.then(() => undefined, (e: unknown) => e);
  t.true(err instanceof KgError && err.code === 'KG_ERR_INSTRUCT_TOO_LARGE');
});

test('a page that asks for a response hold is invalid', async (t) => {
  const { origin, links } = fetcher();
  const page = links.fetch(LINK, new Map());
  (await origin.nextCall()).answer(originResponse(200, [['Grip-Hold', 'response'], ['Grip-Channel', 'c']]));
  const err = await page.then(() => undefined, (e: unknown) => e);
  t.true(err instanceof KgError && err.code === 'KG_ERR_INSTRUCT_INVALID');
});

test('an origin failure is passed on', async (t) => {
  const { origin, links } = fetcher();
  const page = links.fetch(LINK, new Map());
  (await origin.nextCall()).fail(new KgError('KG_ERR_ORIGIN_TIMEOUT', 'slow'));
  const err = await page.then(() => undefined, (e: unknown) => e);
  t.true(err instanceof KgError && err.code === 'KG_ERR_ORIGIN_TIMEOUT');
});
