import type { PublishItem } from '../grip/types.js';

// The contract between the sidecar and whatever carries publishes between publishers and
// sidecars: an in-process bus (one instance, development) or NATS (many instances).

export type ItemHandler = (item: PublishItem) => void;

export type BusStatus =
  | { type: 'connected' }
  | { type: 'connecting' }
  | { type: 'disconnected'; error?: string }
  | { type: 'closed' };

export interface Bus {
  /** Receive items published to `channel`. Returns the unsubscribe function. */
  subscribe(channel: string, onItem: ItemHandler): () => void;
  /** Publish items; resolves once the bus has accepted them (not once delivered). */
  publish(items: readonly PublishItem[]): Promise<void>;
  status(): BusStatus;
  close(): Promise<void>;
}
