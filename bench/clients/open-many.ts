// Opens many connections with a bounded number of attempts in flight (a burst of thousands of
// SYNs overflows listen backlogs and turns into 1 s retransmits that measure the kernel, not
// the proxy).

import type { OpenResult } from '../agent-protocol.js';
import { monotonicMs } from '../wire/message.js';

const RETRY_PAUSE_MS = 100;

/**
 * `attempt(i)` resolves when connection i is ready and rejects when it failed; a failed
 * connection is attempted again up to `retries` times, after a short pause.
 */
export async function openMany(count: number, window: number, retries: number, attempt: (i: number) => Promise<void>): Promise<OpenResult> {
  const startedAtMs = monotonicMs();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let retried = 0;
  const firstErrors: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      for (let tries = 0; ; tries++) {
        try {
          await attempt(i);
          opened++;
          break;
        } catch (err) {
          if (firstErrors.length < 5) firstErrors.push((err as Error).message);
          if (tries >= retries) {
            failed++;
            break;
          }
          retried++;
          await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(window, count)) }, lane));
  return { opened, failed, retried, firstErrors, startedAtMs, finishedAtMs: monotonicMs() };
}

export function sourceAddress(srcAddrs: string[], i: number): string | undefined {
  return srcAddrs.length === 0 ? undefined : srcAddrs[i % srcAddrs.length];
}
