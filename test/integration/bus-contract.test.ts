import test from 'ava';
import { whenLive, type Bus, type BusEvent } from '../../sidecar/src/bus/bus.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';
import { newMemoryBus, newNatsBus } from '../helpers/buses.js';
import { ItemCollector, streamItem } from '../helpers/bus-items.js';
import { NatsServer } from '../helpers/nats-server.js';
import { DEFAULT_JETSTREAM } from '../../sidecar/src/config.js';

// The Bus contract, run with the same cases against the in-process bus and the NATS bus (over a
// real nats-server). Each test uses its own bus and channel names, so tests run concurrently.

let nats: NatsServer | undefined;
let jetstream: NatsServer | undefined;

test.before(async () => {
  [nats, jetstream] = await Promise.all([NatsServer.start(), NatsServer.start({ jetstream: true })]);
});

test.after.always(async () => {
  await Promise.all([nats?.dispose(), jetstream?.dispose()]);
});

const implementations: Array<{ name: string; make: (options?: { lingerMs?: number }) => Bus }> = [
  { name: 'memory', make: (options) => newMemoryBus(options) },
  { name: 'memory (deferred delivery)', make: (options) => newMemoryBus({ ...options, deferDelivery: true }) },
  { name: 'nats', make: (options) => newNatsBus(nats!.url, options) },
  {
    name: 'nats with history',
    make: (options) => newNatsBus(jetstream!.url, { ...options, history: { ...DEFAULT_JETSTREAM, stream: 'CONTRACT', storage: 'memory' } }),
  },
];

/** Subscribes and waits until the subscription is live, so the next publish must arrive. */
async function subscribeLive(bus: Bus, channel: string, collector: ItemCollector): Promise<() => void> {
  const off = bus.subscribe(channel, collector.handler);
  await whenLive(bus, channel);
  return off;
}

const WEIRD_CHANNELS = [
  'user.42', 'a.b.c', '*', '>', 'a*b>c', 'with space', 'tab\there', 'line\nbreak', '%', '%2E', 'café',
  '日本語', '🎉 party', 'a.*.>', '\u00a0nbsp',
];

for (const impl of implementations) {
  const title = (behaviour: string): string => `${impl.name} bus: ${behaviour}`;

  test(title('delivers each channel\'s items in publish order'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const a = new ItemCollector();
    const b = new ItemCollector();
    await subscribeLive(bus, `order-a-${impl.name}`, a);
    await subscribeLive(bus, `order-b-${impl.name}`, b);
    const expectA: string[] = [];
    const expectB: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const items: PublishItem[] = [];
      for (let i = 0; i < 10; i++) {
        const n = `${batch}-${i}`;
        if (i % 3 === 0) {
          items.push(streamItem(`order-b-${impl.name}`, n));
          expectB.push(n);
        } else {
          items.push(streamItem(`order-a-${impl.name}`, n));
          expectA.push(n);
        }
      }
      await bus.publish(items);
    }
    await Promise.all([a.waitForCount(expectA.length), b.waitForCount(expectB.length)]);
    t.deepEqual(a.texts, expectA);
    t.deepEqual(b.texts, expectB);
  });

  test(title('stops delivering to a handler once it unsubscribes'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const channel = `unsub-${impl.name}`;
    const leaving = new ItemCollector();
    const staying = new ItemCollector();
    const off = await subscribeLive(bus, channel, leaving);
    await subscribeLive(bus, channel, staying);
    await bus.publish([streamItem(channel, 'before')]);
    await Promise.all([leaving.waitForText('before'), staying.waitForText('before')]);
    off();
    off(); // idempotent
    await bus.publish([streamItem(channel, 'after'), streamItem(channel, 'marker')]);
    await staying.waitForText('marker');
    t.deepEqual(staying.texts, ['before', 'after', 'marker']);
    t.deepEqual(leaving.texts, ['before']);
  });

  test(title('keeps channels isolated from each other'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const one = new ItemCollector();
    const two = new ItemCollector();
    // Names that would collide under a naive escaping or a wildcard match.
    await subscribeLive(bus, `iso.${impl.name}`, one);
    await subscribeLive(bus, `iso%2E${impl.name}`, two);
    await bus.publish([streamItem(`iso.${impl.name}`, 'for-one'), streamItem(`iso%2E${impl.name}`, 'for-two')]);
    await Promise.all([one.waitForText('for-one'), two.waitForText('for-two')]);
    t.deepEqual(one.texts, ['for-one']);
    t.deepEqual(two.texts, ['for-two']);
  });

  test(title('keeps a second subscription of the same handler independent'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const channel = `twice-${impl.name}`;
    const c = new ItemCollector();
    const offFirst = await subscribeLive(bus, channel, c);
    bus.subscribe(channel, c.handler);
    offFirst();
    await bus.publish([streamItem(channel, 'x')]);
    await c.waitForText('x');
    t.deepEqual(c.texts, ['x']);
  });

  test(title('round-trips channel names with reserved, whitespace and non-ASCII characters'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const collectors = new Map<string, ItemCollector>();
    for (const name of WEIRD_CHANNELS) {
      const c = new ItemCollector();
      collectors.set(name, c);
      await subscribeLive(bus, `${name}|${impl.name}`, c);
    }
    await bus.publish(WEIRD_CHANNELS.map((name) => streamItem(`${name}|${impl.name}`, `to ${name}`)));
    for (const [name, c] of collectors) {
      await c.waitForCount(1);
      t.is(c.items[0]!.channel, `${name}|${impl.name}`);
      t.deepEqual(c.texts, [`to ${name}`]);
    }
  });

  test(title('carries every field of an item unchanged'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const channel = `fields-${impl.name}`;
    const c = new ItemCollector();
    await subscribeLive(bus, channel, c);
    const item: PublishItem = {
      channel,
      id: 'i2',
      prevId: 'i1',
      meta: { sender: 'alice' },
      noSeq: true,
      formats: {
        'http-response': {
          action: 'send', code: 202, reason: 'Accepted', headers: [['X-A', '1'], ['X-A', '2']], body: Buffer.from([0, 255, 1]),
        },
        'http-stream': { action: 'send', content: Buffer.from('data: é\n\n'), contentFilters: ['build-id'] },
        'ws-message': { action: 'send', type: 'binary', content: Buffer.from('bin') },
      },
    };
    await bus.publish([item]);
    await c.waitForCount(1);
    const { seq, ...received } = c.items[0]!;
    t.deepEqual(received, item);
    // With history the item also carries its place in the stream.
    if (bus.history === undefined) t.is(seq, undefined);
    else t.true(Number.isSafeInteger(seq) && seq! > 0);
  });

  test(title('announces a channel as live once, when it gets its first subscriber'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const channel = `live-${impl.name}`;
    const events: BusEvent[] = [];
    bus.listen((e) => {
      if (e.type === 'channel-live' || e.type === 'channel-released') events.push(e);
    });
    const off1 = bus.subscribe(channel, () => {});
    const off2 = bus.subscribe(channel, () => {});
    await whenLive(bus, channel);
    t.true(bus.isLive(channel));
    const released = new Promise<void>((resolve) => bus.listen((e) => e.type === 'channel-released' && resolve()));
    off1();
    t.true(bus.isLive(channel), 'one subscriber is left');
    off2();
    await released;
    t.false(bus.isLive(channel));
    t.deepEqual(events, [
      { type: 'channel-live', channel, cause: 'subscribed' },
      { type: 'channel-released', channel },
    ]);
  });

  test(title('keeps a channel live through the linger when a subscriber returns'), async (t) => {
    const bus = impl.make({ lingerMs: 60_000 });
    t.teardown(() => bus.close());
    const channel = `linger-${impl.name}`;
    const events: string[] = [];
    bus.listen((e) => {
      if (e.type === 'channel-live' || e.type === 'channel-released') events.push(e.type);
    });
    const off = bus.subscribe(channel, () => {});
    await whenLive(bus, channel);
    off();
    t.true(bus.isLive(channel));
    const c = new ItemCollector();
    bus.subscribe(channel, c.handler);
    await bus.publish([streamItem(channel, 'back')]);
    await c.waitForText('back');
    t.deepEqual(events, ['channel-live'], 'no second first-subscription');
  });

  test(title('releases a channel when its linger ends without a subscriber'), async (t) => {
    const bus = impl.make({ lingerMs: 30 });
    t.teardown(() => bus.close());
    const channel = `linger-end-${impl.name}`;
    const off = bus.subscribe(channel, () => {});
    await whenLive(bus, channel);
    const released = new Promise<void>((resolve) => bus.listen((e) => e.type === 'channel-released' && resolve()));
    off();
    await released;
    t.false(bus.isLive(channel));
  });

  test(title('keeps delivering to other handlers when one throws'), async (t) => {
    const bus = impl.make();
    t.teardown(() => bus.close());
    const channel = `throws-${impl.name}`;
    bus.subscribe(channel, () => {
      throw new Error('handler bug');
    });
    const c = new ItemCollector();
    await subscribeLive(bus, channel, c);
    await bus.publish([streamItem(channel, '1'), streamItem(channel, '2')]);
    await c.waitForCount(2);
    t.deepEqual(c.texts, ['1', '2']);
  });

  test(title('rejects publishes after close and reports the closed status'), async (t) => {
    const bus = impl.make();
    const statuses: string[] = [];
    bus.listen((e) => {
      if (e.type === 'status') statuses.push(e.status.type);
    });
    await bus.close();
    t.is(bus.status().type, 'closed');
    t.true(statuses.includes('closed'));
    await t.throwsAsync(bus.publish([streamItem('x', 'y')]), { code: 'KG_ERR_BUS_UNAVAILABLE' });
  });
}
