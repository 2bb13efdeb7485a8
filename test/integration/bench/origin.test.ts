import test from 'ava';
import http from 'node:http';
import { parseWsEventTypes, startOrigin } from '../../../bench/origin.js';

function get(port: number, method: string, path: string, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('latin1') }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : Buffer.from(body, 'latin1'));
  });
}

test('answers /sse with a stream hold on the channel from the query', async (t) => {
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const res = await get(origin.port, 'GET', '/sse?channel=a%20b');
  t.is(res.headers['grip-hold'], 'stream');
  t.is(res.headers['grip-channel'], 'a b');
  t.is(res.headers['content-type'], 'text/event-stream');
  t.is(origin.stats().sse, 1);
});

test('answers /poll with a response hold and counts the poll', async (t) => {
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const res = await get(origin.port, 'GET', '/poll?channel=herd');
  t.is(res.headers['grip-hold'], 'response');
  t.is(res.headers['grip-channel'], 'herd');
  t.is(res.headers['grip-timeout'], '120');
  const stats = origin.stats();
  t.is(stats.poll, 1);
  t.true(stats.lastPollAtMs > 0 && stats.lastPollAtMs <= stats.nowMs);
});

test('accepts a WebSocket-over-HTTP OPEN with OPEN and a subscribe control message', async (t) => {
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const res = await get(origin.port, 'POST', '/ws?channel=w1', 'OPEN\r\n');
  t.is(res.status, 200);
  t.is(res.headers['content-type'], 'application/websocket-events');
  t.is(res.headers['sec-websocket-extensions'], 'grip');
  const control = 'c:{"type":"subscribe","channel":"w1"}';
  t.is(res.body, `OPEN\r\nTEXT ${control.length.toString(16)}\r\n${control}\r\n`);
  t.is(origin.stats().wsOpen, 1);
});

test('answers a WebSocket-over-HTTP CLOSE with a normal close, and a bad body with 400', async (t) => {
  const origin = await startOrigin();
  t.teardown(() => origin.close());
  const closed = await get(origin.port, 'POST', '/ws?channel=w1', 'CLOSE 2\r\n\x03\xe8\r\n');
  t.is(closed.body, 'CLOSE 2\r\n\x03\xe8\r\n');
  const bad = await get(origin.port, 'POST', '/ws?channel=w1', 'TEXT zz\r\n');
  t.is(bad.status, 400);
  t.regex(bad.body, /bad length/);
});

test('parses event types of a websocket-events body, payloads included', (t) => {
  t.deepEqual(parseWsEventTypes('OPEN\r\nTEXT 5\r\nhe\r\no\r\nPING\r\n'), ['OPEN', 'TEXT', 'PING']);
  t.throws(() => parseWsEventTypes('OPEN'), { message: /without CRLF/ });
});
