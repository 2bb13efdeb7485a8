import type { ItemHandler } from './bus.js';

// Local interest in a channel, the same on every bus: its handlers are reference counted and the
// upstream subscription outlives the last one by a linger, so long-poll clients that re-poll at
// once do not churn interest.

export interface Interest {
  readonly handlers: Set<ItemHandler>;
  lingerTimer: NodeJS.Timeout | undefined;
}

/** The bus's side, one per bus (not per subscription): how long to linger and how a channel goes. */
export interface InterestOwner<E extends Interest> {
  readonly lingerMs: number;
  /** While the bus closes, nothing lingers or is released one by one. */
  isClosing(): boolean;
  /** The linger ended (or there is none): drop the channel if it is still unused. */
  release(entry: E): void;
}

/** Adds a subscriber; its unsubscribe (idempotent) starts the linger when it was the last one. */
export function addSubscriber<E extends Interest>(entry: E, onItem: ItemHandler, owner: InterestOwner<E>): () => void {
  // A wrapper keeps two subscriptions with the same handler independent.
  const handler: ItemHandler = (item) => onItem(item);
  entry.handlers.add(handler);
  return () => {
    if (!entry.handlers.delete(handler) || entry.handlers.size > 0 || owner.isClosing()) return;
    if (owner.lingerMs <= 0) {
      owner.release(entry);
      return;
    }
    entry.lingerTimer = setTimeout(() => owner.release(entry), owner.lingerMs);
    entry.lingerTimer.unref();
  };
}

/** The channel has a subscriber again: a linger in progress ends. */
export function stopLinger(entry: Interest): void {
  if (entry.lingerTimer === undefined) return;
  clearTimeout(entry.lingerTimer);
  entry.lingerTimer = undefined;
}
