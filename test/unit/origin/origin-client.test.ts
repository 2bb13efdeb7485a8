import test from 'ava';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { KgError } from '../../../sidecar/src/errors.js';
import { readBody } from '../../../sidecar/src/origin/origin-client.js';

// readBody on a stand-in for the origin response; requests themselves are covered by
// test/integration/origin-client.test.ts against a real server.

function body(): PassThrough & IncomingMessage {
  return new PassThrough() as PassThrough & IncomingMessage;
}

async function kgCode(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof KgError)) throw new Error(`expected a KgError, got ${String(err)}`);
  return err.code;
}

test('reads a body in chunks up to the limit, inclusive', async (t) => {
  const res = body();
  const read = readBody(res, 10);
  res.write('hello ');
  res.end('here');
  t.is((await read).toString(), 'hello here');
});

test('a body past the limit fails with KG_ERR_INSTRUCT_TOO_LARGE and the response is destroyed', async (t) => {
  const res = body();
  const read = readBody(res, 10);
  res.write('0123456789');
  res.write('!');
  t.is(await kgCode(read), 'KG_ERR_INSTRUCT_TOO_LARGE');
  t.true(res.destroyed);
});

test('an origin that fails or aborts mid-body is KG_ERR_ORIGIN_UNREACHABLE', async (t) => {
  const failing = body();
  const read = readBody(failing, 100);
  failing.destroy(new Error('socket hang up'));
  t.is(await kgCode(read), 'KG_ERR_ORIGIN_UNREACHABLE');
  const aborted = body();
  const readAborted = readBody(aborted, 100);
  aborted.emit('aborted');
  t.is(await kgCode(readAborted), 'KG_ERR_ORIGIN_UNREACHABLE');
});
