import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { MemoryBus } from '../../../sidecar/src/bus/memory-bus.js';
import { DEFAULT_LIMITS, DEFAULT_WS } from '../../../sidecar/src/config.js';
import { Hub } from '../../../sidecar/src/hub/hub.js';
import { WsSession } from '../../../sidecar/src/holds/ws-session.js';
import type { HandoffLimits } from '../../../sidecar/src/kong/handoff-format.js';
import { createLogger } from '../../../sidecar/src/log.js';
import { createMetrics } from '../../../sidecar/src/metrics.js';
import { TargetConnection } from '../../../sidecar/src/server/request-target.js';
import { UsageLedger } from '../../../sidecar/src/usage/usage-ledger.js';
import { FakeClock } from './fake-clock.js';
import { FakeGone } from './http-fakes.js';
import { controlMessage, eventsReply, FakeHandshake, FakeOrigin, FakeSocket, openReply, settle } from './ws-fakes.js';

// A WebSocket session's client message limit (ws_messages_per_second / ws_burst, from the
// handoff) on a fake clock, and its usage meter: published messages counted, the meter ended
// with the session.

function setup(t: ExecutionContext, limits: HandoffLimits) {
  const clock = new FakeClock();
  t.teardown(() => clock.close());
  const metrics = createMetrics();
  const bus = new MemoryBus();
  const hub = new Hub(bus, metrics);
  const ledger = new UsageLedger('test:1', clock.now(), () => clock.now());
  const origin = new FakeOrigin();
  const handshake = new FakeHandshake();
  const socket = new FakeSocket();
  const session = new WsSession({
    hub, metrics, log: createLogger('silent'), limits: DEFAULT_LIMITS, ws: DEFAULT_WS,
    keepAlives: clock.wheel, clock, countSent: () => undefined, onClosed: () => undefined, post: origin.post, handshake, gone: new FakeGone(),
  }, {
    req: {} as IncomingMessage, socket: socket.asDuplex(), head: Buffer.alloc(0),
    target: {
      url: new URL('http://origin.test/chat'), headers: [],
      identity: { consumer: { id: 'alice', username: null, customId: null }, routeId: null, serviceId: null, pluginId: 'p' },
      limits,
      connection: new TargetConnection(undefined, ledger.open('alice')),
    },
  });
  session.start();
  return { clock, metrics, bus, ledger, origin, handshake, socket, session, ws: handshake.ws };
}

async function opened(c: ReturnType<typeof setup>): Promise<void> {
  (await c.origin.call(1)).answer(openReply([controlMessage({ type: 'subscribe', channel: 'news' })]));
  await once(c.handshake, 'accept');
}

/** Client texts the origin was sent, over every POST so far. */
const textsPosted = (origin: FakeOrigin): string[] =>
  origin.posted.flat().filter((e) => e.type === 'TEXT').map((e) => (e as { content: Buffer }).content.toString());

test('the burst passes, the message after it closes the connection with 1008 naming the limit and is not passed on', async (t) => {
  const c = setup(t, { maxConnectionsPerConsumer: 0, wsMessagesPerSecond: 2, wsBurst: 3 });
  await opened(c);
  for (const m of ['a', 'b', 'c', 'd']) c.ws.sendText(m);
  t.deepEqual(c.ws.closeSent, { code: 1008, reason: 'message rate limit exceeded (ws_messages_per_second 2, ws_burst 3)' });
  (await c.origin.call(2)).answer(eventsReply([]));
  await settle();
  t.deepEqual(textsPosted(c.origin), ['a', 'b', 'c']);
  const last = c.origin.calls.at(-1)!.events.at(-1);
  t.like(last, { type: 'CLOSE', code: 1008 });
  t.regex((await c.metrics.registry.metrics()), /^kong_grip_ws_rate_limited_total 1$/m);
});

test('pings and pongs are not counted', async (t) => {
  const c = setup(t, { maxConnectionsPerConsumer: 0, wsMessagesPerSecond: 1, wsBurst: 1 });
  await opened(c);
  for (let i = 0; i < 5; i++) {
    c.ws.emit('ping', Buffer.from('p'));
    c.ws.emit('pong', Buffer.from('q'));
  }
  c.ws.sendText('one');
  t.is(c.ws.closeSent, undefined);
  c.ws.sendText('two');
  t.is(c.ws.closeSent?.code, 1008);
});

test('tokens come back at the rate: after 500 ms at 2 a second one more message passes, and no more', async (t) => {
  const c = setup(t, { maxConnectionsPerConsumer: 0, wsMessagesPerSecond: 2, wsBurst: 0 });
  await opened(c);
  c.ws.sendText('a');
  c.ws.sendText('b'); // ws_burst 0: one second's worth, 2
  c.clock.advance(500);
  c.ws.sendText('c');
  t.is(c.ws.closeSent, undefined);
  c.clock.advance(250);
  c.ws.sendText('d');
  t.is(c.ws.closeSent?.code, 1008);
});

test('without a rate, many messages pass; published messages are metered and the meter ends with the session', async (t) => {
  const c = setup(t, { maxConnectionsPerConsumer: 0, wsMessagesPerSecond: 0, wsBurst: 0 });
  await opened(c);
  for (let i = 0; i < 100; i++) c.ws.sendText(`m${i}`);
  t.is(c.ws.closeSent, undefined);
  await c.bus.publish([{ channel: 'news', meta: {}, noSeq: false, formats: { 'ws-message': { action: 'send', type: 'text', content: Buffer.from('hello') } } }]);
  await settle();
  c.clock.advance(2000);
  c.session.close('client_gone');
  c.clock.advance(1000);
  const { records } = c.ledger.closePeriod();
  t.like(records.find((r) => r.channel === 'news'), { consumer: 'alice', messages: 1, bytes: 5 });
  t.like(records.find((r) => r.channel === null), { consumer: 'alice', connections: 1, connectionSeconds: 2 });
});
