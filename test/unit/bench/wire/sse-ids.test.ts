import test from 'ava';
import { SseIdExtractor } from '../../../../bench/wire/sse-ids.js';

function idsOf(parts: string[]): string[] {
  const x = new SseIdExtractor();
  const got: string[] = [];
  for (const p of parts) x.push(p, (id) => got.push(id));
  return got;
}

test('reports the id of each complete event, also when split across pushes', (t) => {
  const wire = ': open\n\nid: 1\ndata: 1\n\ndata: 2\nid: 2\n\nevent: x\nid:3\n\n';
  for (let cut = 0; cut <= wire.length; cut++) {
    t.deepEqual(idsOf([wire.slice(0, cut), wire.slice(cut)]), ['1', '2', '3'], `cut at ${cut}`);
  }
});

test('skips events without an id and accepts CRLF line endings', (t) => {
  t.deepEqual(idsOf(['data: no id\n\n', 'id: 7\r\ndata: 7\r\n\r\n', ': comment\n\n']), ['7']);
});

test('holds back an event until its blank line arrives', (t) => {
  const x = new SseIdExtractor();
  const got: string[] = [];
  x.push('id: 4\ndata: 4\n', (id) => got.push(id));
  t.deepEqual(got, []);
  x.push('\n', (id) => got.push(id));
  t.deepEqual(got, ['4']);
});
