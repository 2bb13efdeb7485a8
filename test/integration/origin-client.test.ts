import test from 'ava';
import type { Socket } from 'node:net';
import { withDeadline } from '../../bench/proc.js';
import { OriginClient } from '../../sidecar/src/origin/origin-client.js';
import { listenHttp, once } from '../helpers/http.js';

// The origin client's connection pool: idle connections are closed by us before the origin's
// own keep-alive timeout can race a request sent on them; busy ones are left alone.

const IDLE_MS = 150;

test('an idle kept-alive origin connection is closed by the client after its idle time', async (t) => {
  const serverSockets: Socket[] = [];
  const origin = await listenHttp((req, res) => {
    serverSockets.push(req.socket);
    res.end('ok');
  });
  // Never closed by the origin: only our side can end it.
  origin.server.keepAliveTimeout = 0;
  const client = new OriginClient({ timeoutMs: 5000, idleSocketMs: IDLE_MS });
  t.teardown(async () => { client.close(); await origin.close(); });
  const res = await client.request({ method: 'GET', url: new URL(`${origin.url}/x`), headers: [] });
  let idleTimedOut = false;
  res.socket.once('timeout', () => { idleTimedOut = true; });
  res.resume();
  await withDeadline(once((resolve) => res.once('end', resolve)), 5000, 'the end of the response');
  const endedAt = Date.now();
  t.is(serverSockets.length, 1);
  const socket = serverSockets[0] as Socket;
  t.false(socket.destroyed, 'kept alive once the response is done');
  await withDeadline(once((resolve) => socket.once('close', resolve)), 5000, 'the idle origin connection to be closed');
  t.true(idleTimedOut, "closed by the client's idle timer");
  t.true(Date.now() - endedAt >= IDLE_MS / 2, 'not before its idle time');
});

test('a response still streaming from the origin is not cut when it is quiet for longer than the idle time', async (t) => {
  let finish: (() => void) | undefined;
  const origin = await listenHttp((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('first;');
    finish = () => res.end('second');
  });
  const client = new OriginClient({ timeoutMs: 5000, idleSocketMs: IDLE_MS });
  t.teardown(async () => { client.close(); await origin.close(); });
  const res = await client.request({ method: 'GET', url: new URL(`${origin.url}/slow`), headers: [] });
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  const ended = once((resolve) => res.once('end', resolve));
  // The socket's idle timer fires while the response is in progress; the body must go on.
  await once((resolve) => res.socket.once('timeout', resolve));
  finish?.();
  await ended;
  t.is(Buffer.concat(chunks).toString(), 'first;second');
});
