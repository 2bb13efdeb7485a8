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
 * Most items, and most content bytes, delivered in one turn of the event loop (deferDelivery).
 * A turn's writes to one connection are queued on its socket together (holds/chunk-writer.ts), so
 * a turn must stay well below limits.maxQueueBytes (1 MiB by default) or a fast reader is dropped
 * as a slow consumer before it could read anything. NATS hands items over per socket read (at
 * most 64 KiB of messages); this is in the same range.
 */
const BATCH_MAX_ITEMS = 256;
const BATCH_MAX_BYTES = 32 * 1024;

/**
 * In-process bus for a single sidecar (no NATS). Items reach subscribers in publish order. By
 * default they are delivered inside publish(); with `deferDelivery` (what the sidecar uses)
 * publish() only queues them, and what is queued is delivered on later turns of the event loop
 * (setImmediate), in batches of at most BATCH_MAX_ITEMS items and BATCH_MAX_BYTES of content, so
 * sockets drain between batches (I/O runs between turns) as they do when NATS delivers a burst.
 * The publisher gets its answer without waiting for the fan-out, and the items of back-to-back
 * publishes reach each connection together (a hold sends what it gets in one tick as one write),
 * as they do from NATS.
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
  /** Published, not yet delivered (deferDelivery only), from `queueHead` on. */
  private queue: Array<PublishItem | undefined> = [];
  private queueHead = 0;
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
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.queueHead < this.queue.length && !this.isFlushScheduled) {
      this.isFlushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Delivers the next batch of queued items; the rest wait for the next turn. */
  private readonly flush = (): void => {
    this.isFlushScheduled = false;
    const queue = this.queue;
    let bytes = 0;
    let count = 0;
    while (this.queueHead < queue.length && count < BATCH_MAX_ITEMS && bytes < BATCH_MAX_BYTES) {
      const item = queue[this.queueHead]!;
      queue[this.queueHead++] = undefined;
      this.deliverOne(item);
      count++;
      bytes += contentBytes(item);
    }
    if (this.queueHead === queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead >= 4096 && this.queueHead * 2 >= queue.length) {
      this.queue = queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    this.scheduleFlush();
  };

  /** Everything still queued, now (close). */
  private flushAll(): void {
    const rest = this.queue.slice(this.queueHead);
    this.queue = [];
    this.queueHead = 0;
    for (const item of rest) this.deliverOne(item!);
  }

  private deliver(items: readonly PublishItem[]): void {
    for (const item of items) this.deliverOne(item);
  }

  private deliverOne(item: PublishItem): void {
    const entry = this.channels.get(item.channel);
    if (entry !== undefined) deliverItem(entry.handlers, item, this.log, item.channel);
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
    this.flushAll();
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

/** The content bytes an item carries (what its deliveries write), for sizing a batch. */
function contentBytes(item: PublishItem): number {
  const f = item.formats;
  return (f['http-stream']?.content.length ?? 0) + (f['ws-message']?.content.length ?? 0) + (f['http-response']?.body?.length ?? 0);
}
