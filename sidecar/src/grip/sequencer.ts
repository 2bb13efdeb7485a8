import type { PublishItem } from './types.js';

// Per-channel ordering of published items by id / prev-id (docs/grip.md, "Reliability"). Publishers may deliver
// items out of order (several publisher processes, NATS reconnects); an item whose prev-id is
// not the last id delivered on the channel waits, keyed by that prev-id, until its predecessor
// arrives or its wait expires. Pure: the caller passes the clock and delivers what is returned.
//
//   item ──no id chain / first item / prev-id matches──▶ deliver, then flush its waiting successors
//        ──prev-id ahead of last id──▶ wait (≤ maxPending per channel, ≤ waitMs each)
//        ──id seen within idTtlMs──▶ dropped as a duplicate

export interface SequencerOptions {
  /** How long an out-of-order item waits for its predecessor (Pushpin: message_wait 5000). */
  waitMs: number;
  /** Items waiting per channel; beyond it new out-of-order items go out at once. */
  maxPending: number;
  /** How long an id is remembered per channel to drop repeats; 0 turns de-duplication off. */
  idTtlMs: number;
}

/** Ids remembered per channel at most, whatever the TTL, so a flood of ids cannot exhaust memory. */
export const MAX_REMEMBERED_IDS = 10_000;

export const DEFAULT_SEQUENCER_OPTIONS: SequencerOptions = { waitMs: 5000, maxPending: 100, idTtlMs: 60_000 };

interface Waiting {
  item: PublishItem;
  expiresAt: number;
}

export interface SequencerStats {
  duplicatesDropped: number;
  waited: number;
  releasedByTimeout: number;
  overflowed: number;
}

export class ChannelSequencer {
  /** Id of the last item delivered; undefined when unknown (new channel, or an item without id). */
  private lastId: string | undefined;
  private readonly waiting = new Map<string, Waiting>();
  private readonly seenIds = new Map<string, number>();
  readonly stats: SequencerStats = { duplicatesDropped: 0, waited: 0, releasedByTimeout: 0, overflowed: 0 };

  /** `afterId`: the position to start from, when known (e.g. a client's last id). */
  constructor(private readonly options: SequencerOptions = DEFAULT_SEQUENCER_OPTIONS, afterId?: string) {
    this.lastId = afterId;
  }

  /** Items to deliver now, in order, for one arriving item. */
  push(item: PublishItem, now: number): PublishItem[] {
    if (this.isDuplicate(item, now)) {
      this.stats.duplicatesDropped++;
      return [];
    }
    const mustWait = !item.noSeq && item.prevId !== undefined && this.lastId !== undefined && item.prevId !== this.lastId;
    if (!mustWait) return this.deliverWithSuccessors(item);
    if (this.waiting.has(item.prevId as string)) {
      // Pushpin keeps the first item waiting on a prev-id and drops later ones.
      this.stats.duplicatesDropped++;
      return [];
    }
    if (this.waiting.size >= this.options.maxPending) {
      this.stats.overflowed++;
      return this.deliverWithSuccessors(item);
    }
    this.waiting.set(item.prevId as string, { item, expiresAt: now + this.options.waitMs });
    this.stats.waited++;
    return [];
  }

  /** Items whose wait ran out, released in arrival order (holds then see the gap and recover). */
  expire(now: number): PublishItem[] {
    const out: PublishItem[] = [];
    for (const [prevId, w] of this.waiting) {
      if (w.expiresAt > now) continue;
      if (!this.waiting.delete(prevId)) continue;
      this.stats.releasedByTimeout++;
      out.push(...this.deliverWithSuccessors(w.item));
    }
    this.forgetIds(now);
    return out;
  }

  hasWaiting(): boolean {
    return this.waiting.size > 0;
  }

  /** The channel's position, for Grip-Last and accept-time checks. */
  lastDeliveredId(): string | undefined {
    return this.lastId;
  }

  private deliverWithSuccessors(item: PublishItem): PublishItem[] {
    const out = [item];
    this.lastId = item.id;
    for (;;) {
      if (this.lastId === undefined) break;
      const next = this.waiting.get(this.lastId);
      if (next === undefined) break;
      this.waiting.delete(this.lastId);
      out.push(next.item); // its id was recorded when it arrived
      this.lastId = next.item.id;
    }
    return out;
  }

  private isDuplicate(item: PublishItem, now: number): boolean {
    if (this.options.idTtlMs === 0 || item.id === undefined) return false;
    const seenAt = this.seenIds.get(item.id);
    if (seenAt !== undefined && now - seenAt < this.options.idTtlMs) return true;
    // Delete first so the map stays in order of last sighting: forgetting then stops at the
    // first fresh id instead of walking the whole map.
    this.seenIds.delete(item.id);
    this.seenIds.set(item.id, now);
    if (this.seenIds.size > MAX_REMEMBERED_IDS) this.seenIds.delete(this.seenIds.keys().next().value as string);
    this.forgetIds(now);
    return false;
  }

  /** Drops ids older than the TTL; amortised O(1) per item since the map is in sighting order. */
  private forgetIds(now: number): void {
    for (const [id, seenAt] of this.seenIds) {
      if (now - seenAt < this.options.idTtlMs) return;
      this.seenIds.delete(id);
    }
  }

  /** Ids currently remembered (for tests and bounds). */
  rememberedIds(): number {
    return this.seenIds.size;
  }
}
