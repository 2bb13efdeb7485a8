import { pino, type Logger } from 'pino';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import { emitBusEvent, LiveCause, type Bus, type BusListener, type BusStatus, type ItemHandler } from './bus.js';

/**
 * In-process bus for a single sidecar (no NATS). Delivery is synchronous, so items reach
 * subscribers in publish order. A channel is live as soon as it has a subscriber; the
 * `channel-live` event still fires (on the next microtask) so holds behave the same on both buses.
 */
export class MemoryBus implements Bus {
  private readonly handlers = new Map<string, Set<ItemHandler>>();
  private readonly listeners = new Set<BusListener>();
  private readonly log: Logger;
  private closed = false;

  constructor(deps: { log?: Logger } = {}) {
    this.log = deps.log ?? pino({ name: 'memory-bus', level: 'warn' });
  }

  subscribe(channel: string, onItem: ItemHandler): () => void {
    let set = this.handlers.get(channel);
    if (set === undefined) {
      const created = new Set<ItemHandler>();
      set = created;
      this.handlers.set(channel, created);
      queueMicrotask(() => {
        // Skip when the channel was released (or released and re-created) in the meantime.
        if (this.handlers.get(channel) === created) this.emit({ type: 'channel-live', channel, cause: LiveCause.Subscribed });
      });
    }
    // A wrapper keeps two subscriptions with the same handler independent.
    const handler: ItemHandler = (item) => onItem(item);
    set.add(handler);
    return () => {
      const current = this.handlers.get(channel);
      if (current === undefined || !current.delete(handler)) return;
      if (current.size === 0) {
        this.handlers.delete(channel);
        this.emit({ type: 'channel-released', channel });
      }
    };
  }

  isLive(channel: string): boolean {
    return !this.closed && this.handlers.has(channel);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    if (this.closed) throw new KgError('KG_ERR_BUS_UNAVAILABLE', 'the bus is closed');
    for (const item of items) {
      const set = this.handlers.get(item.channel);
      if (set === undefined) continue;
      for (const handler of set) {
        try {
          handler(item);
        } catch (err) {
          this.log.error({ err, channel: item.channel }, 'item handler failed');
        }
      }
    }
  }

  status(): BusStatus {
    return this.closed ? { type: 'closed' } : { type: 'connected' };
  }

  listen(listener: BusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    this.emit({ type: 'status', status: { type: 'closed' } });
    this.listeners.clear();
  }

  private emit(event: Parameters<BusListener>[0]): void {
    emitBusEvent(this.listeners, event, (err) => this.log.error({ err, event: event.type }, 'bus listener failed'));
  }
}
