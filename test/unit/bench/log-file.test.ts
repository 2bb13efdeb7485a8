import test from 'ava';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { BoundedLog, summarizeLogFile } from '../../../bench/log-file.js';

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

test('a bounded log keeps the first bytes up to its limit, counts the rest and says so in its summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kgb-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = await BoundedLog.open(join(dir, 'p.log'), 2 * 2 ** 20);
  const out = new PassThrough();
  log.take(out);
  const line = Buffer.from(`${'e'.repeat(1023)}\n`);
  for (let i = 0; i < 3 * 1024; i++) out.write(line); // 3 MiB in 1 KiB lines
  out.end();
  await once(out, 'end');
  await log.end();
  t.is(statSync(join(dir, 'p.log')).size, 2 * 2 ** 20);
  t.is(log.droppedBytes, 2 ** 20);
  t.deepEqual(log.summary(countLines), ['1 MiB of output past the first 2 MiB was not kept', '2048 lines']);
});
