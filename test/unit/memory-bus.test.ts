import test from 'ava';
import { MemoryBus } from '../../sidecar/src/bus/memory-bus.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';

const item = (channel: string, id: string): PublishItem => ({
  channel, id, formats: { 'http-stream': { action: 'send', content: Buffer.from(id) } }, meta: {}, noSeq: false,
});

test('delivers items in publish order only to subscribers of the channel', async (t) => {
  const bus = new MemoryBus();
  const got: string[] = [];
  const off = bus.subscribe('a', (i) => got.push(i.id ?? ''));
  bus.subscribe('b', () => t.fail('channel b must not receive items for a'));
  await bus.publish([item('a', '1'), item('a', '2'), item('a', '3')]);
  t.deepEqual(got, ['1', '2', '3']);
  off();
  await bus.publish([item('a', '4')]);
  t.deepEqual(got, ['1', '2', '3']);
});

test('with deferred delivery, publish resolves before any item is delivered', async (t) => {
  const bus = new MemoryBus({ deferDelivery: true });
  t.teardown(() => bus.close());
  const got: string[] = [];
  bus.subscribe('a', (i) => got.push(i.id ?? ''));
  await bus.publish([item('a', '1'), item('a', '2')]);
  t.deepEqual(got, [], 'nothing is delivered inside publish()');
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.deepEqual(got, ['1', '2']);
});

test('with deferred delivery, items of back-to-back publishes arrive in publish order, per channel, in one pass', async (t) => {
  const bus = new MemoryBus({ deferDelivery: true });
  t.teardown(() => bus.close());
  const got: string[] = [];
  // Separate passes (timer callbacks) have a microtask checkpoint between them; one pass has none.
  let passStarted = false;
  let checkpointPassed = false;
  let deliveredAfterCheckpoint = 0;
  const record = (text: string): void => {
    if (!passStarted) {
      passStarted = true;
      queueMicrotask(() => { checkpointPassed = true; });
    } else if (checkpointPassed) {
      deliveredAfterCheckpoint++;
    }
    got.push(text);
  };
  bus.subscribe('a', (i) => record(`a${i.id}`));
  bus.subscribe('b', (i) => record(`b${i.id}`));
  await Promise.all([
    bus.publish([item('a', '1'), item('b', '1')]),
    bus.publish([item('a', '2')]),
    bus.publish([item('b', '2'), item('a', '3')]),
  ]);
  t.deepEqual(got, []);
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.deepEqual(got, ['a1', 'b1', 'a2', 'b2', 'a3']);
  t.is(deliveredAfterCheckpoint, 0, 'everything queued went out in one pass');
});

test('with deferred delivery, close delivers the items still queued', async (t) => {
  const bus = new MemoryBus({ deferDelivery: true });
  const got: string[] = [];
  bus.subscribe('a', (i) => got.push(i.id ?? ''));
  await bus.publish([item('a', '1')]);
  await bus.close();
  t.deepEqual(got, ['1']);
  await t.throwsAsync(bus.publish([item('a', '2')]), { code: 'KG_ERR_BUS_UNAVAILABLE' });
});

test('with deferred delivery, an item published to a channel without subscribers is not kept for later ones', async (t) => {
  const bus = new MemoryBus({ deferDelivery: true });
  t.teardown(() => bus.close());
  await bus.publish([item('a', 'early')]);
  const got: string[] = [];
  bus.subscribe('a', (i) => got.push(i.id ?? ''));
  await bus.publish([item('a', 'late')]);
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.deepEqual(got, ['late']);
});
