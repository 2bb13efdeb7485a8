// At most `size` connection attempts in flight at once, the rest waiting in order: a storm of
// thousands of reconnects sent at once overflows listen backlogs and turns into 1 s SYN
// retransmits, which would measure the kernel rather than the proxy (see open-many.ts).

export class AttemptWindow {
  private inFlight = 0;
  private waiting: (() => Promise<void>)[] = [];
  /** Index of the next waiting attempt (no Array.shift: the queue can hold tens of thousands). */
  private head = 0;

  constructor(private readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`window must be a positive integer, got ${size}`);
  }

  /** Runs `attempt` once a slot is free; its rejection is the caller's to handle inside it. */
  run(attempt: () => Promise<void>): void {
    this.waiting.push(attempt);
    this.pump();
  }

  get pending(): number {
    return this.inFlight + this.waiting.length - this.head;
  }

  private pump(): void {
    while (this.inFlight < this.size && this.head < this.waiting.length) {
      const attempt = this.waiting[this.head++]!;
      if (this.head === this.waiting.length) {
        this.waiting = [];
        this.head = 0;
      }
      this.inFlight++;
      attempt()
        .catch(() => {})
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
