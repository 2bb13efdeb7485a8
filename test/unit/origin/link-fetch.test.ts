import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { KgError } from '../../../sidecar/src/errors.js';
import { LinkFetcher, type LinkContext } from '../../../sidecar/src/origin/link-fetch.js';
import { createOutboundPolicy, type OutboundCheck } from '../../../sidecar/src/origin/outbound-policy.js';
import { FakeOrigin, originResponse } from '../holds/http-fakes.js';

const LINK = 'http://origin.test/next?page=2';
/** The chain the fetches belong to: the client request was forwarded here. */
const CHAIN: LinkContext = { requestUrl: new URL('http://origin.test/first') };
const POLICY = createOutboundPolicy({ listeners: [{ host: '127.0.0.1', port: 7999 }, { host: '127.0.0.1', port: 5561 }] });

function fetcher(maxBodyBytes = 100, policy: OutboundCheck = POLICY) {
  const origin = new FakeOrigin();
  const links = new LinkFetcher(origin, maxBodyBytes, () => policy);
  const fetch = links.fetch.bind(links);
  // Every fetch below belongs to CHAIN unless a test says otherwise.
  const fetchInChain = (url: string, lastIds: ReadonlyMap<string, string>, context: LinkContext = CHAIN) => fetch(url, lastIds, context);
  return { origin, links: { fetch: fetchInChain } };
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

/** `sent`: requests the test made before this one (and that were not refused). */
const refusal = async (t: ExecutionContext, page: Promise<unknown>, origin: FakeOrigin, reason: string, sent = 0) => {
  const err = await page.then(() => undefined, (e: unknown) => e);
  t.true(err instanceof KgError && err.code === 'KG_ERR_LINK_REFUSED', String(err));
  t.regex((err as Error).message, new RegExp(reason));
  t.is(origin.calls.length, sent, 'nothing was sent');
};

test('a link to another origin is refused before anything is sent', async (t) => {
  const { origin, links } = fetcher();
  await refusal(t, links.fetch('http://internal.test/admin', new Map()), origin, 'other_origin');
  await refusal(t, links.fetch('http://origin.test:8080/x', new Map()), origin, 'other_origin');
});

test('a link to the sidecar\'s own control or client port is refused, in any loopback spelling', async (t) => {
  const { origin, links } = fetcher();
  for (const url of ['http://127.0.0.1:5561/metrics', 'http://localhost:7999/x', 'http://[::1]:5561/metrics', 'http://127.1:5561/metrics']) {
    await refusal(t, links.fetch(url, new Map()), origin, 'own_listener');
  }
});

test('every link of a chain is checked against the request the client made, not the previous page', async (t) => {
  const { origin, links } = fetcher();
  const page = links.fetch(LINK, new Map());
  (await origin.nextCall()).answer(originResponse(200, [['Grip-Link', '<http://elsewhere.test/p3>; rel=next']], 'page'));
  const next = (await page).instruct?.nextLink?.url as string;
  t.is(next, 'http://elsewhere.test/p3');
  await refusal(t, links.fetch(next, new Map()), origin, 'other_origin', 1);
});

test('with an allow-list (Kong mode), a link under an entry is fetched', async (t) => {
  const policy = createOutboundPolicy({ allowedOrigins: ['http://other.test/api'], listeners: [] });
  const { origin, links } = fetcher(100, policy);
  const page = links.fetch('http://other.test/api/page', new Map());
  const call = await origin.nextCall();
  t.is(call.req.url.href, 'http://other.test/api/page');
  call.answer(originResponse(200, [], 'ok'));
  await page;
  await refusal(t, links.fetch('http://other.test/admin', new Map()), origin, 'other_origin', 1);
});

test('fails closed while the policy is not built yet', async (t) => {
  const none = new FakeOrigin();
  const unready = new LinkFetcher(none, 100, () => undefined);
  await refusal(t, unready.fetch(LINK, new Map(), CHAIN), none, 'not ready');
});

test('the stream\'s abort signal reaches the origin request', async (t) => {
  const { origin, links } = fetcher();
  const abort = new AbortController();
  const page = links.fetch(LINK, new Map(), { ...CHAIN, signal: abort.signal });
  const call = await origin.nextCall();
  t.is(call.req.signal, abort.signal);
  call.answer(originResponse(200, [], 'ok'));
  await page;
});
