import { LiveCause, whenLive, type Bus, type BusEvent } from '../bus/bus.js';
import { DeadlineQueue } from './deadline-queue.js';
import { ChannelSequencer, DEFAULT_SEQUENCER_OPTIONS, type SequencerOptions } from '../grip/sequencer.js';
import type { PublishItem } from '../grip/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

// Where held connections meet the bus: one bus subscription per channel that has local
// subscribers, fanned out to every subscriber. Subscribers are plain objects with a deliver
// method, so the hot path is one loop over a Set with no allocation per subscriber.
//
//   bus item ──▶ sequencer (docs/grip.md, "Reliability": id / prev-id order, repeats dropped) ──▶ every subscriber
//                  └─ out-of-order items wait ≤ waitMs (one shared timer for all channels)
//
// A channel's entry (its bus subscription, its sequencer, hence its position = last delivered id)
// outlives its last subscriber by channelLingerMs, so a long-poll that re-polls at once finds it.
//
// Position (docs/grip.md, "Reliability"): a subscriber may say where it stands (the prev-id the origin gave). If
// that is not the channel's position, it missed items: with history on the bus (JetStream) it
// is caught up from there (live items wait in a per-subscriber buffer meanwhile); without, it
// is told to recover from the origin (Grip-Last retry or next-link fetch).
//
// First-subscription refresh (docs/grip.md, "Reliability"): a bus subscription is not live at once (NATS has to
// learn the interest), so an item published between the origin's answer and that moment is
// missed. When the bus reports a channel live, the subscribers it had then are refreshed after
// a delay: response holds ask the origin again, streams with a next link fetch it. The same
// happens after a bus reconnect, unless the bus resumes the channel from history itself.

export interface Subscriber {
  deliver(item: PublishItem): void;
  /** Items on a channel may have been missed: get the current state from the origin. */
  refresh(): void;
}

/** A subscriber that gives its position and can recover from the origin when it is behind. */
export interface PositionedSubscriber extends Subscriber {
  /** Items between the subscriber's prev-id and the channel's position were missed: recover from the origin. */
  recover(channel: string): void;
}

export interface HubOptions {
  /** Refresh a channel's subscribers when its bus subscription goes live (Pushpin default: on). */
  refreshOnFirstSubscription: boolean;
  /** Delay after going live before the refresh (Pushpin waits 1 s). */
  firstSubscriptionRefreshMs: number;
  /** How long a channel (bus subscription and position) outlives its last subscriber. Default 0. */
  channelLingerMs?: number;
  sequencing?: SequencerOptions;
}

/** Live items kept for one subscriber while it is caught up from history. */
interface CatchUp {
  readonly buffer: PublishItem[];
  isOverflowed: boolean;
}

/**
 * One history read after a prev-id, shared by every catch-up from that id that starts while it
 * runs (a reconnect storm brings many clients of a channel back with the same Last-Event-ID).
 * Its buffer holds what went live since the read began, so a catch-up that joins late starts
 * from a copy of it and misses nothing the read cannot have seen.
 */
interface SharedRead extends CatchUp {
  readonly items: Promise<PublishItem[] | undefined>;
}

interface ChannelEntry {
  readonly channel: string;
  readonly subscribers: Set<Subscriber>;
  catchingUp: Map<PositionedSubscriber, CatchUp> | undefined;
  /** History reads in progress, by the prev-id they read after. */
  reads: Map<string, SharedRead> | undefined;
  /** Created with the first item that has an id or prev-id. */
  sequencer: ChannelSequencer | undefined;
  /** Set while the entry lingers without subscribers. */
  lingerUntil: number | undefined;
  unsubscribeBus: () => void;
}

const NO_REFRESH: HubOptions = { refreshOnFirstSubscription: false, firstSubscriptionRefreshMs: 0 };
/** Live items held for one subscriber during a catch-up; beyond it the subscriber recovers from the origin. */
export const MAX_CATCH_UP_BUFFER = 1000;

export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();
  /** Channels with at least one subscriber (the map also holds lingering ones). */
  private activeChannels = 0;
  private readonly refreshTimers = new Set<NodeJS.Timeout>();
  private readonly stopListening: () => void;
  private readonly sequencing: SequencerOptions;
  private readonly lingerMs: number;
  private readonly expiries = new DeadlineQueue<ChannelEntry>((entry, now) => this.expire(entry, now));
  private readonly lingers = new DeadlineQueue<ChannelEntry>((entry, now) => this.lingerDue(entry, now));
  /** Subscribers brought to their channel's present from history: a refresh from the origin would be redundant. */
  private readonly caughtUp = new WeakSet<Subscriber>();

  constructor(
    private readonly bus: Bus,
    private readonly metrics?: Metrics,
    private readonly options: HubOptions = NO_REFRESH,
    private readonly log?: Logger,
  ) {
    this.sequencing = options.sequencing ?? DEFAULT_SEQUENCER_OPTIONS;
    this.lingerMs = options.channelLingerMs ?? 0;
    this.stopListening = bus.listen(this.onBusEvent);
  }

  /**
   * Adds a subscriber to a channel. With `prevId` (where the subscriber stands), a subscriber
   * that is behind the channel is caught up from history or told to recover; see the top.
   */
  subscribe(channel: string, subscriber: Subscriber): void;
  subscribe(channel: string, subscriber: PositionedSubscriber, prevId: string | undefined): void;
  subscribe(channel: string, subscriber: Subscriber | PositionedSubscriber, prevId?: string): void {
    const entry = this.entryFor(channel);
    if (entry.subscribers.has(subscriber) || entry.catchingUp?.has(subscriber as PositionedSubscriber)) return;
    if (countOf(entry) === 0) {
      this.activeChannels++;
      this.metrics?.subscribedChannels.inc();
    }
    if (prevId === undefined) {
      entry.subscribers.add(subscriber);
      return;
    }
    this.place(entry, subscriber as PositionedSubscriber, prevId);
  }

  unsubscribe(channel: string, subscriber: Subscriber): void {
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    if (!entry.subscribers.delete(subscriber)) {
      if (entry.catchingUp?.delete(subscriber as PositionedSubscriber) !== true) return;
      if (entry.catchingUp.size === 0) entry.catchingUp = undefined;
    }
    if (countOf(entry) > 0) return;
    this.activeChannels--;
    this.metrics?.subscribedChannels.dec();
    if (this.lingerMs <= 0) {
      this.release(entry);
      return;
    }
    entry.lingerUntil = Date.now() + this.lingerMs;
    this.lingers.add(entry.lingerUntil, entry);
  }

  subscriberCount(channel: string): number {
    const entry = this.channels.get(channel);
    return entry === undefined ? 0 : countOf(entry);
  }

  /** Channels with at least one subscriber (not those lingering after their last one). */
  channelCount(): number {
    return this.activeChannels;
  }

  /** Channels with a bus subscription, lingering ones included. */
  busChannelCount(): number {
    return this.channels.size;
  }

  /** The id of the last item delivered on the channel, when known (docs/grip.md, "Reliability"). */
  position(channel: string): string | undefined {
    return this.channels.get(channel)?.sequencer?.lastDeliveredId();
  }

  /** Stops refreshes, timers and bus events and releases lingering channels; held subscriptions are left to their holds. */
  close(): void {
    this.stopListening();
    for (const timer of this.refreshTimers) clearTimeout(timer);
    this.refreshTimers.clear();
    this.expiries.clear();
    this.lingers.clear();
    for (const entry of [...this.channels.values()]) if (countOf(entry) === 0) this.release(entry);
  }

  // --- channels ---------------------------------------------------------------------------------

  private entryFor(channel: string): ChannelEntry {
    const existing = this.channels.get(channel);
    if (existing !== undefined) {
      existing.lingerUntil = undefined;
      return existing;
    }
    const entry: ChannelEntry = {
      channel, subscribers: new Set(), catchingUp: undefined, reads: undefined, sequencer: undefined, lingerUntil: undefined, unsubscribeBus: noop,
    };
    this.channels.set(channel, entry);
    entry.unsubscribeBus = this.bus.subscribe(channel, (item) => this.receive(entry, item));
    return entry;
  }

  private lingerDue(entry: ChannelEntry, now: number): void {
    if (this.channels.get(entry.channel) !== entry || entry.lingerUntil === undefined || entry.lingerUntil > now) return;
    if (countOf(entry) === 0) this.release(entry);
  }

  private release(entry: ChannelEntry): void {
    if (this.channels.get(entry.channel) !== entry) return;
    this.channels.delete(entry.channel);
    entry.unsubscribeBus();
  }

  // --- delivery (hot path) ----------------------------------------------------------------------

  private receive(entry: ChannelEntry, item: PublishItem): void {
    let sequencer = entry.sequencer;
    if (sequencer === undefined) {
      // No ids on this channel so far: nothing to order or de-duplicate.
      if (item.id === undefined && item.prevId === undefined) {
        this.fanOut(entry, item);
        return;
      }
      sequencer = new ChannelSequencer(this.sequencing);
      entry.sequencer = sequencer;
    }
    const stats = sequencer.stats;
    const waited = stats.waited;
    const duplicates = stats.duplicatesDropped;
    const overflowed = stats.overflowed;
    const now = Date.now();
    const out = sequencer.push(item, now);
    if (stats.waited !== waited) {
      this.expiries.add(now + this.sequencing.waitMs, entry);
      this.metrics?.sequencerItems.inc({ outcome: 'waited' });
    }
    if (stats.duplicatesDropped !== duplicates) this.metrics?.sequencerItems.inc({ outcome: 'duplicate' });
    if (stats.overflowed !== overflowed) this.metrics?.sequencerItems.inc({ outcome: 'overflow' });
    for (let i = 0; i < out.length; i++) this.fanOut(entry, out[i]!);
  }

  private fanOut(entry: ChannelEntry, item: PublishItem): void {
    for (const s of entry.subscribers) s.deliver(item);
    if (entry.catchingUp !== undefined) for (const c of entry.catchingUp.values()) keep(c, item);
    if (entry.reads !== undefined) for (const r of entry.reads.values()) keep(r, item);
  }

  /** Out-of-order items whose wait ran out go out as they are; holds then see the gap (docs/grip.md, "Reliability"). */
  private expire(entry: ChannelEntry, now: number): void {
    const sequencer = entry.sequencer;
    if (sequencer === undefined || this.channels.get(entry.channel) !== entry) return;
    const before = sequencer.stats.releasedByTimeout;
    const out = sequencer.expire(now);
    const released = sequencer.stats.releasedByTimeout - before;
    if (released > 0) this.metrics?.sequencerItems.inc({ outcome: 'released_by_timeout' }, released);
    for (const item of out) this.fanOut(entry, item);
  }

  // --- position ---------------------------------------------------------------------------------

  private place(entry: ChannelEntry, subscriber: PositionedSubscriber, prevId: string): void {
    const position = entry.sequencer?.lastDeliveredId();
    if (position === prevId) {
      entry.subscribers.add(subscriber);
      return;
    }
    if (this.bus.history !== undefined) {
      const read = entry.reads?.get(prevId) ?? this.startRead(entry, prevId);
      const state: CatchUp = { buffer: [...read.buffer], isOverflowed: read.isOverflowed };
      (entry.catchingUp ??= new Map()).set(subscriber, state);
      void this.catchUp(entry, subscriber, prevId, state, position !== undefined, read.items);
      return;
    }
    entry.subscribers.add(subscriber);
    // Pushpin compares only against a known position (docs/grip.md, "Reliability").
    if (position === undefined) return;
    this.metrics?.catchUps.inc({ result: 'origin' });
    // Not from inside subscribe(): the subscriber may still be setting up.
    queueMicrotask(() => {
      if (this.channels.get(entry.channel) === entry && entry.subscribers.has(subscriber)) subscriber.recover(entry.channel);
    });
  }

  /** The history after `prevId`, read once the channel is live; forgotten once read. */
  private startRead(entry: ChannelEntry, prevId: string): SharedRead {
    const items = whenLive(this.bus, entry.channel).then(() => this.bus.history!.itemsAfter(entry.channel, prevId));
    const read: SharedRead = { buffer: [], isOverflowed: false, items };
    (entry.reads ??= new Map()).set(prevId, read);
    const forget = (): void => {
      if (entry.reads?.get(prevId) !== read) return;
      entry.reads.delete(prevId);
      if (entry.reads.size === 0) entry.reads = undefined;
    };
    items.then((found) => {
      forget();
      if (found !== undefined) this.metrics?.historyItems.inc({ use: 'catch_up' }, found.length);
    }, forget);
    return read;
  }

  private isCatchingUp(entry: ChannelEntry, subscriber: PositionedSubscriber, state: CatchUp): boolean {
    return this.channels.get(entry.channel) === entry && entry.catchingUp?.get(subscriber) === state;
  }

  /**
   * Brings a subscriber from `prevId` to the channel's present from history, then makes it an
   * ordinary subscriber. The history is read once the channel is live, so every item stored
   * after the read arrives live (kept in the buffer); items in both are sent once (by seq).
   */
  private async catchUp(
    entry: ChannelEntry, subscriber: PositionedSubscriber, prevId: string, state: CatchUp, wasPositionKnown: boolean,
    read: Promise<PublishItem[] | undefined>,
  ): Promise<void> {
    let items: PublishItem[] | undefined;
    let failed = false;
    try {
      items = await read;
    } catch (err) {
      failed = true;
      this.log?.warn({ channel: entry.channel, err: (err as Error).message }, 'history catch-up failed; recovering from the origin');
    }
    if (!this.isCatchingUp(entry, subscriber, state)) return;
    entry.catchingUp!.delete(subscriber);
    if (entry.catchingUp!.size === 0) entry.catchingUp = undefined;
    entry.subscribers.add(subscriber);
    if (failed || state.isOverflowed) {
      this.metrics?.catchUps.inc({ result: failed ? 'error' : 'overflow' });
      subscriber.recover(entry.channel);
      return;
    }
    if (items === undefined) {
      this.metrics?.catchUps.inc({ result: 'not_found' });
      // As without history, only a position known at subscription shows that items were missed;
      // otherwise the first-subscription refresh, if any, covers this subscriber like the others.
      if (wasPositionKnown) subscriber.recover(entry.channel);
      for (const item of liveAfter(state.buffer, prevId)) subscriber.deliver(item);
      return;
    }
    this.metrics?.catchUps.inc({ result: 'history' });
    this.caughtUp.add(subscriber);
    const sent = new Set<number>();
    for (const item of inChainOrder(prevId, items, this.sequencing)) {
      if (item.seq !== undefined) sent.add(item.seq);
      subscriber.deliver(item);
    }
    for (const item of liveAfter(state.buffer, prevId)) if (item.seq === undefined || !sent.has(item.seq)) subscriber.deliver(item);
  }

  // --- refresh ----------------------------------------------------------------------------------

  private readonly onBusEvent = (event: BusEvent): void => {
    if (event.type !== 'channel-live' || !this.options.refreshOnFirstSubscription) return;
    // The bus fetches what it missed from history itself: nothing to ask the origin.
    if (event.cause === LiveCause.Resumed) return;
    const entry = this.channels.get(event.channel);
    if (entry === undefined) return;
    // Those still catching up are refreshed too unless history brings them up to date.
    const subscribers: Subscriber[] = [...entry.subscribers];
    if (entry.catchingUp !== undefined) for (const s of entry.catchingUp.keys()) subscribers.push(s);
    this.scheduleRefresh(event.channel, entry, subscribers, event.cause);
  };

  private scheduleRefresh(channel: string, entry: ChannelEntry, subscribers: Subscriber[], cause: LiveCause): void {
    const timer = setTimeout(() => {
      this.refreshTimers.delete(timer);
      // Only those still subscribed to this same channel entry; later arrivals subscribed live.
      if (this.channels.get(channel) !== entry) return;
      let refreshed = 0;
      for (const s of subscribers) {
        if (!entry.subscribers.has(s) || this.caughtUp.has(s)) continue;
        refreshed++;
        try {
          s.refresh();
        } catch (err) {
          this.log?.error({ err, channel }, 'subscriber refresh failed');
        }
      }
      if (refreshed > 0) {
        this.metrics?.subscriberRefreshes.inc({ cause }, refreshed);
        this.log?.debug({ channel, cause, refreshed }, 'channel subscribers refreshed');
      }
    }, this.options.firstSubscriptionRefreshMs);
    this.refreshTimers.add(timer);
  }
}

function countOf(entry: ChannelEntry): number {
  return entry.subscribers.size + (entry.catchingUp?.size ?? 0);
}

function noop(): void {}

/** Keeps a live item for a catch-up in progress, up to MAX_CATCH_UP_BUFFER (then it recovers from the origin). */
function keep(c: CatchUp, item: PublishItem): void {
  if (c.isOverflowed) return;
  if (c.buffer.length >= MAX_CATCH_UP_BUFFER) {
    c.isOverflowed = true;
    c.buffer.length = 0;
  } else {
    c.buffer.push(item);
  }
}

/**
 * The live items kept during a catch-up that come after `prevId`: when the client's last id
 * itself arrives live (it got it from another sidecar first), it and what came before it are
 * already the client's.
 */
function liveAfter(buffer: readonly PublishItem[], prevId: string): readonly PublishItem[] {
  for (let i = buffer.length - 1; i >= 0; i--) if (buffer[i]!.id === prevId) return buffer.slice(i + 1);
  return buffer;
}

/** History items after `prevId` in id / prev-id order, as the live sequencer would deliver them; repeats dropped. */
function inChainOrder(prevId: string, items: readonly PublishItem[], options: SequencerOptions): PublishItem[] {
  const sequencer = new ChannelSequencer({ waitMs: 0, maxPending: Math.max(options.maxPending, items.length), idTtlMs: 1 }, prevId);
  const out: PublishItem[] = [];
  for (const item of items) for (const ready of sequencer.push(item, 0)) out.push(ready);
  for (const ready of sequencer.expire(Number.POSITIVE_INFINITY)) out.push(ready);
  return out;
}
