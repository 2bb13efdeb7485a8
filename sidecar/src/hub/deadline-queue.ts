// One timer for many deadlines of the same length (sequencer waits, channel lingers): since
// each is added at now + the same duration, they fall due in the order they were added, so a
// FIFO with a single timer for its head replaces one timer per channel.

export class DeadlineQueue<T> {
  private readonly due: Array<{ at: number; value: T }> = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Set while due values are handed out; an add() from onDue is armed afterwards. */
  private isRunning = false;
  private readonly fire = (): void => this.run();

  /** `onDue(value, now)` runs for each deadline reached; `now` is never before its deadline. */
  constructor(private readonly onDue: (value: T, now: number) => void, private readonly clock: () => number = Date.now) {}

  add(at: number, value: T): void {
    const last = this.due[this.due.length - 1];
    // A clock stepping back must not reorder the queue: such a deadline waits for the one before.
    this.due.push({ at: last !== undefined && last.at > at ? last.at : at, value });
    if (this.timer === undefined && !this.isRunning) this.arm();
  }

  get size(): number {
    return this.due.length - this.head;
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.due.length = 0;
    this.head = 0;
  }

  private arm(): void {
    const next = this.due[this.head];
    if (next === undefined) return;
    this.timer = setTimeout(this.fire, Math.max(0, next.at - this.clock()));
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    const now = this.clock();
    this.isRunning = true;
    try {
      while (this.head < this.due.length) {
        const next = this.due[this.head]!;
        if (next.at > now) break;
        this.head++;
        this.onDue(next.value, Math.max(now, next.at));
      }
    } finally {
      this.isRunning = false;
    }
    // Compact once the consumed part dominates, so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.due.length) {
      this.due.splice(0, this.head);
      this.head = 0;
    }
    if (this.head === this.due.length) {
      this.due.length = 0;
      this.head = 0;
      return;
    }
    this.arm();
  }
}
