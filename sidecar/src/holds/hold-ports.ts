import type { PositionedSubscriber, Subscriber } from '../hub/hub.js';
import type { PublishItem } from '../grip/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { HoldRegistry } from './hold-registry.js';

// The small interfaces the HTTP holds and their session are given instead of the whole sidecar
// (each class declares which of these it takes), and the helpers over them. The sidecar builds
// one of each at start; unit tests pass fakes.

/** The hub as a hold uses it: subscribe with a position, unsubscribe. */
export interface ChannelSubscriptions {
  subscribe(channel: string, subscriber: PositionedSubscriber, prevId: string | undefined): void;
  unsubscribe(channel: string, subscriber: Subscriber): void;
}

/** The holds open now, so a shutdown can drain them (HoldRegistry). */
export type OpenHolds = Pick<HoldRegistry, 'add' | 'delete'>;

/** The gauges and counters of a hold's life that every HTTP hold keeps. */
export type HoldMetrics = Pick<Metrics, 'connections' | 'holdsClosed' | 'holdDuration'>;

/** How many channels one connection may subscribe to, and what happens to the rest. */
export interface ChannelLimit {
  readonly max: number;
  /** `requested` channels were asked for: the ones over `max` are dropped (counted, logged). */
  dropped(requested: number): void;
}

/** The per-connection channel limit of the config, counting and logging what it drops. */
export function createChannelLimit(max: number, metrics: Pick<Metrics, 'channelsDropped'>, log: Pick<Logger, 'warn'>): ChannelLimit {
  return {
    max,
    dropped(requested) {
      metrics.channelsDropped.inc(requested - max);
      log.warn({ requested, max }, 'channels over the per-connection limit dropped');
    },
  };
}

/** The channels a hold may subscribe to: the first `limit.max`, the rest counted and dropped. */
export function limitChannels<T>(channels: readonly T[], limit: ChannelLimit): T[] {
  if (channels.length <= limit.max) return [...channels];
  limit.dropped(channels.length);
  return channels.slice(0, limit.max);
}

/** Items whose filter failed and has been logged: once per item, however many connections it failed for. */
const loggedFilterErrors = new WeakSet<PublishItem>();

/**
 * A filter failed on an item for one connection (docs/grip.md, "Meta and filters"): the item is dropped for it, counted
 * per connection and logged once per item (the reason is the same for every connection alike).
 */
export function reportFilterError(
  deps: { metrics: Pick<Metrics, 'deliveriesDropped'>; log: Pick<Logger, 'warn'> }, item: PublishItem, message: string,
): void {
  deps.metrics.deliveriesDropped.inc({ reason: 'filter_error' });
  if (loggedFilterErrors.has(item)) return;
  loggedFilterErrors.add(item);
  deps.log.warn({ channel: item.channel, id: item.id, err: message }, 'filter error; item not delivered to the connection');
}
