import test from 'ava';
import { encodeBenchMessage, MessageTag, monotonicMs, parseBenchMessage } from '../../../../bench/wire/message.js';

test('round-trips a message with its tag, sequence and millisecond timestamp', (t) => {
  const text = encodeBenchMessage(MessageTag.Measured, 42, 1234.5678);
  t.is(text, 'M42 1234.568');
  t.deepEqual(parseBenchMessage(text), { tag: 'M', seq: 42, publishedAtMs: 1234.568 });
});

test('parses a message inside a larger text between start and end', (t) => {
  const text = 'data: W3 7.250\n\n';
  t.deepEqual(parseBenchMessage(text, 6, 14), { tag: 'W', seq: 3, publishedAtMs: 7.25 });
});

test('returns undefined for text that is not a bench message', (t) => {
  t.is(parseBenchMessage(': open'), undefined);
  t.is(parseBenchMessage('M'), undefined);
  t.is(parseBenchMessage('Mx 1'), undefined);
  t.is(parseBenchMessage('M1 abc'), undefined);
});

test('the monotonic clock does not go backwards', (t) => {
  const a = monotonicMs();
  const b = monotonicMs();
  t.true(b >= a);
});
