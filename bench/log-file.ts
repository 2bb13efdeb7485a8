// Reads a proxy's log for log-summary.ts without holding all of it: a proxy out of file
// descriptors can log the same error in a loop (Pushpin's at 100,000 streams grew past the
// largest string V8 can make), so a big log is summarized from its head and its tail.

import { closeSync, openSync, readSync, statSync } from 'node:fs';

const PART_BYTES = 16 * 2 ** 20;

export function summarizeLogFile(path: string, summarize: (text: string) => string[]): string[] {
  const size = statSync(path).size;
  if (size <= 2 * PART_BYTES) return summarize(readPart(path, 0, size));
  const head = readPart(path, 0, PART_BYTES);
  const tail = readPart(path, size - PART_BYTES, PART_BYTES);
  // Whole lines only: drop the cut line at the end of the head and at the start of the tail.
  const text = `${head.slice(0, head.lastIndexOf('\n') + 1)}${tail.slice(tail.indexOf('\n') + 1)}`;
  return [`the log grew to ${(size / 2 ** 20).toFixed(0)} MiB; counts below are from its first and last ${PART_BYTES / 2 ** 20} MiB`, ...summarize(text)];
}

function readPart(path: string, offset: number, length: number): string {
  const buf = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    const n = readSync(fd, buf, 0, length, offset);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
