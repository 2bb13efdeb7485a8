import test from 'ava';
import http, { type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { withDeadline } from '../../../bench/proc.js';
import { ChunkWriter, frameChunk, type CoalesceState } from '../../../sidecar/src/holds/chunk-writer.js';

test('frames content as one HTTP/1.1 chunk, and empty content as nothing', (t) => {
  t.is(frameChunk(Buffer.from('hello')).toString('latin1'), '5\r\nhello\r\n');
  t.is(frameChunk(Buffer.alloc(300, 'x')).toString('latin1'), `12c\r\n${'x'.repeat(300)}\r\n`);
  t.is(frameChunk(Buffer.alloc(0)).length, 0);
});

/** One held response per raw client connection; the raw bytes each client received. */
async function heldResponses(t: import('ava').ExecutionContext, count: number, requestLine = 'GET / HTTP/1.1') {
  const held: ServerResponse[] = [];
  let onHeld: () => void = () => {};
  const allHeld = new Promise<void>((resolve) => { onHeld = resolve; });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.flushHeaders();
    held.push(res);
    if (held.length === count) onHeld();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const received: string[] = [];
  const sockets: Socket[] = [];
  let waiters: Array<() => void> = [];
  for (let i = 0; i < count; i++) {
    received.push('');
    const s = net.connect(port, '127.0.0.1');
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      received[i] += d;
      const woken = waiters;
      waiters = [];
      for (const w of woken) w();
    });
    s.write(`${requestLine}\r\nHost: x\r\n\r\n`);
    sockets.push(s);
  }
  await withDeadline(allHeld, 5000, () => `${count} held responses (${held.length} so far)`);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    server.close();
  });
  /** Resolves once every client's bytes end with `suffix`; rejects, with what they got, after 5 s. */
  const waitForAll = async (suffix: string): Promise<void> => {
    const arrived = async (): Promise<void> => {
      while (!received.every((r) => r.endsWith(suffix))) await new Promise<void>((resolve) => waiters.push(resolve));
    };
    await withDeadline(arrived(), 5000, () => `every client's bytes to end with ${JSON.stringify(suffix)}; got ${JSON.stringify(received)}`);
  };
  return { held, received, waitForAll };
}

const newState = (): CoalesceState => ({ lastWriteTick: 0, corkedTick: 0 });

/** Counts the writes that reach a socket's underlying handle (one per system write). */
function countHandleWrites(socket: Socket): { writes: number } {
  const counter = { writes: 0 };
  const s = socket as Socket & { _write: Function; _writev: Function };
  const write = s._write.bind(s);
  const writev = s._writev.bind(s);
  s._write = (...args: unknown[]) => { counter.writes++; return write(...args); };
  s._writev = (...args: unknown[]) => { counter.writes++; return writev(...args); };
  return counter;
}

test('writes the same framed Buffer to every chunked response', async (t) => {
  const { held, received, waitForAll } = await heldResponses(t, 3);
  const writer = new ChunkWriter();
  const seen: unknown[] = [];
  for (const res of held) {
    const socket = res.socket as Socket;
    const write = socket.write.bind(socket) as (chunk: unknown) => boolean;
    socket.write = ((chunk: unknown) => { seen.push(chunk); return write(chunk); }) as typeof socket.write;
  }
  const content = Buffer.from('data: one\n\n');
  for (const res of held) writer.write(res, content, newState());
  await waitForAll('b\r\ndata: one\n\n\r\n');
  t.is(seen.length, 3);
  t.true(seen.every((chunk) => chunk === seen[0]), 'one Buffer shared by all connections');
  for (const r of received) t.true(r.includes('Transfer-Encoding: chunked'));
});

test('sends the first write of a tick at once and the rest of that tick in one more write, in order', async (t) => {
  const { held, received, waitForAll } = await heldResponses(t, 1);
  const res = held[0] as ServerResponse;
  const counter = countHandleWrites(res.socket as Socket);
  const writer = new ChunkWriter();
  const state = newState();
  const items = ['a', 'b', 'c', 'd', 'e'].map((x) => Buffer.from(`data: ${x}\n\n`));
  for (const item of items) writer.write(res, item, state);
  t.is(counter.writes, 1, 'only the first write went out inside the tick');
  await waitForAll('data: e\n\n\r\n');
  t.is(counter.writes, 2);
  const body = (received[0] as string).slice((received[0] as string).indexOf('\r\n\r\n') + 4);
  t.is(body, items.map((i) => `${i.length.toString(16)}\r\n${i.toString()}\r\n`).join(''));
});

test('after a tick with several writes to one connection the next tick writes once, at its end; after a quiet tick the first write goes at once again', async (t) => {
  const { held, waitForAll } = await heldResponses(t, 1);
  const res = held[0] as ServerResponse;
  const counter = countHandleWrites(res.socket as Socket);
  const writer = new ChunkWriter();
  const state = newState();
  writer.write(res, Buffer.from('data: 1\n\n'), state);
  writer.write(res, Buffer.from('data: 2\n\n'), state);
  await waitForAll('data: 2\n\n\r\n');
  t.is(counter.writes, 2);
  // Items come in runs: this tick is corked from its first write.
  writer.write(res, Buffer.from('data: 3\n\n'), state);
  t.is(counter.writes, 2, 'held until the tick ends');
  await waitForAll('data: 3\n\n\r\n');
  t.is(counter.writes, 3);
  // That tick had one write per connection: the run is over, the next first write goes at once.
  writer.write(res, Buffer.from('data: 4\n\n'), state);
  t.is(counter.writes, 4);
  await waitForAll('data: 4\n\n\r\n');
});

test('writes through res.write when the response is not chunked (HTTP/1.0 client)', async (t) => {
  const { held, received, waitForAll } = await heldResponses(t, 1, 'GET / HTTP/1.0');
  const res = held[0] as ServerResponse;
  t.false(res.chunkedEncoding);
  const writer = new ChunkWriter();
  const state = newState();
  writer.write(res, Buffer.from('data: raw\n\n'), state);
  writer.write(res, Buffer.alloc(0), state);
  await waitForAll('data: raw\n\n');
  t.false((received[0] as string).includes('\r\nb\r\n'), 'no chunk framing');
});

test('writes through res.write while the response has no socket (a pipelined response waiting its turn)', async (t) => {
  const { held, received, waitForAll } = await heldResponses(t, 1);
  const res = held[0] as ServerResponse;
  const socket = res.socket as Socket;
  // As for a pipelined response waiting for its turn: no socket yet, output kept by the response.
  res.detachSocket(socket);
  const writer = new ChunkWriter();
  writer.write(res, Buffer.from('data: queued\n\n'), newState());
  t.true(res.writableLength > 0, 'kept by the response, not written past it');
  res.assignSocket(socket);
  res.write(''); // flushes the response's own queue onto the socket
  await waitForAll('data: queued\n\n\r\n');
  const body = (received[0] as string).slice((received[0] as string).indexOf('\r\n\r\n') + 4);
  t.is(body, 'e\r\ndata: queued\n\n\r\n', 'one chunk, framed once');
  t.is(res.writableLength, 0, 'nothing left queued');
});
