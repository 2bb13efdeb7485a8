import { EventEmitter, once } from 'node:events';
import test, { type ExecutionContext } from 'ava';
import { DEFAULT_WS, type WsSettings } from '../../../sidecar/src/config.js';
import { KgError } from '../../../sidecar/src/errors.js';
import type { DecodedWsEvent } from '../../../sidecar/src/grip/ws-events.js';
import type { HeaderList } from '../../../sidecar/src/grip/types.js';
import { WsOriginLink, type OpenRefusal, type OriginLinkOwner } from '../../../sidecar/src/holds/ws-origin-link.js';
import { createLogger } from '../../../sidecar/src/log.js';
import { createMetrics } from '../../../sidecar/src/metrics.js';
import type { WsOriginOutcome } from '../../../sidecar/src/origin/ws-origin.js';
import { FakeClock } from './fake-clock.js';
import { eventsReply, FakeOrigin, openReply, settle, text } from './ws-fakes.js';

// WsOriginLink on its own: a fake owner records what the link reports, the origin is answered by
// hand, and a fake clock runs retries and the Keep-Alive-Interval wheel.

const NO_EVENTS = eventsReply([]);
const UNREACHABLE: WsOriginOutcome = { type: 'failed', retryable: true, error: new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'refused') };

/** Records every report; emits its name so a test can wait for it. */
class RecordingOwner extends EventEmitter implements OriginLinkOwner {
  readonly reports: Array<[string, unknown?]> = [];
  accepted: { headers: HeaderList; events: DecodedWsEvent[] } | undefined;
  readonly replies: DecodedWsEvent[][] = [];
  /** Runs inside originAccepted / originEvents, as the session's handling would. */
  onEvents: (events: DecodedWsEvent[]) => void = () => undefined;

  private report(name: string, detail?: unknown): void {
    this.reports.push(detail === undefined ? [name] : [name, detail]);
    this.emit(name, detail);
  }

  originAccepted(headers: HeaderList, events: DecodedWsEvent[]): void {
    this.accepted = { headers, events };
    this.onEvents(events);
    this.report('accepted');
  }

  originRefused(refusal: OpenRefusal): void {
    this.report('refused', refusal);
  }

  originEvents(events: DecodedWsEvent[]): void {
    this.replies.push(events);
    this.onEvents(events);
    this.report('events');
  }

  originFailed(closeReason: string): void {
    this.report('failed', closeReason);
  }

  pauseClient(): void {
    this.report('pause');
  }

  resumeClient(): void {
    this.report('resume');
  }

  linkFailed(err: unknown): void {
    this.report('bug', err);
  }
}

function setup(t: ExecutionContext, ws: Partial<WsSettings> = {}) {
  const clock = new FakeClock();
  t.teardown(() => clock.close());
  const origin = new FakeOrigin();
  const owner = new RecordingOwner();
  const link = new WsOriginLink(
    { post: origin.post, metrics: createMetrics(), ws: { ...DEFAULT_WS, ...ws }, keepAlives: clock.wheel, clock },
    owner, new URL('http://origin.test/ws'), [['User-Agent', 'test'], ['Meta-User', 'forged']], 'conn-1', createLogger('silent'),
  );
  /** A link the origin has accepted. */
  const open = async (reply = openReply()) => {
    link.open();
    (await origin.call(1)).answer(reply);
    await once(owner, 'accepted');
  };
  return { clock, origin, owner, link, open };
}

test('OPEN goes out with the connection id and the replayed handshake headers; acceptance hands over the reply, OPEN first', async (t) => {
  const { origin, owner, link } = setup(t);
  link.open();
  const call = await origin.call(1);
  t.deepEqual(call.events, [{ type: 'OPEN' }]);
  t.true(call.headers.some(([k, v]) => k === 'Connection-Id' && v === 'conn-1'));
  t.true(call.headers.some(([k, v]) => k === 'User-Agent' && v === 'test'));
  t.false(call.headers.some(([k]) => k === 'Meta-User'), 'a client cannot forge meta');
  call.answer(openReply([text('hi')]));
  await once(owner, 'accepted');
  t.deepEqual(owner.accepted?.events, [{ type: 'OPEN' }, text('hi')]);
  t.true(owner.accepted?.headers.some(([k, v]) => k === 'Sec-WebSocket-Extensions' && v === 'grip'));
});

test('OPEN refusals: the origin\'s own answer, or failed for unreachable, a bad body, a 200 that is not websocket-events (D19), or a reply not starting with OPEN', async (t) => {
  const cases: Array<[WsOriginOutcome, OpenRefusal['type']]> = [
    [{ type: 'reply', status: 401, reason: 'Unauthorized', headers: [], body: Buffer.from('who?') }, 'refused'],
    [UNREACHABLE, 'failed'],
    [{ type: 'reply', status: 200, reason: 'OK', headers: [['Content-Type', 'application/websocket-events']], body: Buffer.from('TEXT 99\r\nshort') }, 'failed'],
    [{ type: 'reply', status: 200, reason: 'OK', headers: [['Content-Type', 'text/html']], body: Buffer.from('OPEN\r\n') }, 'failed'],
    [{ type: 'reply', status: 200, reason: 'OK', headers: [], body: Buffer.from('OPEN\r\n') }, 'failed'],
    [eventsReply([text('no OPEN')]), 'failed'],
  ];
  for (const [outcome, expected] of cases) {
    const { origin, owner, link } = setup(t);
    link.open();
    (await origin.call(1)).answer(outcome);
    const [refusal] = await once(owner, 'refused') as [OpenRefusal];
    t.is(refusal.type, expected);
    t.is(owner.accepted, undefined);
  }
});

test('an empty first reply with Keep-Alive-Interval defers the decision: OPEN is asked again after the interval', async (t) => {
  const { clock, origin, owner, link } = setup(t, { keepAliveMinSec: 1 });
  link.open();
  (await origin.call(1)).answer(eventsReply([], [['Keep-Alive-Interval', '1']]));
  await settle();
  clock.advance(900);
  t.is(origin.calls.length, 1);
  clock.advance(400);
  const again = await origin.call(2);
  t.deepEqual(again.events, [{ type: 'OPEN' }]);
  again.answer(openReply());
  await once(owner, 'accepted');
});

test('one request in flight: events sent meanwhile go in the next batch, in order, and replies reach the owner', async (t) => {
  const { origin, owner, link, open } = setup(t);
  await open();
  link.send(text('1'));
  const first = await origin.call(2);
  link.send(text('2'));
  link.send(text('3'));
  await settle();
  t.is(origin.calls.length, 2);
  first.answer(eventsReply([text('r1')]));
  const second = await origin.call(3);
  t.deepEqual(second.events, [text('2'), text('3')]);
  t.deepEqual(owner.replies, [[text('r1')]]);
});

test('past maxPendingBytes the owner pauses the client, and resumes it when the batch goes', async (t) => {
  const { origin, owner, link, open } = setup(t, { maxPendingBytes: 10 });
  await open();
  link.send(text('first'));
  const first = await origin.call(2);
  link.send(text('0123456789'));
  link.send(text('more'));
  t.deepEqual(owner.reports.filter(([name]) => name === 'pause'), [['pause']], 'paused once');
  first.answer(NO_EVENTS);
  await origin.call(3);
  t.deepEqual(owner.reports.slice(-1), [['resume']]);
});

test('Set-Meta headers of a reply are sent back on every later request', async (t) => {
  const { origin, link, open } = setup(t);
  await open(openReply([], [['Set-Meta-User', 'alice']]));
  link.send(text('x'));
  t.true((await origin.call(2)).headers.some(([k, v]) => k.toLowerCase() === 'meta-user' && v === 'alice'));
});

test('retries: a request that never reached the origin is sent again after the backoff; after the last retry the owner hears "origin unreachable"', async (t) => {
  const { clock, origin, owner, link, open } = setup(t, { retries: 2, retryBaseMs: 100 });
  await open();
  link.send(text('x'));
  (await origin.call(2)).answer(UNREACHABLE);
  link.send(text('y'));
  await settle();
  t.is(origin.calls.length, 2, 'nothing else goes out while a retry waits');
  clock.advance(200);
  const retry = await origin.call(3);
  t.deepEqual(retry.events, [text('x')]);
  retry.answer(UNREACHABLE);
  await settle();
  clock.advance(400);
  (await origin.call(4)).answer(UNREACHABLE);
  const [reason] = await once(owner, 'failed');
  t.is(reason, 'origin unreachable');
});

test('a failure that may have reached the origin, or a reply that is not websocket-events, fails the link at once', async (t) => {
  const failures: Array<[WsOriginOutcome, string]> = [
    [{ type: 'failed', retryable: false, error: new KgError('KG_ERR_ORIGIN_TIMEOUT', 'slow') }, 'origin error'],
    [{ type: 'reply', status: 500, reason: 'Oops', headers: [], body: Buffer.alloc(0) }, 'origin error'],
    [{ type: 'reply', status: 200, reason: 'OK', headers: [['Content-Type', 'text/plain']], body: Buffer.alloc(0) }, 'origin error'],
    [{ type: 'reply', status: 200, reason: 'OK', headers: [['Content-Type', 'application/websocket-events']], body: Buffer.from('BAD') }, 'origin sent invalid events'],
  ];
  for (const [outcome, expected] of failures) {
    const { origin, owner, link, open } = setup(t);
    await open();
    link.send(text('x'));
    (await origin.call(2)).answer(outcome);
    const [reason] = await once(owner, 'failed');
    t.is(reason, expected);
  }
});

test('close with CLOSE: the farewell waits for the request in flight and carries the pending events first', async (t) => {
  const { origin, owner, link, open } = setup(t);
  await open();
  link.send(text('a'));
  const inFlight = await origin.call(2);
  link.send(text('b'));
  link.close({ type: 'CLOSE', code: 1000, reason: 'bye' });
  await settle();
  t.is(origin.calls.length, 2);
  inFlight.answer(eventsReply([text('ignored')]));
  t.deepEqual((await origin.call(3)).events, [text('b'), { type: 'CLOSE', code: 1000, reason: 'bye' }]);
  t.deepEqual(owner.replies, [], 'a closed link hands over no reply');
});

test('close with DISCONNECT drops what is pending; close without a farewell posts nothing', async (t) => {
  const one = setup(t);
  await one.open();
  one.link.send(text('a'));
  const inFlight = await one.origin.call(2);
  one.link.send(text('b'));
  one.link.close({ type: 'DISCONNECT' });
  inFlight.answer(NO_EVENTS);
  t.deepEqual((await one.origin.call(3)).events, [{ type: 'DISCONNECT' }]);

  const two = setup(t);
  await two.open();
  two.link.send(text('a'));
  two.link.close(undefined);
  (await two.origin.call(2)).answer(NO_EVENTS);
  await settle();
  t.is(two.origin.calls.length, 2);
});

test('closing while a retry waits cancels it and posts the farewell at once', async (t) => {
  const { clock, origin, link, open } = setup(t, { retryBaseMs: 100 });
  await open();
  link.send(text('x'));
  (await origin.call(2)).answer(UNREACHABLE);
  await settle();
  t.is(clock.pending, 1);
  link.close({ type: 'DISCONNECT' });
  t.is(clock.pending, 0);
  t.deepEqual((await origin.call(3)).events, [{ type: 'DISCONNECT' }]);
  clock.advance(1000);
  await settle();
  t.is(origin.calls.length, 3);
});

test('detach queues CLOSE and mutes the link: replies are no longer handed over, client events still go out', async (t) => {
  const { origin, owner, link, open } = setup(t);
  await open();
  link.detach();
  const closing = await origin.call(2);
  t.deepEqual(closing.events, [{ type: 'CLOSE', reason: '' }]);
  link.send(text('late'));
  closing.answer(eventsReply([text('dropped')]));
  t.deepEqual((await origin.call(3)).events, [text('late')]);
  t.deepEqual(owner.replies, []);
  link.refresh();
  await settle();
  t.is(origin.calls.length, 3, 'no refresh once muted');
});

test('Keep-Alive-Interval: an empty request goes out after the interval without requests, counted from the last reply', async (t) => {
  const { clock, origin, link, open } = setup(t, { keepAliveMinSec: 1 });
  await open(openReply([], [['Keep-Alive-Interval', '1']]));
  clock.advance(600);
  link.send(text('x'));
  const busy = await origin.call(2);
  clock.advance(1500);
  t.is(origin.calls.length, 2, 'no keep-alive while a request is in flight');
  busy.answer(NO_EVENTS);
  await settle();
  clock.advance(900);
  t.is(origin.calls.length, 2);
  clock.advance(400);
  t.deepEqual((await origin.call(3)).events, []);
});

test('refresh sends a request even with nothing pending', async (t) => {
  const { origin, link, open } = setup(t);
  await open();
  link.refresh();
  t.deepEqual((await origin.call(2)).events, []);
});

test('a bug while handling a reply is reported to the owner, not thrown', async (t) => {
  const { origin, owner, link, open } = setup(t);
  await open();
  owner.onEvents = () => { throw new Error('bug'); };
  link.send(text('x'));
  (await origin.call(2)).answer(eventsReply([text('boom')]));
  const [err] = await once(owner, 'bug') as [Error];
  t.is(err.message, 'bug');
});

const accepting = (n: number, events: Parameters<typeof eventsReply>[0] = []) => eventsReply(events, [['Content-Bytes-Accepted', String(n)]]);
const replayedHeader = (headers: HeaderList) => headers.find(([k]) => k === 'Content-Bytes-Replayed')?.[1];

test('Content-Bytes-Accepted: the unaccepted rest waits for the next client event and goes first, announced with Content-Bytes-Replayed', async (t) => {
  const { origin, owner, link, open } = setup(t);
  await open();
  link.send(text('hello world'));
  const first = await origin.call(2);
  t.is(replayedHeader(first.headers), undefined);
  first.answer(accepting(5, [text('r1')]));
  await once(owner, 'events');
  await settle();
  t.is(origin.calls.length, 2, 'the origin asked to wait for more: nothing is sent until the client sends');
  link.send(text('!'));
  const second = await origin.call(3);
  t.deepEqual(second.events, [text(' world'), text('!')]);
  t.is(replayedHeader(second.headers), '6');
  second.answer(NO_EVENTS);
  link.send(text('next'));
  const third = await origin.call(4);
  t.deepEqual(third.events, [text('next')], 'all accepted: nothing replayed');
  t.is(replayedHeader(third.headers), undefined);
});

test('Content-Bytes-Accepted: a keep-alive or refresh request carries the rest too', async (t) => {
  const { origin, link, open } = setup(t);
  await open();
  link.send(text('abc'));
  (await origin.call(2)).answer(accepting(1));
  await settle();
  link.refresh();
  const again = await origin.call(3);
  t.deepEqual(again.events, [text('bc')]);
  t.is(replayedHeader(again.headers), '2');
});

test('Content-Bytes-Accepted: more than was sent, or a CLOSE left out once all before it is accepted, fails the connection', async (t) => {
  for (const [events, n] of [[[text('abc')], 4], [[text('abc'), { type: 'CLOSE', code: 1000, reason: '' }], 3]] as const) {
    const { origin, owner, link, open } = setup(t);
    await open();
    link.send(text('first'));
    const first = await origin.call(2);
    for (const e of events) link.send(e); // one batch, behind the request in flight
    first.answer(NO_EVENTS);
    const batch = await origin.call(3);
    t.deepEqual(batch.events, [...events]);
    batch.answer(accepting(n));
    t.deepEqual(await once(owner, 'failed'), ['origin error']);
  }
});

test('Content-Bytes-Accepted: a rest that fills maxPendingBytes goes again at once; none of it accepted fails the connection', async (t) => {
  const { origin, owner, link, open } = setup(t, { maxPendingBytes: 4 });
  await open();
  link.send(text('0123456789'));
  (await origin.call(2)).answer(accepting(2));
  const again = await origin.call(3);
  t.deepEqual(again.events, [text('23456789')]);
  t.is(replayedHeader(again.headers), '8');
  again.answer(accepting(0));
  t.deepEqual(await once(owner, 'failed'), ['origin error']);
});

test('Content-Bytes-Accepted: the farewell CLOSE carries the unaccepted rest first', async (t) => {
  const { origin, link, open } = setup(t);
  await open();
  link.send(text('abc'));
  (await origin.call(2)).answer(accepting(2));
  await settle();
  link.close({ type: 'CLOSE', code: 1000, reason: '' });
  const farewell = await origin.call(3);
  t.deepEqual(farewell.events, [text('c'), { type: 'CLOSE', code: 1000, reason: '' }]);
  t.is(replayedHeader(farewell.headers), '1');
});
