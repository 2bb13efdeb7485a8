import test from 'ava';
import { SseDataExtractor } from '../../../../bench/wire/sse-extract.js';

function extractAll(parts: string[]): string[] {
  const x = new SseDataExtractor();
  const got: string[] = [];
  for (const p of parts) x.push(p, (text, start, end) => got.push(text.slice(start, end)));
  return got;
}

test('reports the data of each complete event, also when split across pushes', (t) => {
  const wire = ': open\n\ndata: M1 5.000\n\nevent: x\ndata: M2 6.000\n\n';
  for (let cut = 0; cut <= wire.length; cut++) {
    t.deepEqual(extractAll([wire.slice(0, cut), wire.slice(cut)]), ['M1 5.000', 'M2 6.000'], `cut at ${cut}`);
  }
});

test('accepts CRLF line endings and data without a space after the colon', (t) => {
  t.deepEqual(extractAll(['data:A\r\n\r\ndata: B\r\n\r\n']), ['A', 'B']);
});

test('holds back an event until its blank line arrives', (t) => {
  const x = new SseDataExtractor();
  const got: string[] = [];
  x.push('data: M1 1\n', (s, a, b) => got.push(s.slice(a, b)));
  t.deepEqual(got, []);
  x.push('\n', (s, a, b) => got.push(s.slice(a, b)));
  t.deepEqual(got, ['M1 1']);
});

test('ignores events without data (comments, keep-alives)', (t) => {
  t.deepEqual(extractAll([':keep-alive\n\n: x\n\nid: 3\n\n']), []);
});
