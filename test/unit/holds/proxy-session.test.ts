import test from 'ava';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { KgError } from '../../../sidecar/src/errors.js';
import type { HeaderList } from '../../../sidecar/src/grip/types.js';
import { ProxySession, type ProxySessionDeps } from '../../../sidecar/src/holds/proxy-session.js';
import type { RequestTarget } from '../../../sidecar/src/server/request-target.js';
import {
  FakeOrigin, FakeResponse, fakePorts, metricValue, originResponse, responseItem, settle, streamItem, until,
  type OriginCallRecord,
} from './http-fakes.js';

const TARGET: RequestTarget = {
  url: new URL('http://origin.test/feed?x=1'),
  headers: [['Host', 'origin.test'], ['X-Client', 'c1']],
};

interface RequestOptions {
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  /** Streamed by the test (a POST body); the request is then a PassThrough. */
  hasBody?: boolean;
  /** The client's connection (Node's req.socket), which the test may close. */
  socket?: FakeSocket;
}

/** A client connection as the session sees it through req.socket. */
class FakeSocket extends EventEmitter {
  destroyed = false;

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.nextTick(() => this.emit('close'));
  }
}

function clientRequest(options: RequestOptions): IncomingMessage & EventEmitter {
  const base = options.hasBody === true ? new PassThrough() : new EventEmitter();
  const complete = options.hasBody !== true;
  if (!complete) base.once('end', () => { (base as { complete?: boolean }).complete = true; });
  return Object.assign(base, {
    method: options.method ?? 'GET', url: options.url ?? '/feed?x=1', headers: options.headers ?? {},
    complete, ...(complete ? { readableLength: 0 } : {}),
    ...(options.socket ? { socket: options.socket } : {}),
  }) as unknown as IncomingMessage & EventEmitter;
}

function startSession(options: RequestOptions & { lastEventIdPaths?: string[]; maxRequestBodyBytes?: number } = {}) {
  const ports = fakePorts();
  const origin = new FakeOrigin();
  const res = new FakeResponse();
  const req = clientRequest(options);
  const deps: ProxySessionDeps = {
    origin, metrics: ports.metrics, log: ports.log,
    limits: { maxRequestBodyBytes: options.maxRequestBodyBytes ?? 100, maxInstructBodyBytes: 1000, maxMetaKeys: 32, maxMetaBytes: 8192 },
    lastEventIdPaths: options.lastEventIdPaths ?? [],
    responseHolds: ports.responseHolds,
    streamHolds: ports.streamHolds,
  };
  const done = new ProxySession(deps, req, res.asResponse(), TARGET).run();
  return { ...ports, origin, res, req, done };
}

function longPoll(channels: string, body = 'timeout\n', extra: HeaderList = []) {
  return originResponse(200, [['Grip-Hold', 'response'], ['Grip-Channel', channels], ['Content-Type', 'text/plain'], ...extra], body);
}

/** Answers the next origin request with `answer` and returns that request. */
async function answerNext(origin: FakeOrigin, answer: IncomingMessage): Promise<OriginCallRecord> {
  const call = await origin.nextCall();
  call.answer(answer);
  return call;
}

/** A session whose origin answered with a long-poll on `channels`, once the hold has subscribed. */
async function longPolling(channels: string, body?: string, extra?: HeaderList) {
  const session = startSession();
  await answerNext(session.origin, longPoll(channels, body, extra));
  await session.done;
  const last = (channels.split(',').pop() as string).split(';')[0] as string;
  await subscribed(session.hub, last.trim());
  return session;
}

const ended = (res: FakeResponse): Promise<void> => until(res, 'finish', () => res.writableEnded);
const subscribed = (hub: EventEmitter & { count(c: string): number }, channel: string): Promise<void> =>
  until(hub, 'subscribe', () => hub.count(channel) > 0);

test('an answer without GRIP instructions is relayed to the client as it is', async (t) => {
  const { origin, res, done, metrics } = startSession();
  const call = await answerNext(origin, originResponse(201, [['Content-Type', 'text/plain'], ['X-Origin', '1']], 'plain body', { reason: 'Created' }));
  t.is(call.req.method, 'GET');
  t.is(call.req.url.href, TARGET.url.href);
  t.deepEqual(call.req.headers, TARGET.headers);
  await done;
  await ended(res);
  t.is(res.statusCode, 201);
  t.is(res.header('x-origin'), '1');
  t.is(res.body, 'plain body');
  t.is(await metricValue(metrics.requests, { outcome: 'relayed' }), 1);
});

test('a long-poll holds until a published item answers it', async (t) => {
  const { origin, res, hub, metrics } = await longPolling('a');
  t.deepEqual(res.calls, []);
  t.is(await metricValue(metrics.requests, { outcome: 'hold_response' }), 1);
  hub.publish(responseItem('a', { body: Buffer.from('published\n') }));
  t.is(res.statusCode, 200);
  t.is(res.body, 'published\n');
  t.is(res.header('content-type'), 'text/plain');
});

test('a long-poll nobody publishes to gets the origin\'s body after Grip-Timeout', async (t) => {
  const { origin, res, hub, clock } = await longPolling('a', 'nothing yet\n', [['Grip-Timeout', '10']]);
  clock.advance(9_999);
  t.false(res.writableEnded);
  clock.advance(1);
  t.is(res.body, 'nothing yet\n');
  t.is(res.header('content-length'), '12');
  t.deepEqual(hub.channels(), []);
});

test('a hint asks the origin again with the original request plus Grip-Last; the new answer holds', async (t) => {
  const { origin, res, hub } = await longPolling('a; prev-id=5');
  hub.publish(responseItem('a', { action: 'hint' }));
  t.deepEqual(hub.channels(), []);
  const retry = await answerNext(origin, longPoll('b'));
  t.is(retry.req.method, 'GET');
  t.is(retry.req.url.href, TARGET.url.href);
  t.deepEqual(retry.req.headers, [...TARGET.headers, ['Grip-Last', 'a; last-id=5']]);
  t.deepEqual(retry.body, Buffer.alloc(0));
  await subscribed(hub, 'b');
  hub.publish(responseItem('b', { body: Buffer.from('after retry\n') }));
  t.is(res.body, 'after retry\n');
});

test('a request body is streamed to the origin, kept, and sent again on a retry', async (t) => {
  const { origin, hub, req, done } = startSession({ method: 'POST', headers: { 'content-length': '6' }, hasBody: true });
  const first = await origin.nextCall();
  const received: Buffer[] = [];
  first.outgoing?.on('data', (c: Buffer) => received.push(c));
  (req as unknown as PassThrough).end('abcdef');
  await once(first.outgoing as PassThrough, 'end');
  t.is(Buffer.concat(received).toString(), 'abcdef');
  first.answer(longPoll('a; prev-id=1'));
  await done;
  await subscribed(hub, 'a');
  hub.publish(responseItem('a', { action: 'hint' }));
  const retry = await origin.nextCall();
  t.is(retry.req.method, 'POST');
  t.is(retry.body?.toString(), 'abcdef');
});

test('a GRIP answer to a request whose body was too large to keep is refused with 400', async (t) => {
  const { origin, res, req, done } = startSession({ method: 'POST', headers: { 'content-length': '12' }, hasBody: true, maxRequestBodyBytes: 8 });
  const first = await origin.nextCall();
  (req as unknown as PassThrough).end('twelve bytes');
  await once(first.outgoing as PassThrough, 'finish');
  first.answer(longPoll('a'));
  await done;
  t.is(res.statusCode, 400);
  t.is(res.body, 'Request too large to accept GRIP instruct.\n');
});

test('a refresh keeps holding until the origin answers; the answer is applied before the old hold lets go', async (t) => {
  const { origin, res, hub, clock } = await longPolling('a', 'first\n');
  hub.refresh('a');
  const refresh = await origin.nextCall();
  t.deepEqual(refresh.req.headers, TARGET.headers, 'no prev-id, no Grip-Last');
  t.deepEqual(hub.channels(), ['a'], 'still holding while the origin is asked');
  refresh.answer(longPoll('a, b', 'second\n'));
  await subscribed(hub, 'b');
  // Channel a, shared by both answers, never went without a subscriber.
  t.deepEqual(hub.history.filter((h) => h.channel === 'a').map((h) => h.op), ['subscribe', 'subscribe', 'unsubscribe']);
  t.is(hub.count('a'), 1);
  t.deepEqual(res.calls, []);
  clock.advance(55_000);
  t.is(res.body, 'second\n');
});

test('an item that arrives while the refresh is out wins, and the origin\'s answer is dropped', async (t) => {
  const { origin, res, hub } = await longPolling('a');
  hub.refresh('a');
  const refresh = await origin.nextCall();
  hub.publish(responseItem('a', { body: Buffer.from('won\n') }));
  t.is(res.body, 'won\n');
  const late = longPoll('b', 'late\n');
  refresh.answer(late);
  await once(late, 'close'); // discarded, unused
  await settle();
  t.deepEqual(hub.channels(), []);
  t.is(res.body, 'won\n');
  t.deepEqual(res.calls, ['writeHead', 'end']);
});

test('a refresh the origin fails keeps holding, and the next refresh asks again', async (t) => {
  const { origin, res, hub, log } = await longPolling('a');
  hub.refresh('a');
  (await origin.nextCall()).fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'origin down'));
  await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'refresh failed; still holding'));
  await settle();
  t.deepEqual(hub.channels(), ['a']);
  t.deepEqual(res.calls, []);
  // An unusable answer is a failed refresh too.
  hub.refresh('a');
  await answerNext(origin, originResponse(200, [['Grip-Hold', 'bogus']]));
  await until(log.events, 'line', () => log.lines.filter((l) => l.msg === 'refresh failed; still holding').length === 2);
  await settle();
  t.deepEqual(hub.channels(), ['a']);
  hub.publish(responseItem('a', { body: Buffer.from('still here\n') }));
  t.is(res.body, 'still here\n');
});

test('a refresh answered without GRIP relays that answer and ends the hold', async (t) => {
  const { origin, res, hub } = await longPolling('a');
  hub.refresh('a');
  await answerNext(origin, originResponse(200, [['Content-Type', 'text/plain']], 'fresh\n'));
  await ended(res);
  t.is(res.body, 'fresh\n');
  t.deepEqual(hub.channels(), []);
});

test('the answer to a position recovery is not compared with the channel again', async (t) => {
  const { origin, hub } = await longPolling('a; prev-id=5');
  hub.recover('a');
  const retry = await answerNext(origin, longPoll('a; prev-id=9'));
  t.deepEqual(retry.req.headers, [...TARGET.headers, ['Grip-Last', 'a; last-id=5']]);
  await subscribed(hub, 'a');
  t.deepEqual(hub.history.filter((h) => h.op === 'subscribe'), [
    { op: 'subscribe', channel: 'a', prevId: '5' },
    { op: 'subscribe', channel: 'a' },
  ]);
});

test('the client going away releases the long-poll\'s subscriptions', async (t) => {
  const { origin, res, hub, holds } = await longPolling('a, b');
  res.destroy();
  await once(res, 'close');
  t.deepEqual(hub.channels(), []);
  t.is(holds.size, 0);
});

/** The fields of the one 'request failed' log line. */
function failureLogged(log: ReturnType<typeof startSession>['log']): { code?: string; origin?: string; err?: string } {
  const line = log.lines.find((l) => l.msg === 'request failed');
  return (line?.fields ?? {}) as { code?: string; origin?: string; err?: string };
}

test('an unreachable origin gives 502 with Pushpin\'s text only; the cause is logged', async (t) => {
  const { origin, res, done, metrics, log } = startSession();
  (await origin.nextCall()).fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'origin http://origin.test failed: ECONNREFUSED'));
  await done;
  t.is(res.statusCode, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
  t.is(await metricValue(metrics.originErrors, { kind: 'unreachable' }), 1);
  t.is(failureLogged(log).err, 'origin http://origin.test failed: ECONNREFUSED');
});

test('invalid instructions give 502 with Pushpin\'s text only; what is wrong is logged and counted', async (t) => {
  const { origin, res, done, metrics, log } = startSession();
  await answerNext(origin, originResponse(200, [['Grip-Hold', 'bogus']]));
  await done;
  t.is(res.statusCode, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
  t.is(await metricValue(metrics.requests, { outcome: 'KG_ERR_INSTRUCT_INVALID' }), 1);
  t.is(failureLogged(log).origin, 'http://origin.test');
  t.regex(failureLogged(log).err ?? '', /Grip-Hold must be/);
});

test('a Grip-Status below 200 cannot be the final response: 502', async (t) => {
  const { origin, res, done, log } = startSession();
  await answerNext(origin, originResponse(200, [['Grip-Status', '99']]));
  await done;
  t.is(res.statusCode, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
  t.regex(failureLogged(log).err ?? '', /Grip-Status 99 cannot be the final response/);
});

test('a GRIP answer without a hold is sent with its body and a Content-Length', async (t) => {
  const { origin, res, done, metrics } = startSession();
  await answerNext(origin, originResponse(200, [['Grip-Status', '404 Gone Away'], ['Content-Length', '5']], 'gone\n'));
  await done;
  t.is(res.statusCode, 404);
  t.is(res.statusMessage, 'Gone Away');
  t.is(res.body, 'gone\n');
  t.is(res.header('content-length'), '5');
  t.is(await metricValue(metrics.requests, { outcome: 'grip_response' }), 1);
});

test('a stream hold relays the origin body as it arrives, then published content', async (t) => {
  const { origin, res, hub, done, metrics } = startSession();
  const body = originResponse(200, [['Grip-Hold', 'stream'], ['Grip-Channel', 'a'], ['Content-Type', 'text/event-stream']], '', { streaming: true });
  await answerNext(origin, body);
  await done;
  await until(res, 'head', () => res.headersSent);
  t.is(res.header('content-type'), 'text/event-stream');
  body.write('event: open\n\n');
  await until(res, 'data', () => res.body === 'event: open\n\n');
  body.end();
  await subscribed(hub, 'a');
  await once(body, 'end');
  await settle();
  hub.publish(streamItem('a', 'data: 1\n\n'));
  t.is(res.body, 'event: open\n\ndata: 1\n\n');
  t.is(await metricValue(metrics.requests, { outcome: 'hold_stream' }), 1);
});

test('on a listed path an SSE client\'s Last-Event-ID becomes the prev-id of channels without one', async (t) => {
  const { origin, hub, done } = startSession({ url: '/feed/events', headers: { 'last-event-id': '42' }, lastEventIdPaths: ['/feed'] });
  await answerNext(origin, originResponse(200, [['Grip-Hold', 'stream'], ['Grip-Channel', 'a, b; prev-id=7']]));
  await done;
  await subscribed(hub, 'b');
  t.deepEqual(hub.history, [
    { op: 'subscribe', channel: 'a', prevId: '42' },
    { op: 'subscribe', channel: 'b', prevId: '7' },
  ]);
});

test('an origin reason phrase Node cannot write is replaced by the standard phrase (D1)', async (t) => {
  const { origin, res, done } = startSession();
  await answerNext(origin, originResponse(200, [['Content-Type', 'text/plain']], 'fine\n', { reason: 'O\x01K' }));
  await done;
  await ended(res);
  t.is(res.statusCode, 200);
  t.is(res.statusMessage, 'OK');
  t.is(res.body, 'fine\n');
});

test('an origin header Node cannot write gives 502 with Pushpin\'s text, never a throw (D1)', async (t) => {
  const { origin, res, done, log } = startSession();
  const answer = originResponse(200, [['X-Bad', 'a\x01b']], 'never relayed\n');
  await answerNext(origin, answer);
  await done;
  t.is(res.statusCode, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
  t.true(answer.destroyed);
  t.true(log.lines.some((l) => l.msg === 'request failed'));
});

test('a GRIP answer whose head Node cannot write gives 502, never a throw (D1)', async (t) => {
  const { origin, res, done } = startSession();
  await answerNext(origin, originResponse(200, [['Grip-Status', '200 O\x01K'], ['X-Y', '1']], 'body'));
  await done;
  t.is(res.statusCode, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
});

for (const [kind, answer] of [
  ['long-poll', () => longPoll('a')],
  ['stream', () => originResponse(200, [['Grip-Hold', 'stream'], ['Grip-Channel', 'a']], 'first\n', { streaming: true })],
] as const) {
  test(`a client that leaves before the origin answered cancels the origin request, and the late ${kind} answer never becomes a hold (D3, D10)`, async (t) => {
    const { origin, res, done, hub, holds, metrics } = startSession();
    const call = await origin.nextCall();
    t.false(call.req.signal?.aborted ?? true, 'the origin request can be cancelled');
    res.destroy();
    await once(res, 'close');
    t.true(call.req.signal?.aborted, 'the origin request is cancelled');
    const late = answer();
    call.answer(late);
    await done;
    await settle();
    t.deepEqual(hub.channels(), []);
    t.is(holds.size, 0);
    t.is(await metricValue(metrics.connections, { kind: 'response' }), 0);
    t.is(await metricValue(metrics.connections, { kind: 'stream' }), 0);
    t.true(late.destroyed, 'the late answer is discarded, not read');
  });
}

for (const [when, channels, askAgain] of [
  ['a hint\'s retry', 'a; prev-id=5', (hub: ReturnType<typeof startSession>['hub']) => hub.publish(responseItem('a', { action: 'hint' }))],
  ['a refresh', 'a', (hub: ReturnType<typeof startSession>['hub']) => hub.refresh('a')],
] as const) {
  test(`a client that leaves during ${when} ends the hold and cancels the origin request; its answer never becomes a hold (D3, D10)`, async (t) => {
    const { origin, res, hub, holds, metrics } = await longPolling(channels);
    askAgain(hub);
    const again = await origin.nextCall();
    res.destroy();
    await once(res, 'close');
    t.true(again.req.signal?.aborted);
    const late = longPoll('b');
    again.answer(late);
    await settle();
    t.deepEqual(hub.channels(), []);
    t.is(holds.size, 0);
    t.is(await metricValue(metrics.connections, { kind: 'response' }), 0);
    t.true(late.destroyed);
  });
}

test('a pipelined request whose connection closed before the origin answered never becomes a hold, and its response closes (D2)', async (t) => {
  // Queued behind an earlier response: no res.socket, and Node emits no 'close' for it.
  const socket = new FakeSocket();
  const { origin, res, done, hub, holds } = startSession({ socket });
  const call = await origin.nextCall();
  const closed = once(res, 'close');
  socket.destroy();
  await closed; // what releases the admission slot
  t.true(res.destroyed);
  t.true(call.req.signal?.aborted);
  call.answer(originResponse(200, [['Grip-Hold', 'stream'], ['Grip-Channel', 'a']]));
  await done;
  await settle();
  t.deepEqual(hub.channels(), []);
  t.is(holds.size, 0);
});

test('a pipelined request whose connection has already closed is not sent to the origin (D2)', async (t) => {
  const socket = new FakeSocket();
  socket.destroyed = true;
  const { origin, res, done } = startSession({ socket });
  await done;
  await once(res, 'close');
  t.is(origin.calls.length, 0);
});

test('gone link: a long-poll that hands back to the origin (hint) and whose client leaves during the retry still sends it, once', async (t) => {
  const { origin, res, hub, gone } = await longPolling('a', 'timeout\n', [['Grip-Link', '</gone?c=1>; rel=gone']]);
  hub.publish(responseItem('a', { action: 'hint' }));
  t.deepEqual(gone.sent, [], 'a hint is not the end of the session');
  const retry = await origin.nextCall();
  res.destroy();
  await once(res, 'close');
  retry.answer(longPoll('b', 'timeout\n', [['Grip-Link', '</gone?c=2>; rel=gone']]));
  await until(gone, 'notify', () => gone.sent.length > 0);
  await settle();
  t.deepEqual(gone.urls, ['http://origin.test/gone?c=1']);
  t.is(gone.sent[0]?.requestUrl.href, TARGET.url.href);
});

test('gone link: a retry answered with a new long-poll hands the session to it, with the new answer\'s gone link', async (t) => {
  const { origin, res, hub, gone } = await longPolling('a', 'timeout\n', [['Grip-Link', '</gone?c=1>; rel=gone']]);
  hub.publish(responseItem('a', { action: 'hint' }));
  await answerNext(origin, longPoll('b', 'timeout\n', [['Grip-Link', '</gone?c=2>; rel=gone']]));
  await subscribed(hub, 'b');
  res.destroy();
  await until(gone, 'notify', () => gone.sent.length > 0);
  t.deepEqual(gone.urls, ['http://origin.test/gone?c=2']);
});

test('gone link: a retry answered without a hold ends the session by the origin: none', async (t) => {
  const { origin, res, hub, gone } = await longPolling('a', 'timeout\n', [['Grip-Link', '</gone?c=1>; rel=gone']]);
  hub.publish(responseItem('a', { action: 'hint' }));
  await answerNext(origin, originResponse(200, [['Content-Type', 'text/plain']], 'plain\n'));
  await ended(res);
  await settle();
  t.deepEqual(gone.sent, []);
});
