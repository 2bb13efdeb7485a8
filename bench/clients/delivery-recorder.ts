// Shared bookkeeping for every stream (SSE or WebSocket) client in one agent: latencies,
// completeness, order, and waiters for "every open stream has message X".

import type { CollectResult, WaitResult } from '../agent-protocol.js';
import { type BenchMessage, MessageTag } from '../wire/message.js';

/** Per-stream state the recorder reads and updates. */
export interface StreamProgress {
  lastSeq: number;
}

interface Waiter {
  key: number;
  resolve: (r: WaitResult) => void;
  timer: NodeJS.Timeout;
}

export class DeliveryRecorder {
  private latenciesMs: number[] = [];
  private received = 0;
  private duplicates = 0;
  private outOfOrder = 0;
  private dropped = 0;
  private firstReceivedAtMs = 0;
  private lastReceivedAtMs = 0;
  /** Streams that received each message, keyed by `reachKey` (a number: no string per delivery). */
  private readonly reached = new Map<number, number>();
  private waiters: Waiter[] = [];
  open = 0;

  onMessage(stream: StreamProgress, msg: BenchMessage, receivedAtMs: number): void {
    if (msg.tag === MessageTag.Measured) {
      if (msg.seq === stream.lastSeq) {
        this.duplicates++;
        return;
      }
      if (msg.seq < stream.lastSeq) this.outOfOrder++;
      else stream.lastSeq = msg.seq;
      this.received++;
      this.latenciesMs.push(receivedAtMs - msg.publishedAtMs);
      if (this.firstReceivedAtMs === 0) this.firstReceivedAtMs = receivedAtMs;
      this.lastReceivedAtMs = receivedAtMs;
    }
    const key = reachKey(msg.tag, msg.seq);
    const n = (this.reached.get(key) ?? 0) + 1;
    this.reached.set(key, n);
    if (this.waiters.length > 0 && n >= this.open) this.settle(key);
  }

  onStreamOpened(): void {
    this.open++;
  }

  onStreamLost(): void {
    this.open--;
    this.dropped++;
    for (const w of [...this.waiters]) if ((this.reached.get(w.key) ?? 0) >= this.open) this.settle(w.key);
  }

  onStreamClosedByUs(): void {
    this.open--;
  }

  waitFor(tag: MessageTag, seq: number, timeoutMs: number): Promise<WaitResult> {
    const key = reachKey(tag, seq);
    const reached = this.reached.get(key) ?? 0;
    if (reached >= this.open) return Promise.resolve({ reached, open: this.open, timedOut: false });
    return new Promise((resolve) => {
      const waiter: Waiter = {
        key,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve({ reached: this.reached.get(key) ?? 0, open: this.open, timedOut: true });
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Returns what was measured since the last collect and starts afresh. */
  collect(): Omit<CollectResult, 'cpuMs'> {
    const result: Omit<CollectResult, 'cpuMs'> = {
      latenciesMs: this.latenciesMs,
      received: this.received,
      duplicates: this.duplicates,
      outOfOrder: this.outOfOrder,
      dropped: this.dropped,
      open: this.open,
      firstReceivedAtMs: this.firstReceivedAtMs,
      lastReceivedAtMs: this.lastReceivedAtMs,
    };
    this.latenciesMs = [];
    this.received = this.duplicates = this.outOfOrder = this.dropped = 0;
    this.firstReceivedAtMs = this.lastReceivedAtMs = 0;
    this.reached.clear();
    return result;
  }

  private settle(key: number): void {
    const reached = this.reached.get(key) ?? 0;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.key === key) {
        clearTimeout(w.timer);
        w.resolve({ reached, open: this.open, timedOut: false });
      } else keep.push(w);
    }
    this.waiters = keep;
  }
}

function reachKey(tag: MessageTag, seq: number): number {
  return seq * 2 + (tag === MessageTag.Warmup ? 1 : 0);
}
