import test from 'ava';
import { BodyFraming, findHeadEnd, parseResponseHead } from '../../../../bench/wire/http-head.js';

test('finds the end of the head just past the blank line', (t) => {
  t.is(findHeadEnd('HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody'), 25);
  t.is(findHeadEnd('HTTP/1.1 200 OK\r\nA: b\r\n'), -1);
});

test('reads status, chunked framing and keep-alive', (t) => {
  const h = parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n');
  t.is(h.status, 200);
  t.is(h.framing, BodyFraming.Chunked);
  t.true(h.keepAlive);
});

test('reads Content-Length framing and Connection: close', (t) => {
  const h = parseResponseHead('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 32\r\nconnection: close\r\n\r\n');
  t.is(h.status, 502);
  t.is(h.framing, BodyFraming.Length);
  t.is(h.contentLength, 32);
  t.false(h.keepAlive);
});

test('a 101 has no body; a response without length reads until close and is not reused', (t) => {
  t.is(parseResponseHead('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n').framing, BodyFraming.None);
  const h = parseResponseHead('HTTP/1.1 200 OK\r\n\r\n');
  t.is(h.framing, BodyFraming.UntilClose);
  t.false(h.keepAlive);
});

test('HTTP/1.0 is reused only with Connection: keep-alive', (t) => {
  t.false(parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n').keepAlive);
  t.true(parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n').keepAlive);
});

test('rejects a bad status line and a bad Content-Length, naming them', (t) => {
  t.throws(() => parseResponseHead('FTP 200\r\n\r\n'), { message: /bad HTTP status line/ });
  t.throws(() => parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n'), { message: /bad Content-Length: -4/ });
});
