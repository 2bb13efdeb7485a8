import type { Clock, Timer } from '../../../sidecar/src/holds/clock.js';
import { KeepAliveWheel } from '../../../sidecar/src/holds/keep-alive-wheel.js';

// The one fake clock of the hold, session and origin-link unit tests: time moves only when the
// test says so, and then the timers that fall due run in order. It also drives a keep-alive wheel
// on the same time, for the units that put members on one.

/** The fake wheel's tick. */
const WHEEL_TICK_MS = 100;

class FakeTimer implements Timer {
  constructor(
    private readonly clock: FakeClock,
    private readonly callback: (arg: unknown) => void,
    private readonly arg: unknown,
    private readonly ms: number,
    public at: number,
  ) {}

  run(): void {
    this.callback(this.arg);
  }

  /** Re-arms it `ms` from now, as Node's refresh() does (also once it has run). */
  refresh(): this {
    this.at = this.clock.now() + this.ms;
    this.clock.arm(this);
    return this;
  }
}

export class FakeClock implements Clock {
  private time = 0;
  private readonly timers = new Set<FakeTimer>();
  /** A keep-alive wheel of 100 ms ticks on this clock's time; advance() runs it. close() when used. */
  readonly wheel = new KeepAliveWheel(WHEEL_TICK_MS, () => this.time);

  setTimeout(callback: () => void, ms: number): Timer;
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg: A): Timer;
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg?: A): Timer {
    const timer = new FakeTimer(this, callback as (arg: unknown) => void, arg, ms, this.time + ms);
    this.arm(timer);
    return timer;
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer !== undefined) this.timers.delete(timer as FakeTimer);
  }

  now(): number {
    return this.time;
  }

  arm(timer: FakeTimer): void {
    this.timers.add(timer);
  }

  /** Timers armed and not yet run. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Moves time on by `ms`: each timer that falls due on the way runs at its time, and the wheel
   * advances at each of its ticks (before the timers due at that same time).
   */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const timer = this.nextTimer();
      const tick = (Math.floor(this.time / WHEEL_TICK_MS) + 1) * WHEEL_TICK_MS;
      if (timer !== undefined && timer.at <= until && timer.at < tick) {
        this.timers.delete(timer);
        this.time = Math.max(this.time, timer.at);
        timer.run();
        continue;
      }
      if (tick > until) break;
      this.time = tick;
      this.wheel.advance();
    }
    this.time = until;
  }

  /** Moves time to the next timer and runs it; false when there is none. */
  runNext(): boolean {
    const next = this.nextTimer();
    if (next === undefined) return false;
    this.advance(Math.max(0, next.at - this.time));
    return true;
  }

  /** Stops the wheel (its real interval runs while it has members). */
  close(): void {
    this.wheel.close();
  }

  private nextTimer(): FakeTimer | undefined {
    let next: FakeTimer | undefined;
    for (const t of this.timers) if (next === undefined || t.at < next.at) next = t;
    return next;
  }
}
