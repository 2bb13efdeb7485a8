import type { Bus } from './bus/bus.js';
import type { PublishItem } from './grip/types.js';
import type { Metrics } from './metrics.js';

// Where held connections meet the bus: one bus subscription per channel that has local
// subscribers, fanned out to every subscriber in arrival order. Subscribers are plain objects
// with a deliver method, so the hot path is one loop over a Set with no allocation.

export interface Subscriber {
  deliver(item: PublishItem): void;
}

interface ChannelEntry {
  subscribers: Set<Subscriber>;
  unsubscribeBus: () => void;
}

export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();

  constructor(private readonly bus: Bus, private readonly metrics?: Metrics) {}

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
}
