import test from 'ava';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { KgError } from '../../../sidecar/src/errors.js';
import type { ChannelSub, Instruct, KeepAlive, Link } from '../../../sidecar/src/grip/types.js';
import { StreamHold } from '../../../sidecar/src/holds/stream-hold.js';
import { fakePorts, FakeResponse, metricValue, NOTHING_HELD, originResponse, settle, stillHeld, streamItem, until } from './http-fakes.js';

const channel = (name: string, prevId?: string): ChannelSub => ({ name, filters: [], ...(prevId === undefined ? {} : { prevId }) });
const LINK: Link = { url: 'http://origin.test/next', timeoutSec: 10 };

interface Options {
  channels?: ChannelSub[];
  initialBody?: Buffer | IncomingMessage;
  keepAlive?: KeepAlive;
  nextLink?: Link;
  maxQueueItems?: number;
  maxQueueBytes?: number;
  goneLink?: { url: string; requestUrl: URL };
}

/** Where the stream's client request was forwarded. */
const REQUEST_URL = new URL('http://origin.test/stream');

function streaming(options: Options = {}) {
  const ports = fakePorts({
    ...(options.maxQueueItems === undefined ? {} : { maxQueueItems: options.maxQueueItems }),
    ...(options.maxQueueBytes === undefined ? {} : { maxQueueBytes: options.maxQueueBytes }),
  });
  const res = new FakeResponse();
  const hold = new StreamHold(ports.streamHolds, res.asResponse(), {
    code: 200, reason: 'OK', headers: [['Content-Type', 'text/event-stream']],
    initialBody: options.initialBody ?? Buffer.from('event: open\n\n'),
    channels: options.channels ?? [channel('a')],
    ...(options.keepAlive ? { keepAlive: options.keepAlive } : {}),
    ...(options.nextLink ? { nextLink: options.nextLink } : {}),
    requestUrl: REQUEST_URL,
    ...(options.goneLink ? { goneLink: options.goneLink } : {}),
  });
  return { ...ports, res, hold };
}

/** A next-link page with a stream hold on these channels (and optionally a further link). */
function holdPage(body: string, channels: ChannelSub[], nextLink?: Link) {
  const instruct: Instruct = { code: 200, reason: 'OK', headers: [], meta: {}, hold: { mode: 'stream', channels, timeoutSec: 55 }, ...(nextLink ? { nextLink } : {}) };
  return { instruct, body: Buffer.from(body) };
}

test('writes the head and the initial body at once, then appends published content', async (t) => {
  const { res, hub, metrics, streamSent } = streaming();
  t.is(res.statusCode, 200);
  t.is(res.header('content-type'), 'text/event-stream');
  t.is(res.body, 'event: open\n\n');
  t.deepEqual(hub.channels(), ['a']);
  hub.publish(streamItem('a', 'data: 1\n\n'));
  hub.publish(streamItem('a', 'data: 2\n\n'));
  t.is(res.body, 'event: open\n\ndata: 1\n\ndata: 2\n\n');
  t.is(streamSent(), 2);
  t.false(res.writableEnded);
  t.is(await metricValue(metrics.connections, { kind: 'stream' }), 1);
});

test('an initial body still arriving is relayed as it comes; items wait behind it, in order', async (t) => {
  const body = originResponse(200, [], '', { streaming: true });
  const { res, hub } = streaming({ initialBody: body });
  body.write('part 1\n');
  await until(res, 'data', () => res.body === 'part 1\n');
  hub.publish(streamItem('a', 'item\n'));
  t.is(res.body, 'part 1\n', 'the item waits for the origin body');
  body.end('part 2\n');
  await until(res, 'data', () => res.body.endsWith('item\n'));
  t.is(res.body, 'part 1\npart 2\nitem\n');
});

test('keep-alives go on the shared wheel; each one writes the keep-alive content', async (t) => {
  const keepAlive: KeepAlive = { content: Buffer.from(':\n'), mode: 'idle', timeoutSec: 20 };
  const { res, hold, keepAlives, hub } = streaming({ keepAlive });
  t.is(keepAlives.members.get(hold), 20_000);
  hold.sendKeepAlive(); // as the wheel does when the stream has been quiet
  t.is(res.body, 'event: open\n\n:\n');
  keepAlives.tick = 7;
  hub.publish(streamItem('a', 'data: x\n\n'));
  t.is(hold.keepAliveMark, 7, 'a data write restarts the idle wait');
  res.destroy();
  await once(res, 'close');
  t.false(keepAlives.members.has(hold));
});

test('a close item ends the stream cleanly and releases subscriptions, keep-alive and timer', async (t) => {
  const keepAlive: KeepAlive = { content: Buffer.from(':\n'), mode: 'interval', timeoutSec: 20 };
  const { res, hold, hub, clock, keepAlives, holds, metrics } = streaming({ keepAlive, nextLink: LINK, channels: [channel('a'), channel('b')] });
  t.is(clock.pending, 1, 'the next-link timer');
  hub.publish(streamItem('b', '', {}, 'close'));
  t.true(res.writableEnded);
  t.false(res.destroyed);
  t.deepEqual(hub.channels(), []);
  t.false(keepAlives.members.has(hold));
  t.is(clock.pending, 0);
  t.is(holds.size, 0);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'stream', reason: 'closed_by_publish' }), 1);
});

test('the next link is fetched after its idle timeout, with Grip-Last, and its page appended', async (t) => {
  const { res, hub, clock, links } = streaming({ channels: [channel('a', '1')], nextLink: LINK });
  clock.advance(6_000);
  hub.publish(streamItem('a', 'data: 2\n\n', { id: '2', prevId: '1' }));
  clock.advance(9_999);
  t.is(links.fetches.length, 0, 'each item re-arms the timer');
  clock.advance(1);
  const fetch = await links.nextFetch();
  t.is(fetch.url, LINK.url);
  t.deepEqual(fetch.lastIds, new Map([['a', '2']]));
  t.is(fetch.requestUrl, REQUEST_URL, 'checked against the client request');
  fetch.page.resolve(holdPage('page\n', [channel('a'), channel('c')], { url: 'http://origin.test/next2', timeoutSec: 5 }));
  await until(res, 'data', () => res.body.endsWith('page\n'));
  await settle();
  t.deepEqual(hub.channels(), ['a', 'c']);
  clock.advance(5_000);
  const second = await links.nextFetch();
  t.is(second.url, 'http://origin.test/next2');
  t.is(second.requestUrl, REQUEST_URL, 'a later link of the chain too, not the page that named it');
});

test('paged streaming: with no channels the next links are followed until a page has none', async (t) => {
  const { res, links, metrics } = streaming({ channels: [], nextLink: LINK });
  const first = await links.nextFetch();
  t.deepEqual(first.lastIds, new Map());
  first.page.resolve({ instruct: { code: 200, reason: 'OK', headers: [], meta: {}, nextLink: { url: 'http://origin.test/p2', timeoutSec: 120 } }, body: Buffer.from('page 1\n') });
  const second = await links.nextFetch();
  t.is(second.url, 'http://origin.test/p2');
  second.page.resolve({ body: originResponse(200, [], 'page 2\n') });
  await until(res, 'finish', () => res.writableEnded);
  t.is(res.body, 'event: open\n\npage 1\npage 2\n');
  t.is(await metricValue(metrics.holdsClosed, { kind: 'stream', reason: 'completed' }), 1);
});

test('a prev-id gap fetches the next link instead of delivering out of order; later items follow the page', async (t) => {
  const { res, hub, links } = streaming({ channels: [channel('a', '1')], nextLink: LINK });
  hub.publish(streamItem('a', 'data: 5\n\n', { id: '5', prevId: '4' }));
  const fetch = await links.nextFetch();
  t.deepEqual(fetch.lastIds, new Map([['a', '1']]));
  t.is(res.body, 'event: open\n\n', 'the item after the gap is not delivered');
  hub.publish(streamItem('a', 'data: 6\n\n', { id: '6', prevId: '5' }));
  fetch.page.resolve(holdPage('data: 2..5\n\n', [channel('a', '5')]));
  await until(res, 'data', () => res.body.includes('data: 6'));
  t.is(res.body, 'event: open\n\ndata: 2..5\n\ndata: 6\n\n');
});

test('recover() fetches the next link; without a next link there is nothing to recover from', async (t) => {
  const withLink = streaming({ channels: [channel('a', '1')], nextLink: LINK });
  withLink.hub.recover('a');
  t.deepEqual((await withLink.links.nextFetch()).lastIds, new Map([['a', '1']]));
  const without = streaming({ channels: [channel('a', '1')] });
  without.hub.recover('a');
  await settle();
  t.is(without.links.fetches.length, 0);
  t.false(without.res.writableEnded);
});

test('a failing next link is tried again with backoff, then the stream ends', async (t) => {
  const { res, clock, links, metrics } = streaming({ channels: [channel('a')], nextLink: LINK });
  clock.advance(10_000);
  for (let attempt = 1; attempt <= 5; attempt++) {
    (await links.nextFetch()).page.reject(new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'down'));
    await settle();
    if (attempt < 5) {
      t.is(links.fetches.length, attempt, 'waits before trying again');
      t.true(clock.runNext());
    }
  }
  await until(res, 'finish', () => res.writableEnded);
  t.is(links.fetches.length, 5);
  t.is(await metricValue(metrics.originErrors, { kind: 'next_link' }), 5);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'stream', reason: 'origin_error' }), 1);
});

test('drain ends the stream cleanly so an EventSource reconnects elsewhere', async (t) => {
  const { res, holds, hub, metrics } = streaming();
  holds.drainAll();
  t.true(res.writableEnded);
  t.false(res.destroyed);
  t.deepEqual(hub.channels(), []);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'stream', reason: 'shutdown' }), 1);
});

test('the client going away releases the subscriptions and the next-link timer', async (t) => {
  const ports = streaming({ channels: [channel('a'), channel('b')], nextLink: LINK });
  const { res, metrics } = ports;
  res.destroy();
  await once(res, 'close');
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'stream', reason: 'client_gone' }), 1);
});

test('too many items while the origin body is still arriving close the stream as a slow consumer', async (t) => {
  const body = originResponse(200, [], '', { streaming: true });
  const { res, hub, metrics } = streaming({ initialBody: body, maxQueueItems: 2 });
  for (let i = 0; i < 3; i++) hub.publish(streamItem('a', `data: ${i}\n\n`));
  t.true(res.destroyed);
  t.deepEqual(hub.channels(), []);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'stream', reason: 'slow_consumer' }), 1);
});

test('a client whose unsent bytes pass maxQueueBytes is dropped as a slow consumer', async (t) => {
  const { res, hub } = streaming({ maxQueueBytes: 10 });
  res.writableLength = 11; // the client is not reading
  hub.publish(streamItem('a', 'data: x\n\n'));
  t.true(res.destroyed);
  t.deepEqual(hub.channels(), []);
});

test('a client that leaves while the initial body is still arriving destroys that origin body (D10)', async (t) => {
  const body = originResponse(200, [], '', { streaming: true });
  const ports = streaming({ initialBody: body });
  body.write('part 1\n');
  await until(ports.res, 'data', () => ports.res.body === 'part 1\n');
  ports.res.destroy();
  await once(ports.res, 'close');
  t.true(body.destroyed, 'the origin response is not left open');
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
  t.is(await metricValue(ports.metrics.connections, { kind: 'stream' }), 0);
  t.is(await metricValue(ports.metrics.holdsClosed, { kind: 'stream', reason: 'client_gone' }), 1);
});

test('a client that leaves during a next-link fetch cancels it; a page that arrives anyway is destroyed unread (D3, D10)', async (t) => {
  const ports = streaming({ channels: [channel('a')], nextLink: LINK });
  ports.clock.advance(10_000);
  const fetch = await ports.links.nextFetch();
  t.false(fetch.signal?.aborted ?? true, 'the fetch can be cancelled');
  ports.res.destroy();
  await once(ports.res, 'close');
  t.true(fetch.signal?.aborted, 'the fetch is cancelled');
  const page = originResponse(200, [], '', { streaming: true });
  fetch.page.resolve({ body: page });
  await settle();
  t.true(page.destroyed);
  t.is(ports.links.fetches.length, 1, 'no further link followed');
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
  t.is(await metricValue(ports.metrics.originErrors, { kind: 'next_link' }), 0);
});

test('a client that leaves while a failed next link waits to be tried again stops the retries and their timer (D3, D10)', async (t) => {
  const ports = streaming({ channels: [channel('a')], nextLink: LINK });
  ports.clock.advance(10_000);
  (await ports.links.nextFetch()).page.reject(new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'down'));
  await settle();
  t.is(ports.clock.pending, 1, 'the backoff timer');
  ports.res.destroy();
  await once(ports.res, 'close');
  await settle();
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
  t.is(ports.links.fetches.length, 1);
});

test('paging through next links stops when the client leaves mid-page (D3, D10)', async (t) => {
  const ports = streaming({ channels: [], nextLink: LINK });
  const fetch = await ports.links.nextFetch();
  const page = originResponse(200, [], '', { streaming: true });
  fetch.page.resolve({ body: page, instruct: { code: 200, reason: 'OK', headers: [], meta: {}, nextLink: LINK } });
  page.write('page 1\n');
  await until(ports.res, 'data', () => ports.res.body.endsWith('page 1\n'));
  ports.res.destroy();
  await once(ports.res, 'close');
  await settle();
  t.true(page.destroyed);
  t.is(ports.links.fetches.length, 1);
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
});

const GONE = { url: 'http://origin.test/gone', requestUrl: REQUEST_URL };

test('gone link: sent once when the client leaves, when it is too slow, and on shutdown', async (t) => {
  const left = streaming({ goneLink: GONE });
  left.res.destroy();
  await once(left.res, 'close');
  t.deepEqual(left.gone.sent, [GONE]);

  const slow = streaming({ goneLink: GONE, maxQueueBytes: 10 });
  slow.res.writableLength = 11;
  slow.hub.publish(streamItem('a', 'data: x\n\n'));
  await once(slow.res, 'close');
  t.deepEqual(slow.gone.sent, [GONE]);

  const drained = streaming({ goneLink: GONE });
  drained.holds.drainAll();
  await once(drained.res, 'close');
  t.deepEqual(drained.gone.sent, [GONE]);
});

test('gone link: never when the origin ends the stream, by a close item or by a last page', async (t) => {
  const closed = streaming({ goneLink: GONE });
  closed.hub.publish(streamItem('a', '', {}, 'close'));
  await once(closed.res, 'close');
  t.deepEqual(closed.gone.sent, []);

  const paged = streaming({ goneLink: GONE, channels: [], nextLink: LINK });
  (await paged.links.nextFetch()).page.resolve({ body: originResponse(200, [], 'last page\n') });
  await until(paged.res, 'finish', () => paged.res.writableEnded);
  await once(paged.res, 'close');
  t.deepEqual(paged.gone.sent, []);
});
