import type { PublishItem } from '../grip/types.js';

// A channel's last items as this sidecar handed them out, kept in memory so that a client coming
// back with a recent last id is caught up without one JetStream request per missed item (a
// deploy's reconnect storm brings thousands back at once). Only an unbroken run is kept: each
// item must follow the one before it on the channel, else the run starts again from it, so an
// answer from here is exactly what the stream would give. Pure: no I/O.

/** The bytes every channel's run may hold together; shared by the channels of one process. */
export class RecentBudget {
  used = 0;
  constructor(readonly maxBytes: number) {}
  get isOver(): boolean {
    return this.used > this.maxBytes;
  }
}

export class RecentItems {
  private seqs: number[] = [];
  private items: PublishItem[] = [];
  private sizes: number[] = [];
  /** Index of the oldest kept entry (entries before it are dropped, compacted now and then). */
  private head = 0;

  constructor(
    private readonly maxItems: number,
    private readonly budget: RecentBudget,
  ) {}

  get size(): number {
    return this.seqs.length - this.head;
  }

  /** Stream sequence of the newest kept item. */
  get lastSeq(): number | undefined {
    return this.size > 0 ? this.seqs[this.seqs.length - 1] : undefined;
  }

  /**
   * Keeps an item just handed out. `follows`: it is the next item on the channel after the
   * newest kept one; when not, what was kept no longer leads up to it and is dropped.
   */
  append(seq: number, item: PublishItem, bytes: number, follows: boolean): void {
    if (this.maxItems <= 0) return;
    if (!follows || (this.lastSeq !== undefined && seq <= this.lastSeq)) this.clear();
    this.seqs.push(seq);
    this.items.push(item);
    this.sizes.push(bytes);
    this.budget.used += bytes;
    while (this.size > this.maxItems) this.dropOldest();
    // Over the process-wide budget, the channel that adds gives up its own oldest items.
    while (this.budget.isOver && this.size > 1) this.dropOldest();
    if (this.head > 1024 && this.head * 2 > this.seqs.length) this.compact();
  }

  /**
   * The items after the one with sequence `seq`, oldest first; undefined when that item is not
   * kept (the caller reads the stream instead).
   */
  after(seq: number): PublishItem[] | undefined {
    const at = this.indexOf(seq);
    return at < 0 ? undefined : this.items.slice(at + 1);
  }

  clear(): void {
    for (let i = this.head; i < this.sizes.length; i++) this.budget.used -= this.sizes[i]!;
    this.seqs = [];
    this.items = [];
    this.sizes = [];
    this.head = 0;
  }

  private dropOldest(): void {
    this.budget.used -= this.sizes[this.head]!;
    this.items[this.head] = undefined as unknown as PublishItem; // let it be collected
    this.head++;
  }

  private compact(): void {
    this.seqs = this.seqs.slice(this.head);
    this.items = this.items.slice(this.head);
    this.sizes = this.sizes.slice(this.head);
    this.head = 0;
  }

  /** Binary search: sequences only grow within a run. */
  private indexOf(seq: number): number {
    let lo = this.head;
    let hi = this.seqs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.seqs[mid]!;
      if (v === seq) return mid;
      if (v < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}
