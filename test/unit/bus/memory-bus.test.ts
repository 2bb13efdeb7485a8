import test from 'ava';
import { newMemoryBus, within } from '../../helpers/buses.js';
import { ItemCollector, streamItem } from '../../helpers/bus-items.js';

// The in-process bus with deferred delivery (what the sidecar uses): a large publish is handed
// out in bounded batches, one per turn of the event loop, so sockets drain in between (D22).

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a large publish is delivered in batches across turns of the event loop, in order, all of it', async (t) => {
  const bus = newMemoryBus({ deferDelivery: true });
  t.teardown(() => bus.close());
  const collector = new ItemCollector();
  bus.subscribe('burst', collector.handler);
  const items = Array.from({ length: 5000 }, (_, i) => streamItem('burst', String(i)));
  await bus.publish(items);
  t.is(collector.items.length, 0, 'publish answers before delivery');
  await nextTurn();
  const firstTurn = collector.items.length;
  t.true(firstTurn > 0 && firstTurn < items.length, `first turn delivered ${firstTurn}`);
  await within('every item', collector.waitForCount(items.length), 5000);
  t.deepEqual(collector.texts, items.map((_, i) => String(i)));
});

test('big items make smaller batches', async (t) => {
  const bus = newMemoryBus({ deferDelivery: true });
  t.teardown(() => bus.close());
  const collector = new ItemCollector();
  bus.subscribe('big', collector.handler);
  await bus.publish(Array.from({ length: 10 }, (_, i) => streamItem('big', String(i).repeat(10_000))));
  await nextTurn();
  t.true(collector.items.length < 10, `first turn delivered ${collector.items.length}`);
  await within('every item', collector.waitForCount(10), 5000);
});

test('items of back-to-back publishes keep their order, and close delivers what is still queued', async (t) => {
  const bus = newMemoryBus({ deferDelivery: true });
  const collector = new ItemCollector();
  bus.subscribe('c', collector.handler);
  await bus.publish(Array.from({ length: 1000 }, (_, i) => streamItem('c', `a${i}`)));
  await bus.publish(Array.from({ length: 1000 }, (_, i) => streamItem('c', `b${i}`)));
  await nextTurn();
  t.true(collector.items.length < 2000);
  await bus.close();
  t.deepEqual(collector.texts, [...Array.from({ length: 1000 }, (_, i) => `a${i}`), ...Array.from({ length: 1000 }, (_, i) => `b${i}`)]);
});
