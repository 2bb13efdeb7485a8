// The one timer port of every hold, the WebSocket session and its origin link: timers and
// elapsed time, handed in so that unit tests run them on a fake clock (test/unit/holds/fake-clock.ts).
// Keep-alives are not here: they run on the shared KeepAliveWheel.

/** A timer that can be re-armed (a Node Timeout is one). */
export interface Timer {
  refresh(): unknown;
}

export interface Clock {
  /** Runs `callback` after `ms`. */
  setTimeout(callback: () => void, ms: number): Timer;
  /**
   * Runs `callback(arg)` after `ms`: one shared function can serve every session or link, with
   * no closure per timer.
   */
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg: A): Timer;
  clearTimeout(timer: Timer | undefined): void;
  /** Milliseconds since an arbitrary origin, for durations (performance.now()). */
  now(): number;
}

/** Node's timers and performance.now(); the sidecar hands this one instance to everything it starts. */
export const systemClock: Clock = {
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg?: A): Timer {
    // Without an argument, Node's own no-argument call (no argument list kept on the timer).
    return arg === undefined ? setTimeout(callback as () => void, ms) : setTimeout(callback, ms, arg);
  },
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
  now: () => performance.now(),
};

/** Seconds to a timer delay; Node timers cannot wait longer than 2^31-1 ms (about 24.8 days). */
export function timerMs(seconds: number): number {
  return Math.min(seconds * 1000, 2 ** 31 - 1);
}
