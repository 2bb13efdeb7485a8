import test from 'ava';
import { once } from 'node:events';
import type { ChannelSub } from '../../../sidecar/src/grip/types.js';
import { ResponseHold, type OriginReask, type RefreshAnswer } from '../../../sidecar/src/holds/response-hold.js';
import { deferred, fakePorts, FakeResponse, metricValue, NOTHING_HELD, responseItem, settle, stillHeld, type Deferred } from './http-fakes.js';

/** The session side of a long-poll: records retries, and answers refreshes by hand. */
class FakeReask implements OriginReask {
  readonly retries: Array<{ gripLast: Map<string, string>; isPositionRecovery: boolean }> = [];
  readonly refreshes: Array<{ gripLast: Map<string, string>; answer: Deferred<RefreshAnswer | undefined> }> = [];

  retry(gripLast: ReadonlyMap<string, string>, isPositionRecovery: boolean): void {
    this.retries.push({ gripLast: new Map(gripLast), isPositionRecovery });
  }

  refresh(gripLast: ReadonlyMap<string, string>): Promise<RefreshAnswer | undefined> {
    const answer = deferred<RefreshAnswer | undefined>();
    this.refreshes.push({ gripLast: new Map(gripLast), answer });
    return answer.promise;
  }
}

/** An answer that records what the hold did with it, and what the hub had at that moment. */
function fakeAnswer(onApply: () => void = () => {}) {
  const done = deferred<'applied' | 'dropped'>();
  const answer: RefreshAnswer = {
    apply: () => { onApply(); done.resolve('applied'); },
    drop: () => done.resolve('dropped'),
  };
  return { answer, done: done.promise };
}

const TIMEOUT_BODY = 'timed out\n';

const GONE = { url: 'http://origin.test/gone?c=1', requestUrl: new URL('http://origin.test/poll') };

function holding(channels: ChannelSub[], options: { checkPosition?: boolean; maxChannels?: number; goneLink?: typeof GONE } = {}) {
  const ports = fakePorts(options.maxChannels === undefined ? {} : { maxChannels: options.maxChannels });
  const res = new FakeResponse();
  const reask = new FakeReask();
  const hold = new ResponseHold(ports.responseHolds, res.asResponse(), {
    channels,
    timeoutSec: 30,
    timeoutResponse: { code: 200, reason: 'OK', headers: [['Content-Type', 'text/plain']], body: Buffer.from(TIMEOUT_BODY) },
    reask,
    checkPosition: options.checkPosition ?? true,
    ...(options.goneLink ? { goneLink: options.goneLink } : {}),
  });
  return { ...ports, res, reask, hold };
}

const channel = (name: string, prevId?: string): ChannelSub => ({ name, filters: [], ...(prevId === undefined ? {} : { prevId }) });

test('a published http-response item answers the long-poll and releases its channels and timer', async (t) => {
  const { hub, clock, metrics, holds, res } = holding([channel('a'), channel('b')]);
  t.deepEqual(hub.channels(), ['a', 'b']);
  t.is(holds.size, 1);
  t.is(await metricValue(metrics.connections, { kind: 'response' }), 1);
  hub.publish(responseItem('b', { body: Buffer.from('news'), headers: [['X-Item', '1']] }));
  t.is(res.statusCode, 200);
  t.is(res.body, 'news');
  t.is(res.header('content-length'), '4');
  t.is(res.header('x-item'), '1');
  t.is(res.header('content-type'), 'text/plain');
  t.deepEqual(res.calls, ['writeHead', 'end']);
  t.deepEqual(hub.channels(), []);
  t.is(clock.pending, 0);
  t.is(holds.size, 0);
  t.is(await metricValue(metrics.connections, { kind: 'response' }), 0);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'response', reason: 'published' }), 1);
  t.is(await metricValue(metrics.messagesSent, { kind: 'response' }), 1);
  // A second item finds nothing to answer.
  hub.publish(responseItem('a', { body: Buffer.from('late') }));
  t.is(res.body, 'news');
});

test('with no item before the timeout the client gets the origin\'s timeout response', async (t) => {
  const { clock, hub, metrics, res } = holding([channel('a')]);
  clock.advance(29_999);
  t.deepEqual(res.calls, []);
  clock.advance(1);
  t.is(res.statusCode, 200);
  t.is(res.body, TIMEOUT_BODY);
  t.is(res.header('content-length'), String(TIMEOUT_BODY.length));
  t.deepEqual(hub.channels(), []);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'response', reason: 'timeout' }), 1);
});

test('a hint releases the hold without answering and asks the origin again with Grip-Last', async (t) => {
  const { hub, clock, metrics, res, reask } = holding([channel('a', '7'), channel('b')]);
  hub.publish(responseItem('b', { action: 'hint' }));
  t.deepEqual(reask.retries, [{ gripLast: new Map([['a', '7']]), isPositionRecovery: false }]);
  t.deepEqual(res.calls, []);
  t.deepEqual(hub.channels(), []);
  t.is(clock.pending, 0);
  // Handed over to the next answer, not closed: no hold-closed count.
  t.is(await metricValue(metrics.holdsClosed, { kind: 'response', reason: 'published' }), 0);
  t.is(await metricValue(metrics.connections, { kind: 'response' }), 0);
});

test('an item whose prev-id does not follow the origin\'s id means a missed item: retry from that id', (t) => {
  const { hub, res, reask } = holding([channel('a', '7')]);
  hub.publish(responseItem('a', { body: Buffer.from('x') }, { id: '9', prevId: '8' }));
  t.deepEqual(reask.retries, [{ gripLast: new Map([['a', '7']]), isPositionRecovery: false }]);
  t.deepEqual(res.calls, []);
});

test('an item that follows the origin\'s id is delivered', (t) => {
  const { hub, res, reask } = holding([channel('a', '7')]);
  hub.publish(responseItem('a', { body: Buffer.from('x') }, { id: '8', prevId: '7' }));
  t.is(reask.retries.length, 0);
  t.is(res.body, 'x');
});

test('recover() retries at once as a position recovery', (t) => {
  const { hub, reask } = holding([channel('a', '7')]);
  hub.recover('a');
  t.deepEqual(reask.retries, [{ gripLast: new Map([['a', '7']]), isPositionRecovery: true }]);
  t.deepEqual(hub.channels(), []);
});

test('prev-ids go to the hub to be compared with the channel, unless the hold answers a position recovery', (t) => {
  const checked = holding([channel('a', '7')]);
  t.deepEqual(checked.hub.history, [{ op: 'subscribe', channel: 'a', prevId: '7' }]);
  const unchecked = holding([channel('a', '7')], { checkPosition: false });
  t.deepEqual(unchecked.hub.history, [{ op: 'subscribe', channel: 'a' }]);
});

test('a close item is accepted and changes nothing', (t) => {
  const { hub, res } = holding([channel('a')]);
  hub.publish(responseItem('a', { action: 'close' }));
  t.deepEqual(res.calls, []);
  t.deepEqual(hub.channels(), ['a']);
});

test('a refresh keeps holding until the origin answers, then applies the answer before releasing', async (t) => {
  const { hub, res, reask, holds } = holding([channel('a', '3')]);
  hub.refresh('a');
  hub.refresh('a'); // one refresh at a time
  t.is(reask.refreshes.length, 1);
  t.deepEqual(reask.refreshes[0]?.gripLast, new Map([['a', '3']]));
  t.deepEqual(hub.channels(), ['a']);
  let subscribedAtApply = -1;
  const { answer, done } = fakeAnswer(() => { subscribedAtApply = hub.count('a'); });
  reask.refreshes[0]?.answer.resolve(answer);
  t.is(await done, 'applied');
  t.is(subscribedAtApply, 1, 'the old hold still held its channel when the answer was applied');
  t.deepEqual(hub.channels(), []);
  t.is(holds.size, 0);
  t.deepEqual(res.calls, [], 'the hold itself wrote nothing');
});

test('an item that arrives while refreshing still wins, and the origin\'s answer is dropped', async (t) => {
  const { hub, res, reask } = holding([channel('a')]);
  hub.refresh('a');
  hub.publish(responseItem('a', { body: Buffer.from('first') }));
  t.is(res.body, 'first');
  const { answer, done } = fakeAnswer();
  reask.refreshes[0]?.answer.resolve(answer);
  t.is(await done, 'dropped');
  t.is(res.body, 'first');
});

test('a failed refresh keeps holding, and a later refresh asks again', async (t) => {
  const { hub, clock, res, reask } = holding([channel('a')]);
  hub.refresh('a');
  reask.refreshes[0]?.answer.resolve(undefined);
  await settle();
  t.deepEqual(hub.channels(), ['a']);
  t.deepEqual(res.calls, []);
  hub.refresh('a');
  t.is(reask.refreshes.length, 2);
  reask.refreshes[1]?.answer.resolve(undefined);
  await settle();
  clock.advance(30_000);
  t.is(res.body, TIMEOUT_BODY);
});

test('the client going away releases the subscriptions and the timer', async (t) => {
  const ports = holding([channel('a'), channel('b')]);
  const { clock, res, metrics } = ports;
  res.destroy();
  await once(res, 'close');
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'response', reason: 'client_gone' }), 1);
  clock.advance(60_000);
  t.deepEqual(res.calls, ['destroy']);
});

test('drain answers with the timeout response so the client polls again elsewhere', async (t) => {
  const { holds, hub, res, metrics } = holding([channel('a')]);
  holds.drainAll();
  t.is(res.body, TIMEOUT_BODY);
  t.deepEqual(hub.channels(), []);
  t.is(await metricValue(metrics.holdsClosed, { kind: 'response', reason: 'shutdown' }), 1);
});

test('channels over the per-connection limit are dropped and counted', async (t) => {
  const { hub, metrics, log } = holding([channel('a'), channel('b'), channel('c')], { maxChannels: 2 });
  t.deepEqual(hub.channels(), ['a', 'b']);
  t.is(await metricValue(metrics.channelsDropped, {}), 1);
  t.is(log.lines.filter((l) => l.level === 'warn').length, 1);
});

test('a body-patch that fails answers with an empty body, counted per long-poll and logged once per item (D4)', async (t) => {
  const first = holding([channel('a')]);
  const second = new FakeResponse();
  // A second long-poll on the same hub, ports and item.
  new ResponseHold(first.responseHolds, second.asResponse(), {
    channels: [channel('a')], timeoutSec: 30, checkPosition: true, reask: new FakeReask(),
    timeoutResponse: { code: 200, reason: 'OK', headers: [], body: Buffer.from('not json') },
  });
  first.hub.publish(responseItem('a', { bodyPatch: [{ op: 'add', path: '/x', value: 1 }] }));
  for (const res of [first.res, second]) {
    t.true(res.writableEnded);
    t.is(res.body, '');
    t.is(res.header('content-length'), '0');
  }
  t.is(await metricValue(first.metrics.deliveriesDropped, { reason: 'patch' }), 2);
  t.is(first.log.lines.filter((l) => l.msg === 'body-patch not applied; empty body sent').length, 1);
  t.deepEqual(stillHeld(first), NOTHING_HELD);
});

test('a patched body over maxPatchedBodyBytes is dropped the same way (D4)', async (t) => {
  const ports = fakePorts({ maxPatchedBodyBytes: 64 });
  const res = new FakeResponse();
  new ResponseHold(ports.responseHolds, res.asResponse(), {
    channels: [channel('a')], timeoutSec: 30, checkPosition: true, reask: new FakeReask(),
    timeoutResponse: { code: 200, reason: 'OK', headers: [], body: Buffer.from('{}') },
  });
  ports.hub.publish(responseItem('a', { bodyPatch: [{ op: 'add', path: '/x', value: 'y'.repeat(100) }] }));
  t.is(res.body, '');
  t.is(await metricValue(ports.metrics.deliveriesDropped, { reason: 'patch' }), 1);
});

test('a long-poll response Node refuses to write closes that connection, logged, never thrown from the timer', async (t) => {
  const ports = fakePorts();
  const res = new FakeResponse();
  new ResponseHold(ports.responseHolds, res.asResponse(), {
    channels: [channel('a')], timeoutSec: 30, checkPosition: true, reask: new FakeReask(),
    timeoutResponse: { code: 200, reason: 'O\x01K', headers: [], body: Buffer.from('x') },
  });
  t.notThrows(() => ports.clock.advance(30_000));
  t.true(res.destroyed);
  t.deepEqual(stillHeld(ports), NOTHING_HELD);
  t.is(await metricValue(ports.metrics.connections, { kind: 'response' }), 0);
  t.true(ports.log.lines.some((l) => l.msg === 'long-poll response not writable; connection closed'));
});

test('gone link: sent once when the client leaves, when the hold times out, and on shutdown', async (t) => {
  const left = holding([channel('a')], { goneLink: GONE });
  left.res.destroy();
  await once(left.res, 'close');
  t.deepEqual(left.gone.sent, [GONE]);

  const timedOut = holding([channel('a')], { goneLink: GONE });
  timedOut.clock.advance(30_000);
  t.is(timedOut.res.body, TIMEOUT_BODY);
  await once(timedOut.res, 'close');
  t.deepEqual(timedOut.gone.sent, [GONE], 'once: the response closing after the timeout answer adds nothing');

  const drained = holding([channel('a')], { goneLink: GONE });
  drained.holds.drainAll();
  t.deepEqual(drained.gone.sent, [GONE]);
});

test('gone link: never when a published item answers, nor when the hold hands back to the origin (hint, refresh)', async (t) => {
  const answered = holding([channel('a')], { goneLink: GONE });
  answered.hub.publish(responseItem('a', { body: Buffer.from('news') }));
  await once(answered.res, 'close');
  t.deepEqual(answered.gone.sent, []);

  const hinted = holding([channel('a')], { goneLink: GONE });
  hinted.hub.publish(responseItem('a', { action: 'hint' }));
  t.is(hinted.reask.retries.length, 1);
  t.deepEqual(hinted.gone.sent, []);

  const refreshed = holding([channel('a')], { goneLink: GONE });
  refreshed.hold.refresh();
  const { answer, done } = fakeAnswer();
  refreshed.reask.refreshes[0]?.answer.resolve(answer);
  t.is(await done, 'applied');
  t.deepEqual(refreshed.gone.sent, []);
});

test('gone link: none when the origin gave none', async (t) => {
  const { res, gone } = holding([channel('a')]);
  res.destroy();
  await once(res, 'close');
  t.deepEqual(gone.sent, []);
});
