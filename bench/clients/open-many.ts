// Opens many connections with a bounded number of attempts in flight (a burst of thousands of
// SYNs overflows listen backlogs and turns into 1 s retransmits that measure the kernel, not
// the proxy).

import type { OpenResult } from '../agent-protocol.js';
import { monotonicMs } from '../wire/message.js';

const RETRY_PAUSE_MS = 100;

/** When to give up opening: a proxy out of file descriptors stalls every attempt until it times out. */
export interface OpenLimits {
  /** No attempt starts later than this after the first. */
  deadlineMs?: number;
  /** No attempt starts after this many failed attempts in a row (no success between them). */
  maxFailuresInARow?: number;
}

/**
 * `attempt(i)` resolves when connection i is ready and rejects when it failed; a failed
 * connection is attempted again up to `retries` times, after a short pause.
 */
export async function openMany(
  count: number,
  window: number,
  retries: number,
  attempt: (i: number) => Promise<void>,
  limits: OpenLimits = {},
): Promise<OpenResult> {
  const startedAtMs = monotonicMs();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let retried = 0;
  let failuresInARow = 0;
  let lastOpenedAtMs = startedAtMs;
  let stoppedEarly: string | undefined;
  const firstErrors: string[] = [];
  const mayStart = (): boolean => {
    if (stoppedEarly !== undefined) return false;
    if (limits.deadlineMs !== undefined && monotonicMs() - startedAtMs > limits.deadlineMs) {
      stoppedEarly = `stopped opening after ${limits.deadlineMs} ms (deadline)`;
    } else if (limits.maxFailuresInARow !== undefined && failuresInARow >= limits.maxFailuresInARow) {
      stoppedEarly = `stopped opening after ${failuresInARow} failed attempts in a row`;
    }
    return stoppedEarly === undefined;
  };
  const lane = async (): Promise<void> => {
    while (next < count && mayStart()) {
      const i = next++;
      for (let tries = 0; ; tries++) {
        try {
          await attempt(i);
          opened++;
          failuresInARow = 0;
          lastOpenedAtMs = monotonicMs();
          break;
        } catch (err) {
          failuresInARow++;
          if (firstErrors.length < 5) firstErrors.push((err as Error).message);
          if (tries >= retries || !mayStart()) {
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
  return { opened, failed, retried, firstErrors, ...(stoppedEarly !== undefined ? { stoppedEarly } : {}), startedAtMs, lastOpenedAtMs, finishedAtMs: monotonicMs() };
}

export function sourceAddress(srcAddrs: string[], i: number): string | undefined {
  return srcAddrs.length === 0 ? undefined : srcAddrs[i % srcAddrs.length];
}

export interface LocalEndpoint {
  localAddress?: string;
  localPort?: number;
}

const MAX_PORT = 65_535;

/**
 * Where each connection attempt binds: connection i on source address i mod A, and, with
 * `ports`, the next port of this agent's series on that address. Every attempt takes a new one
 * (a port some other socket holds costs one retry), and the series goes on from one batch of
 * connections to the next, wrapping around after port 65,535, so a port is used again only
 * long after its last connection closed.
 */
export class LocalEndpoints {
  private readonly used: number[];
  private readonly capacity: number;

  constructor(
    private readonly srcAddrs: string[],
    private readonly ports?: { first: number; stride: number },
  ) {
    this.used = srcAddrs.map(() => 0);
    this.capacity = ports === undefined ? 0 : Math.max(1, Math.floor((MAX_PORT - ports.first) / ports.stride) + 1);
  }

  take(i: number): LocalEndpoint {
    if (this.srcAddrs.length === 0) return {};
    const a = i % this.srcAddrs.length;
    const localAddress = this.srcAddrs[a]!;
    if (this.ports === undefined) return { localAddress };
    const localPort = this.ports.first + this.ports.stride * (this.used[a]!++ % this.capacity);
    return { localAddress, localPort };
  }
}
