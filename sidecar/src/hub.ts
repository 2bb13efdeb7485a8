import type { Bus, BusEvent, LiveCause } from './bus/bus.js';
import type { PublishItem } from './grip/types.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

// Where held connections meet the bus: one bus subscription per channel that has local
// subscribers, fanned out to every subscriber in arrival order. Subscribers are plain objects
// with a deliver method, so the hot path is one loop over a Set with no allocation.
//
// First-subscription refresh (spec 3.5): a bus subscription is not live at once (NATS has to
// learn the interest), so an item published between the origin's answer and that moment is
// missed. When the bus reports a channel live, the subscribers it had then are refreshed after
// a delay: response holds ask the origin again, streams with a next link fetch it. The same
// happens after a bus reconnect, when items published during the outage were missed.

export interface Subscriber {
  deliver(item: PublishItem): void;
  /** Items on a channel may have been missed: get the current state from the origin. */
  refresh(): void;
}

export interface HubOptions {
  /** Refresh a channel's subscribers when its bus subscription goes live (Pushpin default: on). */
  refreshOnFirstSubscription: boolean;
  /** Delay after going live before the refresh (Pushpin waits 1 s). */
  firstSubscriptionRefreshMs: number;
}

interface ChannelEntry {
  subscribers: Set<Subscriber>;
  unsubscribeBus: () => void;
}

const NO_REFRESH: HubOptions = { refreshOnFirstSubscription: false, firstSubscriptionRefreshMs: 0 };

export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly refreshTimers = new Set<NodeJS.Timeout>();
  private readonly stopListening: () => void;

  constructor(
    private readonly bus: Bus,
    private readonly metrics?: Metrics,
    private readonly options: HubOptions = NO_REFRESH,
    private readonly log?: Logger,
  ) {
    this.stopListening = bus.listen(this.onBusEvent);
  }

  subscribe(channel: string, subscriber: Subscriber): void {
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      const subscribers = new Set<Subscriber>();
      const onItem = (item: PublishItem): void => {
        for (const s of subscribers) s.deliver(item);
      };
      entry = { subscribers, unsubscribeBus: this.bus.subscribe(channel, onItem) };
      this.channels.set(channel, entry);
      this.metrics?.subscribedChannels.inc();
    }
    entry.subscribers.add(subscriber);
  }

  unsubscribe(channel: string, subscriber: Subscriber): void {
    const entry = this.channels.get(channel);
    if (entry === undefined || !entry.subscribers.delete(subscriber)) return;
    if (entry.subscribers.size === 0) {
      this.channels.delete(channel);
      entry.unsubscribeBus();
      this.metrics?.subscribedChannels.dec();
    }
  }

  subscriberCount(channel: string): number {
    return this.channels.get(channel)?.subscribers.size ?? 0;
  }

  channelCount(): number {
    return this.channels.size;
  }

  /** Stops refreshes and bus events; subscriptions are left to their holds. */
  close(): void {
    this.stopListening();
    for (const timer of this.refreshTimers) clearTimeout(timer);
    this.refreshTimers.clear();
  }

  private readonly onBusEvent = (event: BusEvent): void => {
    if (event.type !== 'channel-live' || !this.options.refreshOnFirstSubscription) return;
    const entry = this.channels.get(event.channel);
    if (entry === undefined) return;
    this.scheduleRefresh(event.channel, entry, [...entry.subscribers], event.cause);
  };

  private scheduleRefresh(channel: string, entry: ChannelEntry, subscribers: Subscriber[], cause: LiveCause): void {
    const timer = setTimeout(() => {
      this.refreshTimers.delete(timer);
      // Only those still subscribed to this same channel entry; later arrivals subscribed live.
      if (this.channels.get(channel) !== entry) return;
      let refreshed = 0;
      for (const s of subscribers) {
        if (!entry.subscribers.has(s)) continue;
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
