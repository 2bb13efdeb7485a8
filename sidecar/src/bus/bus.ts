import type { Logger } from 'pino';
import type { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';

// The contract between the sidecar and whatever carries publishes between publishers and
// sidecars: an in-process bus (one instance, development) or NATS (many instances).
//
// Subscriptions are local interest: the bus holds one upstream subscription per channel that has
// at least one local handler. Becoming "live" (publishes from anywhere now reach the handlers) can
// lag behind subscribe() on a networked bus, so the bus announces it with a `channel-live` event;
// that is where holds do Pushpin's first-subscription refresh (docs/grip.md, "Reliability"): anything published
// before the event may have been missed by the channel's holds.

export type ItemHandler = (item: PublishItem) => void;

export type BusStatus =
  | { type: 'connected' }
  | { type: 'connecting'; error?: string }
  | { type: 'disconnected'; error?: string }
  | { type: 'closed' };

/**
 * Why a channel became live: its first local subscriber, a bus reconnect (items published
 * meanwhile may be missed), or a reconnect after which the bus fetches those items from history.
 */
export const LiveCause = { Subscribed: 'subscribed', Resubscribed: 'resubscribed', Resumed: 'resumed' } as const;
export type LiveCause = (typeof LiveCause)[keyof typeof LiveCause];

export type BusEvent =
  | { type: 'status'; status: BusStatus }
  /** The channel's upstream subscription is confirmed; publishes before this may be missed. */
  | { type: 'channel-live'; channel: string; cause: LiveCause }
  /** The channel's upstream subscription was removed (no local interest after the linger). */
  | { type: 'channel-released'; channel: string }
  /** Items the bus missed on a channel (outage, or a gap in stream sequences) were read from history. */
  | { type: 'channel-resumed'; channel: string; cause: 'reconnect' | 'gap'; items: number }
  /** A stored item arrived again after it was delivered (e.g. both live and from history); dropped. */
  | { type: 'history-duplicate'; channel: string }
  /** A catch-up was answered from the channel's recent items in memory, with no stream read. */
  | { type: 'history-kept'; channel: string; items: number }
  /** A message from the bus was not a valid publish item; it was dropped. */
  | { type: 'payload-invalid'; subject: string; error: KgError };

export type BusListener = (event: BusEvent) => void;

/** Recent items per channel, kept by the bus (JetStream); lets a client that missed items catch up. */
export interface History {
  /**
   * The items stored on `channel` after the one whose id is `afterId`, oldest first, each with
   * its `seq`; undefined when no retained item on the channel has that id. Rejects with
   * KG_ERR_HISTORY_UNAVAILABLE when the history cannot be read now.
   */
  itemsAfter(channel: string, afterId: string): Promise<PublishItem[] | undefined>;
}

export interface Bus {
  /** Present when the bus keeps history; items it delivers then carry `seq`. */
  readonly history?: History;
  /** Receive items published to `channel`. Returns the unsubscribe function (idempotent). */
  subscribe(channel: string, onItem: ItemHandler): () => void;
  /** Whether publishes to `channel` from anywhere currently reach this bus's handlers. */
  isLive(channel: string): boolean;
  /**
   * Publish items, in order; resolves once the bus has accepted them (not once delivered).
   * Rejects with KG_ERR_BUS_UNAVAILABLE when the bus cannot take them now, and with
   * KG_ERR_PUBLISH_INVALID when an item cannot be carried (too large); then none is published.
   */
  publish(items: readonly PublishItem[]): Promise<void>;
  status(): BusStatus;
  /** Status changes and channel events. Returns the function that removes the listener. */
  listen(listener: BusListener): () => void;
  close(): Promise<void>;
}

/** Resolves once `channel` is live on `bus` (at once if it already is). */
export function whenLive(bus: Bus, channel: string): Promise<void> {
  if (bus.isLive(channel)) return Promise.resolve();
  return new Promise((resolve) => {
    const off = bus.listen((event) => {
      if (event.type === 'channel-live' && event.channel === channel) {
        off();
        resolve();
      }
    });
  });
}

/** Sends one event to every listener; a throwing listener is reported, never disturbs the others. */
export function emitBusEvent(listeners: ReadonlySet<BusListener>, event: BusEvent, onError: (err: unknown) => void): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (err) {
      onError(err);
    }
  }
}

/**
 * Hands one item to every handler of a channel; a throwing handler is logged, never stops the
 * others. Hot path: no closure per item.
 */
export function deliverItem(handlers: ReadonlySet<ItemHandler>, item: PublishItem, log: Logger, channel: string): void {
  for (const handler of handlers) {
    try {
      handler(item);
    } catch (err) {
      log.error({ err, channel }, 'item handler failed');
    }
  }
}
