import { pino, type Logger } from 'pino';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import {
  deliverItem, emitBusEvent, LiveCause, type Bus, type BusEvent, type BusListener, type BusStatus, type ItemHandler,
} from './bus.js';
import { addSubscriber, stopLinger, type Interest, type InterestOwner } from './interest.js';

interface ChannelEntry extends Interest {
  readonly channel: string;
}

/**
 * In-process bus for a single sidecar (no NATS). Items reach subscribers in publish order. By
 * default they are delivered inside publish(); with `deferDelivery` (what the sidecar uses)
 * publish() only queues them, and everything queued is delivered in one pass on a later turn of
 * the event loop (setImmediate). The publisher then gets its answer without waiting for the
 * fan-out, and the items of back-to-back publishes reach each connection together (a hold sends
 * what it gets in one tick as one write), as they do from NATS.
 *
 * A channel is live as soon as it has a subscriber; the `channel-live` event still fires (on the
 * next microtask) so holds behave the same on both buses, and a channel lingers after its last
 * subscriber leaves, as on NATS, so a long-poll that re-polls at once is not a first
 * subscription again.
 */
export class MemoryBus implements Bus {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly listeners = new Set<BusListener>();
  private readonly log: Logger;
  private readonly interest: InterestOwner<ChannelEntry>;
  private readonly deferDelivery: boolean;
  /** Published, not yet delivered (deferDelivery only). */
  private readonly queue: PublishItem[] = [];
  private isFlushScheduled = false;
  private closed = false;

  constructor(deps: { log?: Logger; lingerMs?: number; deferDelivery?: boolean } = {}) {
    this.log = deps.log ?? pino({ name: 'memory-bus', level: 'warn' });
    this.interest = { lingerMs: deps.lingerMs ?? 0, isClosing: () => this.closed, release: (entry) => this.release(entry) };
    this.deferDelivery = deps.deferDelivery ?? false;
  }

  subscribe(channel: string, onItem: ItemHandler): () => void {
    if (this.closed) return () => {};
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      const created: ChannelEntry = { channel, handlers: new Set(), lingerTimer: undefined };
      entry = created;
      this.channels.set(channel, created);
      queueMicrotask(() => {
        // Skip when the channel was released (or released and re-created) in the meantime.
        if (this.channels.get(channel) === created) this.emit({ type: 'channel-live', channel, cause: LiveCause.Subscribed });
      });
    } else {
      stopLinger(entry);
    }
    return addSubscriber(entry, onItem, this.interest);
  }

  isLive(channel: string): boolean {
    return !this.closed && this.channels.has(channel);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    if (this.closed) throw new KgError('KG_ERR_BUS_UNAVAILABLE', 'the bus is closed');
    if (!this.deferDelivery) {
      this.deliver(items);
      return;
    }
    // Like NATS, an item goes to the channel's subscribers as of delivery; one without any
    // subscriber now is not kept.
    for (const item of items) if (this.channels.has(item.channel)) this.queue.push(item);
    if (this.queue.length > 0 && !this.isFlushScheduled) {
      this.isFlushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.isFlushScheduled = false;
    if (this.queue.length === 0) return;
    this.deliver(this.queue.splice(0));
  };

  private deliver(items: readonly PublishItem[]): void {
    for (const item of items) {
      const entry = this.channels.get(item.channel);
      if (entry !== undefined) deliverItem(entry.handlers, item, this.log, item.channel);
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
    // Accepted items still queued are delivered, not lost.
    this.flush();
    this.closed = true;
    for (const entry of this.channels.values()) clearTimeout(entry.lingerTimer);
    this.channels.clear();
    this.emit({ type: 'status', status: { type: 'closed' } });
    this.listeners.clear();
  }

  private release(entry: ChannelEntry): void {
    entry.lingerTimer = undefined;
    if (entry.handlers.size > 0 || this.channels.get(entry.channel) !== entry) return;
    this.channels.delete(entry.channel);
    this.emit({ type: 'channel-released', channel: entry.channel });
  }

  private emit(event: BusEvent): void {
    emitBusEvent(this.listeners, event, (err) => this.log.error({ err, event: event.type }, 'bus listener failed'));
  }
}
