// The bench's message body: `M<seq> <publishedAtMs>`. The timestamp is the publisher's monotonic
// clock (process.hrtime → ms); CLOCK_MONOTONIC is system-wide on Linux, so a receiver in another
// process on the same machine can subtract it from its own reading. Warm-up probes use `W<seq>`.
// Pure: no I/O.

export const MessageTag = { Measured: 'M', Warmup: 'W' } as const;
export type MessageTag = (typeof MessageTag)[keyof typeof MessageTag];

export interface BenchMessage {
  tag: MessageTag;
  seq: number;
  publishedAtMs: number;
}

/** Monotonic milliseconds with microsecond resolution, comparable across processes. */
export function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

export function encodeBenchMessage(tag: MessageTag, seq: number, publishedAtMs: number): string {
  return `${tag}${seq} ${publishedAtMs.toFixed(3)}`;
}

/**
 * Parses one message body at `start` of `text` (up to `end`). Returns undefined for anything that
 * is not a bench message (the origin's initial stream body, keep-alives, …).
 */
export function parseBenchMessage(text: string, start = 0, end = text.length): BenchMessage | undefined {
  const tagChar = text.charCodeAt(start);
  let tag: MessageTag;
  if (tagChar === 77 /* M */) tag = MessageTag.Measured;
  else if (tagChar === 87 /* W */) tag = MessageTag.Warmup;
  else return undefined;
  const space = text.indexOf(' ', start + 1);
  if (space < 0 || space >= end) return undefined;
  const seq = Number(text.slice(start + 1, space));
  const publishedAtMs = Number(text.slice(space + 1, end));
  if (!Number.isInteger(seq) || !Number.isFinite(publishedAtMs)) return undefined;
  return { tag, seq, publishedAtMs };
}
