import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { MemoryBus } from '../../../sidecar/src/bus/memory-bus.js';
import { DEFAULT_LIMITS, DEFAULT_WS, type Limits, type WsSettings } from '../../../sidecar/src/config.js';
import { KgError } from '../../../sidecar/src/errors.js';
import type { HeaderList, PublishItem } from '../../../sidecar/src/grip/types.js';
import { Hub } from '../../../sidecar/src/hub/hub.js';
import { WsSession } from '../../../sidecar/src/holds/ws-session.js';
import { createLogger } from '../../../sidecar/src/log.js';
import { createMetrics } from '../../../sidecar/src/metrics.js';
import { FakeClock } from './fake-clock.js';
import { FakeGone } from './http-fakes.js';
import { controlMessage, eventsReply, FakeHandshake, FakeOrigin, FakeSocket, openReply, settle, text } from './ws-fakes.js';

// WsSession driven without sockets: a fake client socket and ws object, an origin answered by
// hand, and a fake clock for its timers and the keep-alive wheel.

const NO_EVENTS = eventsReply([]);

/** A frame the session wrote, as opcode and payload (payloads under 126 bytes). */
function frameOf(frame: Buffer | undefined): { opcode: number; payload: string } {
  if (frame === undefined) return { opcode: -1, payload: '' };
  return { opcode: (frame[0] as number) & 0x0f, payload: frame.subarray(2).toString() };
}

function setup(t: ExecutionContext, options: { ws?: Partial<WsSettings>; limits?: Partial<Limits> } = {}) {
  const clock = new FakeClock();
  const bus = new MemoryBus();
  const metrics = createMetrics();
  const hub = new Hub(bus, metrics);
  const ended: WsSession[] = [];
  const gone = new FakeGone();
  let sent = 0;
  t.teardown(() => clock.close());
  const deps = {
    hub, metrics, log: createLogger('silent'),
    limits: { ...DEFAULT_LIMITS, ...options.limits }, ws: { ...DEFAULT_WS, ...options.ws },
    keepAlives: clock.wheel, clock,
    countSent: () => { sent++; },
    gone,
    onClosed: (s: WsSession) => { ended.push(s); },
  };
  /** A new session for one client, started. */
  const connect = () => {
    const origin = new FakeOrigin();
    const handshake = new FakeHandshake();
    const socket = new FakeSocket();
    const session = new WsSession({ ...deps, post: origin.post, handshake }, {
      req: {} as IncomingMessage, socket: socket.asDuplex(), head: Buffer.from('H'),
      target: { url: new URL('http://origin.test/chat'), headers: [['Sec-WebSocket-Protocol', 'chat']] },
    });
    session.start();
    return { origin, handshake, socket, session, ws: handshake.ws };
  };
  /** A session the origin has accepted (OPEN, GRIP on), with `events` after OPEN. */
  const open = async (events = [controlMessage({ type: 'subscribe', channel: 'news' })], headers: HeaderList = []) => {
    const c = connect();
    (await c.origin.call(1)).answer(openReply(events, headers));
    await once(c.handshake, 'accept');
    return c;
  };
  const closeReasons = async () => (await metrics.holdsClosed.get()).values.filter((v) => v.value > 0).map((v) => v.labels['reason']);
  const publish = (item: Partial<PublishItem> & Pick<PublishItem, 'formats'>) =>
    bus.publish([{ channel: 'news', meta: {}, noSeq: false, ...item }]);
  return { clock, hub, metrics, ended, gone, connect, open, closeReasons, publish, sentCount: () => sent };
}

test('OPEN accepted: the upgrade is completed with the origin\'s headers, early client bytes, and the events after OPEN are handled', async (t) => {
  const { connect, hub } = setup(t);
  const { origin, handshake, socket, session } = connect();
  const openCall = await origin.call(1);
  t.deepEqual(openCall.events, [{ type: 'OPEN' }]);
  t.is(openCall.url.href, 'http://origin.test/chat');
  t.true(openCall.headers.some(([k, v]) => k === 'Connection-Id' && v === session.connectionId));
  socket.emit('data', Buffer.from('early'));
  t.is(handshake.accepted, undefined, 'no 101 before the origin answers');
  openCall.answer(openReply([text('m:hello'), controlMessage({ type: 'subscribe', channel: 'news' })], [['Sec-WebSocket-Protocol', 'chat']]));
  await once(handshake, 'accept');
  t.is(handshake.accepted?.head.toString(), 'Hearly');
  t.true(handshake.accepted?.originHeaders.some(([k, v]) => k === 'Sec-WebSocket-Protocol' && v === 'chat'));
  t.deepEqual(handshake.accepted?.clientHeaders, [['Sec-WebSocket-Protocol', 'chat']]);
  t.deepEqual(frameOf(socket.writes[0]), { opcode: 1, payload: 'hello' });
  t.is(hub.subscriberCount('news'), 1);
  t.is(socket.listenerCount('data'), 0, 'the early-data listener is gone once ws owns the socket');
});

test('the origin refuses: the client gets the refusal and the session ends without a farewell', async (t) => {
  const { connect, ended, closeReasons } = setup(t);
  const { origin, handshake, session } = connect();
  const refusal = { type: 'reply' as const, status: 403, reason: 'Forbidden', headers: [], body: Buffer.from('no') };
  (await origin.call(1)).answer(refusal);
  await once(handshake, 'refuse');
  t.deepEqual(handshake.refused, { type: 'refused', reply: refusal });
  t.is(handshake.accepted, undefined);
  t.deepEqual(ended, [session]);
  t.deepEqual(await closeReasons(), ['rejected']);
  await settle();
  t.is(origin.calls.length, 1);
});

test('an unreachable origin refuses the upgrade with 502 (failed)', async (t) => {
  const { connect, closeReasons } = setup(t);
  const { origin, handshake } = connect();
  (await origin.call(1)).answer({ type: 'failed', retryable: true, error: new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'down') });
  await once(handshake, 'refuse');
  t.deepEqual(handshake.refused, { type: 'failed' });
  t.deepEqual(await closeReasons(), ['origin_error']);
});

test('client messages are batched: one POST in flight, what arrives meanwhile goes next, in order', async (t) => {
  const { open } = setup(t);
  const { origin, ws } = await open();
  ws.sendText('a');
  const first = await origin.call(2);
  t.deepEqual(first.events, [text('a')]);
  ws.sendText('b');
  ws.sendText('c');
  await settle();
  t.is(origin.calls.length, 2, 'nothing more while a POST is in flight');
  first.answer(NO_EVENTS);
  t.deepEqual((await origin.call(3)).events, [text('b'), text('c')]);
});

test('too much pending pauses the client until the batch is on its way', async (t) => {
  const { open } = setup(t, { ws: { maxPendingBytes: 4 } });
  const { origin, ws } = await open();
  ws.sendText('a');
  const first = await origin.call(2);
  ws.sendText('bbbb');
  t.true(ws.paused);
  first.answer(NO_EVENTS);
  await origin.call(3);
  t.false(ws.paused);
});

test('origin CLOSE: the client gets it, and its close reply goes back to the origin as CLOSE', async (t) => {
  const { open, ended, closeReasons, hub } = setup(t);
  const { origin, ws, session } = await open();
  ws.sendText('x');
  (await origin.call(2)).answer(eventsReply([{ type: 'CLOSE', code: 4000, reason: 'bye' }]));
  await once(ws, 'close-sent');
  t.deepEqual(ws.closeSent, { code: 4000, reason: 'bye' });
  t.is(hub.subscriberCount('news'), 0, 'nothing more is delivered while closing');
  t.deepEqual(ended, []);
  ws.clientCloses(4000, 'bye');
  t.deepEqual((await origin.call(3)).events, [{ type: 'CLOSE', code: 4000, reason: 'bye' }]);
  t.deepEqual(ended, [session]);
  t.deepEqual(await closeReasons(), ['origin_closed']);
});

test('detach: the origin side is closed with CLOSE; client messages are dropped, publishes still flow', async (t) => {
  const { open, publish } = setup(t);
  const { origin, ws, socket } = await open([controlMessage({ type: 'subscribe', channel: 'news' }), controlMessage({ type: 'detach' })]);
  const closing = await origin.call(2);
  t.deepEqual(closing.events, [{ type: 'CLOSE', reason: '' }]);
  closing.answer(eventsReply([text('m:ignored after detach')]));
  ws.sendText('dropped');
  await publish({ formats: { 'ws-message': { action: 'send', type: 'text', content: Buffer.from('still here') } } });
  await settle();
  t.is(origin.calls.length, 2);
  t.deepEqual(socket.writes.map((w) => frameOf(w).payload), ['still here']);
  t.is(ws.closeSent, undefined);
});

test('detach: events after c:detach in the same origin reply are still handled, as Pushpin does', async (t) => {
  const { open, hub } = setup(t);
  const { origin, socket } = await open([
    text('m:before'), controlMessage({ type: 'detach' }), text('m:after'), controlMessage({ type: 'subscribe', channel: 'late' }),
  ]);
  t.deepEqual(socket.writes.map((w) => frameOf(w).payload), ['before', 'after']);
  t.is(hub.subscriberCount('late'), 1, 'a control message after the detach applies too');
  t.deepEqual((await origin.call(2)).events, [{ type: 'CLOSE', reason: '' }]);
});

test('a published message reaches every session as the same frame, counted once per socket', async (t) => {
  const { open, publish, sentCount } = setup(t);
  const one = await open();
  const two = await open();
  await publish({ formats: { 'ws-message': { action: 'send', type: 'text', content: Buffer.from('news!') } } });
  t.deepEqual(frameOf(one.socket.writes[0]), { opcode: 1, payload: 'news!' });
  t.is(one.socket.writes[0], two.socket.writes[0], 'one frame shared by every socket');
  t.is(sentCount(), 2);
});

test('a client whose queue passes maxQueueBytes is dropped as a slow consumer; the origin gets DISCONNECT', async (t) => {
  const { open, publish, closeReasons, hub } = setup(t, { limits: { maxQueueBytes: 1000 } });
  const { origin, ws, socket } = await open();
  socket.writableLength = 1001;
  await publish({ formats: { 'ws-message': { action: 'send', type: 'text', content: Buffer.from('too much') } } });
  t.true(ws.terminated);
  t.is(hub.subscriberCount('news'), 0);
  t.deepEqual((await origin.call(2)).events, [{ type: 'DISCONNECT' }]);
  t.deepEqual(await closeReasons(), ['slow_consumer']);
});

test('shutdown closes the client with 1012 and tells the origin DISCONNECT', async (t) => {
  const { open, closeReasons } = setup(t);
  const { origin, ws, session } = await open();
  session.close('shutdown');
  t.deepEqual(ws.closeSent, { code: 1012, reason: 'service restart' });
  t.deepEqual((await origin.call(2)).events, [{ type: 'DISCONNECT' }]);
  t.deepEqual(await closeReasons(), ['shutdown']);
});

test('the farewell waits for the POST in flight, and carries what was still pending before the client\'s CLOSE', async (t) => {
  const { open, ended } = setup(t);
  const { origin, ws } = await open();
  ws.sendText('a');
  const inFlight = await origin.call(2);
  ws.sendText('b');
  ws.clientCloses(1000, 'done');
  t.is(ended.length, 1, 'the session ends at once');
  await settle();
  t.is(origin.calls.length, 2, 'no second request while one is in flight');
  inFlight.answer(eventsReply([text('m:too late')]));
  t.deepEqual((await origin.call(3)).events, [text('b'), { type: 'CLOSE', code: 1000, reason: 'done' }]);
  await settle();
  t.is(origin.calls.length, 3);
});

test('a client gone while the origin decides: an accepting origin is told DISCONNECT, a refusing one nothing', async (t) => {
  const { connect } = setup(t);
  const accepting = connect();
  accepting.socket.emit('end');
  (await accepting.origin.call(1)).answer(openReply());
  t.deepEqual((await accepting.origin.call(2)).events, [{ type: 'DISCONNECT' }]);
  t.is(accepting.handshake.accepted, undefined);

  const refusing = connect();
  refusing.socket.emit('close');
  t.true(refusing.socket.destroyed);
  (await refusing.origin.call(1)).answer({ type: 'reply', status: 403, reason: 'Forbidden', headers: [], body: Buffer.alloc(0) });
  await settle();
  t.is(refusing.origin.calls.length, 1);
  t.is(refusing.handshake.refused, undefined);
});

test('keep-alive control messages go out on the shared wheel when the client has been idle for the timeout', async (t) => {
  const { open, clock, publish } = setup(t);
  const { socket } = await open([
    controlMessage({ type: 'subscribe', channel: 'news' }),
    controlMessage({ type: 'keep-alive', content: 'KA', timeout: 2 }),
  ]);
  clock.advance(1500);
  await publish({ formats: { 'ws-message': { action: 'send', type: 'text', content: Buffer.from('data') } } });
  clock.advance(1900);
  t.deepEqual(socket.writes.map((w) => frameOf(w).payload), ['data'], 'the write restarted the idle wait');
  clock.advance(400);
  t.deepEqual(socket.writes.map((w) => frameOf(w).payload), ['data', 'KA']);
});

test('Keep-Alive-Interval: an idle session posts an empty request once the interval has passed', async (t) => {
  const { connect, clock } = setup(t, { ws: { keepAliveMinSec: 1 } });
  const { origin, handshake } = connect();
  (await origin.call(1)).answer(openReply([], [['Keep-Alive-Interval', '1']]));
  await once(handshake, 'accept');
  clock.advance(900);
  t.is(origin.calls.length, 1);
  clock.advance(400);
  t.deepEqual((await origin.call(2)).events, []);
});

test('send-delayed writes once after its timeout; a session that ends first leaves no timer', async (t) => {
  const { open, clock } = setup(t);
  const { socket, session } = await open([controlMessage({ type: 'send-delayed', content: 'later', timeout: 1 })]);
  t.is(socket.writes.length, 0);
  clock.advance(1000);
  t.deepEqual(socket.writes.map((w) => frameOf(w).payload), ['later']);

  const other = await open([controlMessage({ type: 'send-delayed', content: 'never', timeout: 1 })]);
  t.is(clock.pending, 1);
  other.session.close('shutdown');
  t.is(clock.pending, 0);
  session.close('shutdown');
});

test('a POST that never reached the origin is retried after the backoff, with the same events', async (t) => {
  const { open, clock } = setup(t, { ws: { retryBaseMs: 100 } });
  const { origin, ws } = await open();
  ws.sendText('again');
  (await origin.call(2)).answer({ type: 'failed', retryable: true, error: new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'refused') });
  await settle();
  t.is(origin.calls.length, 2);
  clock.advance(200);
  t.deepEqual((await origin.call(3)).events, [text('again')]);
});

const GONE_HEADER: HeaderList = [['Grip-Link', '</chat/gone?u=1>; rel=gone']];
const GONE_URL = 'http://origin.test/chat/gone?u=1';

test('gone link from the OPEN reply: sent once when the client closes, drops, or the sidecar shuts down', async (t) => {
  const { open, gone } = setup(t);
  const closes = await open(undefined, GONE_HEADER);
  closes.ws.clientCloses(1000, 'bye');
  t.deepEqual(gone.sent, [{ url: GONE_URL, requestUrl: new URL('http://origin.test/chat') }]);
  const drops = await open(undefined, GONE_HEADER);
  drops.socket.emit('close');
  drops.ws.clientCloses(1006);
  t.is(gone.sent.length, 2);
  const restarted = await open(undefined, GONE_HEADER);
  restarted.session.close('shutdown');
  restarted.session.close('shutdown');
  t.deepEqual(gone.urls, [GONE_URL, GONE_URL, GONE_URL]);
});

test('gone link: never when the origin ends the session (CLOSE, DISCONNECT, a published close)', async (t) => {
  const { open, gone, publish } = setup(t);
  const closed = await open(undefined, GONE_HEADER);
  closed.ws.sendText('x');
  (await closed.origin.call(2)).answer(eventsReply([{ type: 'CLOSE', code: 1000, reason: '' }]));
  await once(closed.ws, 'close-sent');
  closed.ws.clientCloses(1000);
  await open([{ type: 'DISCONNECT' }], GONE_HEADER);
  await open(undefined, GONE_HEADER);
  await publish({ formats: { 'ws-message': { action: 'close', type: 'text', content: Buffer.alloc(0), code: 4001 } } });
  await settle();
  t.deepEqual(gone.sent, []);
});

test('a malformed Grip-Link on the OPEN reply is ignored: the session opens, no gone link', async (t) => {
  const { open, gone } = setup(t);
  const { session, handshake } = await open(undefined, [['Grip-Link', 'no-brackets; rel=gone']]);
  t.truthy(handshake.accepted);
  session.close('shutdown');
  t.deepEqual(gone.sent, []);
});

test('gone link: sent when the session ends because the origin timed out', async (t) => {
  const { open, gone, closeReasons } = setup(t);
  const { origin, ws } = await open(undefined, GONE_HEADER);
  ws.sendText('x');
  (await origin.call(2)).answer({ type: 'failed', retryable: false, error: new KgError('KG_ERR_ORIGIN_TIMEOUT', 'no answer within 30000 ms') });
  await once(ws, 'close-sent');
  t.deepEqual(await closeReasons(), ['origin_error']);
  t.deepEqual(gone.urls, [GONE_URL]);
});
