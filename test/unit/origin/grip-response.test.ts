import test from 'ava';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { withDeadline } from '../../../bench/proc.js';
import { KgError } from '../../../sidecar/src/errors.js';
import { rawToList } from '../../../sidecar/src/grip/headers.js';
import { readGripResponse, type GripBodyUse } from '../../../sidecar/src/origin/grip-response.js';
import type { HeaderList } from '../../../sidecar/src/grip/types.js';
import { originResponse } from '../holds/http-fakes.js';

const URL_ = 'http://origin.test/feed';

function read(res: IncomingMessage, use: GripBodyUse = 'response', maxBodyBytes = 100) {
  return readGripResponse(res, rawToList(res.rawHeaders), { requestUrl: URL_, maxBodyBytes, use });
}

async function kgCode(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof KgError)) throw new Error(`expected a KgError, got ${String(err)}`);
  return err.code;
}

const longPoll: HeaderList = [['Grip-Hold', 'response'], ['Grip-Channel', 'a']];
const stream: HeaderList = [['Grip-Hold', 'stream'], ['Grip-Channel', 'a']];

test('a long-poll\'s body (its timeout response) is read whole and travels beside the instruct', async (t) => {
  const { instruct, body } = await read(originResponse(200, longPoll, 'timeout body'));
  t.is(instruct.hold?.mode, 'response');
  t.true(Buffer.isBuffer(body));
  t.is(body.toString(), 'timeout body');
  t.false('body' in instruct, 'the instruct is not given the body read after parsing');
});

test('a plain GRIP answer (no hold, no link) is read whole', async (t) => {
  const { instruct, body } = await read(originResponse(200, [['Grip-Status', '404']], 'gone'));
  t.is(instruct.code, 404);
  t.is(body.toString(), 'gone');
});

test('a stream hold\'s body is left to arrive: the origin response itself, unread', async (t) => {
  const res = originResponse(200, stream, '', { streaming: true });
  const { instruct, body } = await read(res);
  t.is(instruct.hold?.mode, 'stream');
  t.is(body, res);
  t.is(res.readableFlowing, null, 'nothing consumed it');
});

test('a next link alone (paged streaming) leaves the body to arrive', async (t) => {
  const res = originResponse(200, [['Grip-Link', '</next>; rel=next']], 'page', { streaming: true });
  const { instruct, body } = await read(res);
  t.is(instruct.nextLink?.url, 'http://origin.test/next');
  t.is(body, res);
});

test('a JSON instruct is read whole; the body is the one its response object gives', async (t) => {
  const doc = { hold: { mode: 'stream', channels: [{ name: 'a' }] }, response: { body: 'from json' } };
  const { instruct, body } = await read(originResponse(200, [['Content-Type', 'application/grip-instruct']], JSON.stringify(doc)), 'stream-page');
  t.is(instruct.hold?.mode, 'stream');
  t.is(body.toString(), 'from json');
});

test('a body read whole may not pass the limit: KG_ERR_INSTRUCT_TOO_LARGE, and the response is destroyed', async (t) => {
  const res = originResponse(200, longPoll, 'x'.repeat(101));
  t.is(await kgCode(read(res)), 'KG_ERR_INSTRUCT_TOO_LARGE');
  t.true(res.destroyed);
});

test('invalid instructions throw KG_ERR_INSTRUCT_INVALID and the response is drained', async (t) => {
  const res = originResponse(200, [['Grip-Hold', 'sideways']], 'unused');
  const ended = once(res, 'end');
  t.is(await kgCode(read(res)), 'KG_ERR_INSTRUCT_INVALID');
  await withDeadline(ended, 5000, 'the response to be drained to its end');
  t.true(res.readableEnded);
});

test('a Grip-Status below 200 is invalid, for a client response and a stream page alike', async (t) => {
  t.is(await kgCode(read(originResponse(200, [['Grip-Status', '99'], ['Grip-Hold', 'stream']]))), 'KG_ERR_INSTRUCT_INVALID');
  t.is(await kgCode(read(originResponse(200, [['Grip-Status', '103'], ['Grip-Hold', 'stream']]), 'stream-page')), 'KG_ERR_INSTRUCT_INVALID');
});

test('on a stream page a header-instructed response hold is invalid and its body not read', async (t) => {
  const res = originResponse(200, longPoll, 'never read');
  const err = await read(res, 'stream-page').then(() => undefined, (e: unknown) => e);
  t.true(err instanceof KgError && err.code === 'KG_ERR_INSTRUCT_INVALID');
  t.is((err as Error).message, `next link ${URL_} returned a non-stream hold`);
});
