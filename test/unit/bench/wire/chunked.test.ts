import test from 'ava';
import { ChunkedDecoder } from '../../../../bench/wire/chunked.js';

test('decodes chunks split at every byte boundary', (t) => {
  const wire = '5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n';
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new ChunkedDecoder();
    const out = d.push(wire.slice(0, cut)) + d.push(wire.slice(cut));
    t.is(out, 'hello, world', `cut at ${cut}`);
    t.true(d.isDone, `cut at ${cut}`);
  }
});

test('is not done before the terminating chunk and its blank line', (t) => {
  const d = new ChunkedDecoder();
  t.is(d.push('3\r\nabc\r\n0\r\n'), 'abc');
  t.false(d.isDone);
  d.push('\r\n');
  t.true(d.isDone);
});

test('skips trailer fields after the last chunk', (t) => {
  const d = new ChunkedDecoder();
  t.is(d.push('1\r\nx\r\n0\r\nX-Trailer: 1\r\n\r\n'), 'x');
  t.true(d.isDone);
});

test('rejects a chunk size that is not hexadecimal', (t) => {
  const d = new ChunkedDecoder();
  t.throws(() => d.push('zz\r\nabc\r\n'), { message: /bad chunk size line/ });
});

test('rejects chunk data not followed by CRLF', (t) => {
  const d = new ChunkedDecoder();
  t.throws(() => d.push('2\r\nabXY'), { message: /not followed by CRLF/ });
});
