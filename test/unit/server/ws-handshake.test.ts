import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import WebSocket from 'ws';
import { DEFAULT_WS } from '../../../sidecar/src/config.js';
import { headerListFromRaw } from '../../../sidecar/src/grip/ws-headers.js';
import type { HeaderList } from '../../../sidecar/src/grip/types.js';
import type { OpenRefusal } from '../../../sidecar/src/holds/ws-origin-link.js';
import { WsHandshake } from '../../../sidecar/src/server/ws-handshake.js';

// WsHandshake answers an upgrade once the origin has decided: the 101 (on a local server, with a
// ws client) or the refusal (written to a PassThrough standing in for the socket).

/** A server whose upgrades are accepted with `originHeaders`; resolves the client's 101 response. */
async function upgradeWith(t: ExecutionContext, originHeaders: HeaderList, offered: string[]) {
  const handshake = new WsHandshake(DEFAULT_WS);
  const server = http.createServer();
  const accepted = new Promise<WebSocket | undefined>((resolve) => {
    server.on('upgrade', (req, socket, head) => resolve(handshake.accept(req, socket, head, originHeaders, headerListFromRaw(req.rawHeaders))));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, offered);
  t.teardown(async () => {
    client.terminate();
    handshake.terminateAll();
    await handshake.closed();
    server.close();
  });
  const upgraded = once(client, 'upgrade') as Promise<[http.IncomingMessage]>;
  await once(client, 'open');
  const [res] = await upgraded;
  return { res, client, serverWs: await accepted };
}

/** What refuse() writes, and whether it closes the socket afterwards. */
async function refusalText(refusal: OpenRefusal): Promise<{ text: string; destroyed: boolean }> {
  const socket = new PassThrough();
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  new WsHandshake(DEFAULT_WS).refuse(socket, refusal);
  await once(socket, 'close');
  return { text: Buffer.concat(chunks).toString('latin1'), destroyed: socket.destroyed };
}

test('accept completes the 101 with the origin\'s handshake headers and the subprotocol it chose from the client\'s offer', async (t) => {
  const { res, client, serverWs } = await upgradeWith(t,
    [['Sec-WebSocket-Protocol', 'chat'], ['X-Origin', 'yes'], ['Set-Meta-User', 'alice'], ['Content-Type', 'application/websocket-events']],
    ['superchat', 'chat']);
  t.is(res.statusCode, 101);
  t.is(client.protocol, 'chat');
  t.is(res.headers['x-origin'], 'yes');
  t.is(res.headers['set-meta-user'], undefined, 'Set-Meta-* is for the sidecar');
  t.truthy(serverWs);
  t.is(serverWs?.protocol, 'chat');
});

test('a subprotocol the client did not offer is not chosen', async (t) => {
  const { res, client } = await upgradeWith(t, [['Sec-WebSocket-Protocol', 'other']], []);
  t.is(res.statusCode, 101);
  t.is(client.protocol, '');
  t.is(res.headers['sec-websocket-protocol'], undefined);
});

test('refuse relays the origin\'s status, reason, headers and body, then closes the socket', async (t) => {
  const { text, destroyed } = await refusalText({
    type: 'refused',
    reply: { type: 'reply', status: 403, reason: 'Go Away caf\xe9', headers: [['X-Why', 'policy\tnow'], ['Set-Meta-A', 'b']], body: Buffer.from('denied') },
  });
  t.is(text, 'HTTP/1.1 403 Go Away caf\xe9\r\nX-Why: policy\tnow\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied');
  t.true(destroyed);
});

test('refuse writes no control chars: a reason Node could not write becomes the standard phrase, such a header is dropped', async (t) => {
  for (const reason of ['Go\r\nAway', 'Go\nX-Evil: 1', 'bad\u0001', 'nul\u0000', 'del\u007f', 'wide \u20ac']) {
    const { text } = await refusalText({
      type: 'refused',
      reply: {
        type: 'reply', status: 403, reason,
        headers: [['X-Ok', 'yes'], ['X-Bad', 'a\r\nX-Evil: 1'], ['X-Ctl', 'a\u0001b'], ['Bad Name', 'v'], ['X-Wide', '\u20ac']],
        body: Buffer.from('denied'),
      },
    });
    t.is(text, 'HTTP/1.1 403 Forbidden\r\nX-Ok: yes\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied', JSON.stringify(reason));
  }
});

test('refuse cuts a refusing origin\'s body at 100,000 bytes', async (t) => {
  const { text } = await refusalText({
    type: 'refused', reply: { type: 'reply', status: 400, reason: '', headers: [], body: Buffer.alloc(150_000, 'x') },
  });
  t.true(text.startsWith('HTTP/1.1 400 Bad Request\r\nContent-Length: 100000\r\n'));
  t.is(text.length - text.indexOf('\r\n\r\n') - 4, 100_000);
});

test('refuse answers a failed OPEN with 502 and the proxy error text', async (t) => {
  const { text } = await refusalText({ type: 'failed' });
  t.is(text, 'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\nConnection: close\r\n\r\nError while proxying to origin.\n');
});

test('refuse destroys a socket that can no longer be written', (t) => {
  const socket = new PassThrough();
  socket.end();
  new WsHandshake(DEFAULT_WS).refuse(socket, { type: 'failed' });
  t.true(socket.destroyed);
});
