import test from 'ava';
import { LiveCause, type Bus, type BusEvent, type BusListener } from '../../sidecar/src/bus/bus.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';
import { Hub, type HubOptions, type Subscriber } from '../../sidecar/src/hub.js';
import { newMemoryBus } from '../helpers/buses.js';
import { streamItem } from '../helpers/bus-items.js';

/** A subscriber that records deliveries and lets a test await its refresh. */
class FakeHold implements Subscriber {
  readonly items: PublishItem[] = [];
  refreshes = 0;
  private onRefresh: (() => void) | undefined;
  readonly refreshed = new Promise<void>((resolve) => { this.onRefresh = resolve; });
  deliver(item: PublishItem): void {
    this.items.push(item);
  }
  refresh(): void {
    this.refreshes++;
    this.onRefresh?.();
  }
}

const REFRESH_AT_ONCE: HubOptions = { refreshOnFirstSubscription: true, firstSubscriptionRefreshMs: 0 };

test('fans each item out to every subscriber of its channel', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus);
  t.teardown(() => bus.close());
  const a = new FakeHold();
  const b = new FakeHold();
  hub.subscribe('c', a);
  hub.subscribe('c', b);
  await bus.publish([streamItem('c', '1')]);
  t.is(a.items.length, 1);
  t.is(b.items.length, 1);
  hub.unsubscribe('c', a);
  await bus.publish([streamItem('c', '2')]);
  t.is(a.items.length, 1);
  t.is(b.items.length, 2);
  t.is(hub.subscriberCount('c'), 1);
});

test('refreshes the subscribers a channel had when it went live, not later ones', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus, undefined, REFRESH_AT_ONCE);
  t.teardown(() => bus.close());
  const first = new FakeHold();
  const second = new FakeHold();
  hub.subscribe('news', first);
  hub.subscribe('news', second); // same tick: the channel is not live yet for either
  await Promise.all([first.refreshed, second.refreshed]);
  const later = new FakeHold();
  hub.subscribe('news', later);
  await bus.publish([streamItem('news', 'x')]);
  t.is(first.refreshes, 1);
  t.is(second.refreshes, 1);
  t.is(later.refreshes, 0);
  t.is(later.items.length, 1);
});

test('does not refresh when the option is off', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus, undefined, { refreshOnFirstSubscription: false, firstSubscriptionRefreshMs: 0 });
  t.teardown(() => bus.close());
  const hold = new FakeHold();
  // A second hub with refresh on shares the bus: once its subscriber is refreshed, the event
  // has been handled by both hubs.
  const witness = new Hub(bus, undefined, REFRESH_AT_ONCE);
  const seen = new FakeHold();
  hub.subscribe('quiet', hold);
  witness.subscribe('quiet', seen);
  await seen.refreshed;
  t.is(hold.refreshes, 0);
});

test('skips subscribers that left before the refresh delay ended', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus, undefined, { refreshOnFirstSubscription: true, firstSubscriptionRefreshMs: 20 });
  t.teardown(() => bus.close());
  const leaving = new FakeHold();
  const staying = new FakeHold();
  hub.subscribe('ch', leaving);
  hub.subscribe('ch', staying);
  await new Promise<void>((resolve) => bus.listen((e) => e.type === 'channel-live' && resolve()));
  hub.unsubscribe('ch', leaving);
  await staying.refreshed;
  t.is(leaving.refreshes, 0);
});

test('refreshes after a bus reconnect too, since items may have been missed', async (t) => {
  // A bus that reports channels live on demand, standing in for NATS reconnecting.
  const listeners = new Set<BusListener>();
  const bus: Bus = {
    subscribe: () => () => {},
    isLive: () => true,
    publish: async () => {},
    status: () => ({ type: 'connected' }),
    listen: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    close: async () => {},
  };
  const emit = (e: BusEvent): void => listeners.forEach((l) => l(e));
  const hub = new Hub(bus, undefined, REFRESH_AT_ONCE);
  const hold = new FakeHold();
  hub.subscribe('r', hold);
  emit({ type: 'channel-live', channel: 'r', cause: LiveCause.Resubscribed });
  await hold.refreshed;
  t.is(hold.refreshes, 1);
  hub.close();
  t.is(listeners.size, 0, 'close stops listening');
});
