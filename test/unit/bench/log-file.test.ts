import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeLogFile } from '../../../bench/log-file.js';

const countLines = (text: string): string[] => [`${text.split('\n').filter((l) => l.length > 0).length} lines`];

test('a small log is summarized whole', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kgb-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'a.log'), 'one\ntwo\nthree\n');
  t.deepEqual(summarizeLogFile(join(dir, 'a.log'), countLines), ['3 lines']);
});

test('a log too big to read whole is summarized from its head and tail, in whole lines, and says so', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kgb-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const line = `${'x'.repeat(99)}\n`; // 100 bytes
  writeFileSync(join(dir, 'big.log'), line.repeat(400_000)); // 40 MB
  const [first, counted] = summarizeLogFile(join(dir, 'big.log'), (text) => {
    t.true(text.split('\n').every((l) => l.length === 0 || l.length === 99));
    return countLines(text);
  });
  t.regex(first ?? '', /^the log grew to 38 MiB; counts below are from its first and last 16 MiB$/);
  // The whole 100-byte lines in each 16 MiB part (16,777,216 bytes): 167,772 each.
  t.is(counted, '335544 lines');
});
