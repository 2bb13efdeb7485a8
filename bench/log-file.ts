// A proxy's log, bounded both ways: a proxy out of file descriptors can log the same error in a
// loop (Pushpin's condure, at its limit, logged 8.6 GB of accept errors in two minutes), so the
// log keeps only its first `maxBytes` and counts the rest, and a big log is summarized from its
// head and its tail rather than read whole.

import { closeSync, createWriteStream, openSync, readSync, statSync, type WriteStream } from 'node:fs';
import type { Readable } from 'node:stream';

/** A log up to twice this size is read whole; a bigger one, this much from each end. */
const PART_BYTES = 16 * 2 ** 20;

/** Writes what the given streams produce to `path`, up to `maxBytes`; beyond that only counts. */
export class BoundedLog {
  droppedBytes = 0;
  private writtenBytes = 0;
  private readonly out: WriteStream;

  private constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    this.out = createWriteStream(path);
  }

  static async open(path: string, maxBytes = 2 * PART_BYTES): Promise<BoundedLog> {
    const log = new BoundedLog(path, maxBytes);
    await new Promise<void>((resolve, reject) => {
      log.out.once('open', () => resolve());
      log.out.once('error', reject);
    });
    return log;
  }

  take(stream: Readable | null): void {
    stream?.on('data', (chunk: Buffer) => {
      if (this.writtenBytes + chunk.length <= this.maxBytes) {
        this.writtenBytes += chunk.length;
        this.out.write(chunk);
      } else {
        this.droppedBytes += chunk.length;
      }
    });
  }

  /** The log's summary, with a first line saying how much was not kept, if anything was not. */
  summary(summarize: (text: string) => string[]): string[] {
    const kept = summarizeLogFile(this.path, summarize);
    if (this.droppedBytes === 0) return kept;
    return [`${(this.droppedBytes / 2 ** 20).toFixed(0)} MiB of output past the first ${(this.maxBytes / 2 ** 20).toFixed(0)} MiB was not kept`, ...kept];
  }

  end(): Promise<void> {
    return new Promise((resolve) => this.out.end(() => resolve()));
  }
}


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
