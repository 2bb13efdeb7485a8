import { pino, type Logger } from 'pino';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import {
  emitBusEvent, LiveCause, type Bus, type BusEvent, type BusListener, type BusStatus, type ItemHandler,
} from './bus.js';

interface ChannelEntry {
  readonly handlers: Set<ItemHandler>;
  lingerTimer: NodeJS.Timeout | undefined;
}

/**
 * In-process bus for a single sidecar (no NATS). Delivery is synchronous, so items reach
 * subscribers in publish order. A channel is live as soon as it has a subscriber; the
 * `channel-live` event still fires (on the next microtask) so holds behave the same on both buses,
 * and a channel lingers after its last subscriber leaves, as on NATS, so a long-poll that re-polls
 * at once is not a first subscription again.
 */
export class MemoryBus implements Bus {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly listeners = new Set<BusListener>();
  private readonly log: Logger;
  private readonly lingerMs: number;
  private closed = false;

  constructor(deps: { log?: Logger; lingerMs?: number } = {}) {
    this.log = deps.log ?? pino({ name: 'memory-bus', level: 'warn' });
    this.lingerMs = deps.lingerMs ?? 0;
  }

  subscribe(channel: string, onItem: ItemHandler): () => void {
    if (this.closed) return () => {};
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      const created: ChannelEntry = { handlers: new Set(), lingerTimer: undefined };
      entry = created;
      this.channels.set(channel, created);
      queueMicrotask(() => {
        // Skip when the channel was released (or released and re-created) in the meantime.
        if (this.channels.get(channel) === created) this.emit({ type: 'channel-live', channel, cause: LiveCause.Subscribed });
      });
    } else if (entry.lingerTimer !== undefined) {
      clearTimeout(entry.lingerTimer);
      entry.lingerTimer = undefined;
    }
    // A wrapper keeps two subscriptions with the same handler independent.
    const handler: ItemHandler = (item) => onItem(item);
    const owner = entry;
    owner.handlers.add(handler);
    return () => {
      if (!owner.handlers.delete(handler) || owner.handlers.size > 0 || this.closed) return;
      if (this.lingerMs <= 0) {
        this.release(channel, owner);
        return;
      }
      owner.lingerTimer = setTimeout(() => this.release(channel, owner), this.lingerMs);
      owner.lingerTimer.unref();
    };
  }

  isLive(channel: string): boolean {
    return !this.closed && this.channels.has(channel);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    if (this.closed) throw new KgError('KG_ERR_BUS_UNAVAILABLE', 'the bus is closed');
    for (const item of items) {
      const entry = this.channels.get(item.channel);
      if (entry === undefined) continue;
      for (const handler of entry.handlers) {
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
    for (const entry of this.channels.values()) clearTimeout(entry.lingerTimer);
    this.channels.clear();
    this.emit({ type: 'status', status: { type: 'closed' } });
    this.listeners.clear();
  }

  private release(channel: string, entry: ChannelEntry): void {
    entry.lingerTimer = undefined;
    if (entry.handlers.size > 0 || this.channels.get(channel) !== entry) return;
    this.channels.delete(channel);
    this.emit({ type: 'channel-released', channel });
  }

  private emit(event: BusEvent): void {
    emitBusEvent(this.listeners, event, (err) => this.log.error({ err, event: event.type }, 'bus listener failed'));
  }
}
