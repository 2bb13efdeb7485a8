import test from 'ava';
import { LiveCause, type Bus, type BusEvent, type BusListener, type History } from '../../sidecar/src/bus/bus.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';
import { Hub, type HubOptions, type PositionedSubscriber, type Subscriber } from '../../sidecar/src/hub/hub.js';
import { createMetrics } from '../../sidecar/src/metrics.js';
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
const REFRESH_OFF: HubOptions = { refreshOnFirstSubscription: false, firstSubscriptionRefreshMs: 0 };

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

// --- sequencing, linger and position --------------------------------------------------------

const ordered = (id: string, prevId?: string, seq?: number): PublishItem =>
  streamItem('q', id, { id, ...(prevId !== undefined ? { prevId } : {}), ...(seq !== undefined ? { seq } : {}) });
const texts = (items: PublishItem[]): string[] => items.map((i) => i.formats['http-stream']?.content.toString() ?? '');

/** A positioned subscriber that records recoveries. */
class FakePositioned extends FakeHold implements PositionedSubscriber {
  readonly recovered: string[] = [];
  private onRecover: (() => void) | undefined;
  readonly recovering = new Promise<void>((resolve) => { this.onRecover = resolve; });
  recover(channel: string): void {
    this.recovered.push(channel);
    this.onRecover?.();
  }
}

test('out-of-order items reach every subscriber in id order', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus);
  t.teardown(() => { hub.close(); return bus.close(); });
  const a = new FakeHold();
  hub.subscribe('q', a);
  await bus.publish([ordered('p1'), ordered('p2', 'p1'), ordered('p4', 'p3'), ordered('p3', 'p2')]);
  t.deepEqual(texts(a.items), ['p1', 'p2', 'p3', 'p4']);
  t.is(hub.position('q'), 'p4');
});

test('an item whose predecessor never comes goes out when its wait ends, counted as released', async (t) => {
  const bus = newMemoryBus();
  const metrics = createMetrics();
  const hub = new Hub(bus, metrics, { ...REFRESH_OFF, sequencing: { waitMs: 30, maxPending: 100, idTtlMs: 60_000 } });
  t.teardown(() => { hub.close(); return bus.close(); });
  const a = new FakeHold();
  hub.subscribe('q', a);
  const keep = setInterval(() => undefined, 1000); // the hub's timer does not hold the process
  t.teardown(() => clearInterval(keep));
  const publishedAt = Date.now();
  await bus.publish([ordered('1'), ordered('3', '2')]);
  t.deepEqual(texts(a.items), ['1']);
  while (a.items.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  t.true(Date.now() - publishedAt >= 29, 'it waited waitMs');
  t.deepEqual(texts(a.items), ['1', '3']);
  const text = await metrics.registry.metrics();
  t.regex(text, /kong_grip_sequencer_items_total\{outcome="waited"\} 1/);
  t.regex(text, /kong_grip_sequencer_items_total\{outcome="released_by_timeout"\} 1/);
});

test('a repeated id is dropped', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus);
  t.teardown(() => { hub.close(); return bus.close(); });
  const a = new FakeHold();
  hub.subscribe('q', a);
  await bus.publish([ordered('x'), ordered('x'), ordered('y', 'x')]);
  t.deepEqual(texts(a.items), ['x', 'y']);
});

test('a channel keeps its bus subscription and position for the linger after its last subscriber', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus, undefined, { ...REFRESH_OFF, channelLingerMs: 40 });
  t.teardown(() => { hub.close(); return bus.close(); });
  const keep = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(keep));
  const a = new FakeHold();
  hub.subscribe('q', a);
  await bus.publish([ordered('1')]);
  hub.unsubscribe('q', a);
  t.is(hub.channelCount(), 0, 'no channel with subscribers');
  t.true(bus.isLive('q'), 'still subscribed on the bus');
  await bus.publish([ordered('2', '1')]);
  t.is(hub.position('q'), '2', 'items during the linger still move the position');
  await new Promise<void>((resolve) => bus.listen((e) => e.type === 'channel-released' && resolve()));
  t.false(bus.isLive('q'));
  t.is(hub.position('q'), undefined);
});

test('a subscriber behind a known position is told to recover once; at the position, or with none known, it is not', async (t) => {
  const bus = newMemoryBus();
  const hub = new Hub(bus);
  t.teardown(() => { hub.close(); return bus.close(); });
  const first = new FakePositioned();
  hub.subscribe('q', first, 'p0');
  await Promise.resolve();
  t.deepEqual(first.recovered, [], 'no position known yet');
  await bus.publish([ordered('p1')]);
  const atPosition = new FakePositioned();
  const behind = new FakePositioned();
  hub.subscribe('q', atPosition, 'p1');
  hub.subscribe('q', behind, 'p0');
  await behind.recovering;
  t.deepEqual(behind.recovered, ['q']);
  t.deepEqual(atPosition.recovered, []);
  await bus.publish([ordered('p2', 'p1')]);
  t.deepEqual(texts(behind.items), ['p2'], 'it stays subscribed');
});

/** A memory bus with a history of items on channel q, and seq numbers on live items. */
function busWithHistory(stored: PublishItem[]): { bus: Bus; reads: string[] } {
  const reads: string[] = [];
  const history: History = {
    itemsAfter: async (channel, afterId) => {
      reads.push(afterId);
      const at = stored.findIndex((i) => i.channel === channel && i.id === afterId);
      return at < 0 ? undefined : stored.slice(at + 1);
    },
  };
  return { bus: Object.assign(newMemoryBus(), { history }), reads };
}

test('with history, a subscriber behind is caught up from it, then gets live items once', async (t) => {
  const stored = [ordered('1', undefined, 1), ordered('2', '1', 2), ordered('3', '2', 3)];
  const { bus, reads } = busWithHistory(stored);
  const metrics = createMetrics();
  const hub = new Hub(bus, metrics);
  t.teardown(() => { hub.close(); return bus.close(); });
  const late = new FakePositioned();
  hub.subscribe('q', late, '1');
  // Live while the history is read: 3 again (already in history) and 4.
  await bus.publish([ordered('3', '2', 3), ordered('4', '3', 4)]);
  while (late.items.length < 3) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(texts(late.items), ['2', '3', '4']);
  t.deepEqual(reads, ['1']);
  t.deepEqual(late.recovered, []);
  t.regex(await metrics.registry.metrics(), /kong_grip_catch_ups_total\{result="history"\} 1/);
});

test('with history, a prev-id it does not hold means recovery when the position is known, and nothing when not', async (t) => {
  const { bus } = busWithHistory([]);
  const hub = new Hub(bus);
  t.teardown(() => { hub.close(); return bus.close(); });
  const unknown = new FakePositioned();
  hub.subscribe('q', unknown, 'gone');
  await bus.publish([ordered('5', '4', 5)]);
  while (unknown.items.length < 1) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(unknown.recovered, [], 'no position was known when it subscribed');
  const behind = new FakePositioned();
  hub.subscribe('q', behind, 'gone');
  await behind.recovering;
  t.deepEqual(behind.recovered, ['q']);
});

test('with history, catch-ups from the same prev-id that start while one read runs share it, and each gets what went live', async (t) => {
  const stored = [ordered('1', undefined, 1), ordered('2', '1', 2), ordered('3', '2', 3)];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const reads: string[] = [];
  const history: History = {
    itemsAfter: async (channel, afterId) => {
      reads.push(afterId);
      await gate;
      const at = stored.findIndex((i) => i.channel === channel && i.id === afterId);
      return at < 0 ? undefined : stored.slice(at + 1);
    },
  };
  const bus = Object.assign(newMemoryBus(), { history });
  const metrics = createMetrics();
  const hub = new Hub(bus, metrics);
  t.teardown(() => { hub.close(); return bus.close(); });
  const first = new FakePositioned();
  hub.subscribe('q', first, '1');
  // Goes live before the second arrives: only the shared read's buffer has it for the second.
  await bus.publish([ordered('4', '3', 4)]);
  const second = new FakePositioned();
  hub.subscribe('q', second, '1');
  await bus.publish([ordered('5', '4', 5)]);
  release();
  while (first.items.length < 4 || second.items.length < 4) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(texts(first.items), ['2', '3', '4', '5']);
  t.deepEqual(texts(second.items), ['2', '3', '4', '5']);
  t.deepEqual(reads, ['1'], 'one read for both');
  t.regex(await metrics.registry.metrics(), /kong_grip_catch_ups_total\{result="history"\} 2/);
  t.regex(await metrics.registry.metrics(), /kong_grip_history_items_total\{use="catch_up"\} 2/);
  // A later catch-up from the same id reads again (the shared read is over).
  const third = new FakePositioned();
  hub.subscribe('q', third, '1');
  while (third.items.length < 2) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(reads, ['1', '1']);
});

test('with history, a client whose last id arrives live during its catch-up does not get it again', async (t) => {
  // The history does not have 6 yet when it is read; 6 then arrives live, then 7.
  const stored = [ordered('5', undefined, 5)];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const history: History = {
    itemsAfter: async (channel, afterId) => {
      await gate;
      return stored.some((i) => i.id === afterId) ? [] : undefined;
    },
  };
  const bus = Object.assign(newMemoryBus(), { history });
  const hub = new Hub(bus);
  t.teardown(() => { hub.close(); return bus.close(); });
  const ahead = new FakePositioned();
  hub.subscribe('q', ahead, '6');
  await bus.publish([ordered('6', '5', 6), ordered('7', '6', 7)]);
  stored.push(ordered('6', '5', 6));
  release();
  while (ahead.items.length < 1) await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(texts(ahead.items), ['7']);
});
