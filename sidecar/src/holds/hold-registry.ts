// The HTTP holds (long-polls and streams) currently open, so a shutdown can end each of them
// cleanly. A hold that starts once draining has begun is ended as soon as it has started.

export interface Drainable {
  /** Ends the hold the way a client can resume from: the timeout response, or the stream's end. */
  drain(): void;
}

export class HoldRegistry {
  private readonly holds = new Set<Drainable>();
  private draining = false;

  add(hold: Drainable): void {
    this.holds.add(hold);
    // After the constructor that registers it has finished.
    if (this.draining) queueMicrotask(() => hold.drain());
  }

  delete(hold: Drainable): void {
    this.holds.delete(hold);
  }

  get size(): number {
    return this.holds.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Ends every hold, now and from now on. */
  drainAll(): void {
    this.draining = true;
    for (const hold of [...this.holds]) hold.drain();
  }
}
