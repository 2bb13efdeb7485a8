import type { PublishItem } from '../grip/types.js';
import type { Bus, BusStatus, ItemHandler } from './bus.js';

/**
 * In-process bus for a single sidecar (no NATS). Delivery is synchronous, so items reach
 * subscribers in publish order.
 */
export class MemoryBus implements Bus {
  private readonly handlers = new Map<string, Set<ItemHandler>>();
  private closed = false;

  subscribe(channel: string, onItem: ItemHandler): () => void {
    let set = this.handlers.get(channel);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(onItem);
    return () => {
      const current = this.handlers.get(channel);
      if (current === undefined) return;
      current.delete(onItem);
      if (current.size === 0) this.handlers.delete(channel);
    };
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    for (const item of items) {
      const set = this.handlers.get(item.channel);
      if (set === undefined) continue;
      for (const handler of set) handler(item);
    }
  }

  status(): BusStatus {
    return this.closed ? { type: 'closed' } : { type: 'connected' };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
  }
}
