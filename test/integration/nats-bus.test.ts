import test from 'ava';
import { connect, type NatsConnection } from 'nats';
import { whenLive, type Bus, type BusEvent, type BusStatus } from '../../sidecar/src/bus/bus.js';
import type { NatsBus } from '../../sidecar/src/bus/nats-bus.js';
import { channelToSubject, DEFAULT_SUBJECT_PREFIX } from '../../sidecar/src/bus/subject.js';
import { newNatsBus, within } from '../helpers/buses.js';
import { ItemCollector, streamItem } from '../helpers/bus-items.js';
import { NatsServer } from '../helpers/nats-server.js';

// NATS-specific behaviour of NatsBus against a real nats-server: interest on the server follows
// local subscribers, outages are survived, and bad payloads are dropped without harm. Tests that
// stop the server use their own; the others share one.

let shared: NatsServer | undefined;
test.before(async () => {
  shared = await NatsServer.start();
});
test.after.always(async () => {
  await shared?.dispose();
});

const subjectOf = (channel: string): string => channelToSubject(DEFAULT_SUBJECT_PREFIX, channel);

/** Resolves with the first event that matches. */
function nextEvent<E extends BusEvent>(bus: Bus, match: (e: BusEvent) => e is E): Promise<E> {
  return new Promise((resolve) => {
    const off = bus.listen((e) => {
      if (match(e)) {
        off();
        resolve(e);
      }
    });
  });
}

function statusEvent(type: BusStatus['type']) {
  return (e: BusEvent): e is Extract<BusEvent, { type: 'status' }> => e.type === 'status' && e.status.type === type;
}

function liveEvent(channel: string) {
  return (e: BusEvent): e is Extract<BusEvent, { type: 'channel-live' }> => e.type === 'channel-live' && e.channel === channel;
}

function releasedEvent(channel: string) {
  return (e: BusEvent): e is Extract<BusEvent, { type: 'channel-released' }> => e.type === 'channel-released' && e.channel === channel;
}

async function rawClient(server: NatsServer): Promise<NatsConnection> {
  return connect({ servers: server.url, name: 'test-publisher' });
}

async function connected(bus: NatsBus): Promise<void> {
  if (bus.status().type !== 'connected') await nextEvent(bus, statusEvent('connected'));
}

test('subscribes a channel on the server while it has local subscribers, once for many', async (t) => {
  const server = shared!;
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  const channel = 'interest.one';
  const subject = subjectOf(channel);
  const off1 = bus.subscribe(channel, () => {});
  const off2 = bus.subscribe(channel, () => {});
  await whenLive(bus, channel);
  t.deepEqual((await server.subjects()).filter((s) => s === subject), [subject], 'one NATS subscription for two local ones');
  off1();
  t.deepEqual((await server.subjects()).filter((s) => s === subject), [subject], 'still subscribed for the remaining one');
  const released = nextEvent(bus, releasedEvent(channel));
  off2();
  await released;
  t.false((await server.subjects()).includes(subject));
});

test('keeps the same server subscription through the linger when a subscriber returns', async (t) => {
  const server = shared!;
  const bus = newNatsBus(server.url, { lingerMs: 60_000 });
  t.teardown(() => bus.close());
  const channel = 'linger.return';
  const off = bus.subscribe(channel, () => {});
  await whenLive(bus, channel);
  const before = (await server.subscriptions()).find((s) => s.subject === subjectOf(channel));
  off();
  bus.subscribe(channel, () => {});
  const after = (await server.subscriptions()).find((s) => s.subject === subjectOf(channel));
  t.truthy(before);
  t.is(after?.sid, before?.sid);
  t.is(after?.cid, before?.cid);
});

test('drops the server subscription when the linger ends without a subscriber', async (t) => {
  const server = shared!;
  const bus = newNatsBus(server.url, { lingerMs: 30 });
  t.teardown(() => bus.close());
  const channel = 'linger.expire';
  const off = bus.subscribe(channel, () => {});
  await whenLive(bus, channel);
  const released = nextEvent(bus, releasedEvent(channel));
  off();
  await released;
  t.false((await server.subjects()).includes(subjectOf(channel)));
});

test('delivers items published by any NATS client to the subject, with the channel from the subject', async (t) => {
  const server = shared!;
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  const nc = await rawClient(server);
  t.teardown(() => nc.close());
  const c = new ItemCollector();
  bus.subscribe('user.42', c.handler);
  await whenLive(bus, 'user.42');
  // Exactly what docs/nats.md shows for `nats pub`.
  nc.publish('grip.ch.user%2E42', Buffer.from('{"formats":{"http-stream":{"content":"hello\\n"}}}'));
  nc.publish('grip.ch.user%2E42', Buffer.from('{"channel":"user.42","id":"2","formats":{"http-stream":{"content":"again\\n"}}}'));
  await c.waitForCount(2);
  t.deepEqual(c.texts, ['hello\n', 'again\n']);
  t.is(c.items[0]!.channel, 'user.42');
  t.is(c.items[1]!.id, '2');
});

test('drops malformed payloads, counts and reports them, and keeps delivering the rest in order', async (t) => {
  const server = shared!;
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  const nc = await rawClient(server);
  t.teardown(() => nc.close());
  const channel = 'bad.payloads';
  const subject = subjectOf(channel);
  const invalid: Array<Extract<BusEvent, { type: 'payload-invalid' }>> = [];
  bus.listen((e) => {
    if (e.type === 'payload-invalid') invalid.push(e);
  });
  const c = new ItemCollector();
  bus.subscribe(channel, c.handler);
  await whenLive(bus, channel);
  const good = (text: string): Buffer => Buffer.from(JSON.stringify({ formats: { 'http-stream': { content: text } } }));
  const bad = [
    Buffer.from('not json'),
    Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), // invalid UTF-8
    Buffer.from('[1,2]'),
    Buffer.from('{"formats":{}}'),
    Buffer.from('{"channel":"other","formats":{"http-stream":{"content":"x"}}}'),
    Buffer.from('{"formats":{"http-stream":{"action":"explode"}}}'),
    Buffer.alloc(0),
  ];
  nc.publish(subject, good('1'));
  for (const payload of bad) nc.publish(subject, payload);
  nc.publish(subject, good('2'));
  await nc.flush();
  await c.waitForText('2');
  t.deepEqual(c.texts, ['1', '2']);
  t.is(bus.invalidPayloadCount, bad.length);
  t.is(invalid.length, bad.length);
  for (const e of invalid) {
    t.is(e.subject, subject);
    t.is(e.error.code, 'KG_ERR_NATS_PAYLOAD_INVALID');
    t.true(e.error.message.includes(subject));
  }
  t.regex(invalid[4]!.error.message, /is not the subject's channel/);
});

test('rejects an item larger than the server accepts and publishes none of the batch', async (t) => {
  const server = shared!;
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  await connected(bus);
  const channel = 'too.big';
  const c = new ItemCollector();
  bus.subscribe(channel, c.handler);
  await whenLive(bus, channel);
  const huge = streamItem(channel, 'x'.repeat(1024 * 1024 + 1));
  await t.throwsAsync(bus.publish([streamItem(channel, 'small'), huge]), {
    code: 'KG_ERR_PUBLISH_INVALID',
    message: /items\[1\].*max_payload/,
  });
  await bus.publish([streamItem(channel, 'marker')]);
  await c.waitForText('marker');
  t.deepEqual(c.texts, ['marker']);
});

test('starts while NATS is down, reports connecting, and subscribes once NATS comes up', async (t) => {
  const server = await NatsServer.start();
  t.teardown(() => server.dispose());
  await server.stop();
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  const retried = nextEvent(bus, (e): e is Extract<BusEvent, { type: 'status' }> => e.type === 'status' && e.status.type === 'connecting' && e.status.error !== undefined);
  const channel = 'early.bird';
  const c = new ItemCollector();
  bus.subscribe(channel, c.handler);
  await retried;
  t.is(bus.status().type, 'connecting');
  t.false(bus.isLive(channel));
  await t.throwsAsync(bus.publish([streamItem(channel, 'x')]), { code: 'KG_ERR_BUS_UNAVAILABLE' });

  const live = nextEvent(bus, liveEvent(channel));
  await server.restart();
  t.is((await live).cause, 'subscribed');
  t.is(bus.status().type, 'connected');
  const nc = await rawClient(server);
  t.teardown(() => nc.close());
  nc.publish(subjectOf(channel), Buffer.from('{"formats":{"http-stream":{"content":"first"}}}'));
  await c.waitForText('first');
  t.deepEqual(c.texts, ['first']);
});

test('survives a NATS crash: reports it, resubscribes every channel after restart, delivers again', async (t) => {
  const server = await NatsServer.start();
  t.teardown(() => server.dispose());
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  const channels = ['crash.a', 'crash b', 'crash*c'];
  const collectors = channels.map(() => new ItemCollector());
  channels.forEach((ch, i) => bus.subscribe(ch, collectors[i]!.handler));
  await Promise.all(channels.map((ch) => whenLive(bus, ch)));

  const down = nextEvent(bus, statusEvent('disconnected'));
  await server.stop('SIGKILL');
  await down;
  t.false(bus.isLive('crash.a'));
  await t.throwsAsync(bus.publish([streamItem('crash.a', 'x')]), { code: 'KG_ERR_BUS_UNAVAILABLE' });

  const relive = channels.map((ch) => nextEvent(bus, liveEvent(ch)));
  const up = nextEvent(bus, statusEvent('connected'));
  await server.restart();
  await up;
  const lives = await Promise.all(relive);
  t.deepEqual(lives.map((e) => e.cause), ['resubscribed', 'resubscribed', 'resubscribed']);
  // nats.js resent the subscriptions itself; the server has them again.
  const subjects = await server.subjects();
  for (const ch of channels) t.true(subjects.includes(subjectOf(ch)), ch);

  const nc = await rawClient(server);
  t.teardown(() => nc.close());
  channels.forEach((ch) => nc.publish(subjectOf(ch), Buffer.from(JSON.stringify({ formats: { 'http-stream': { content: `after ${ch}` } } }))));
  await nc.flush(); // two publishers are only ordered once the first one's messages are routed
  await bus.publish([streamItem('crash.a', 'via bus')]);
  await Promise.all(collectors.map((c, i) => c.waitForText(`after ${channels[i]}`)));
  await collectors[0]!.waitForText('via bus');
  t.deepEqual(collectors[0]!.texts, ['after crash.a', 'via bus']);
});

test('subscribes a channel added while NATS is down once it reconnects', async (t) => {
  const server = await NatsServer.start();
  t.teardown(() => server.dispose());
  const bus = newNatsBus(server.url);
  t.teardown(() => bus.close());
  await within('the first connection', connected(bus));
  const down = nextEvent(bus, statusEvent('disconnected'));
  await server.stop();
  await within('the disconnected status', down);
  const channel = 'added.during.outage';
  const c = new ItemCollector();
  bus.subscribe(channel, c.handler);
  t.false(bus.isLive(channel));
  const live = nextEvent(bus, liveEvent(channel));
  await server.restart();
  t.is((await within(`channel-live for ${channel}`, live)).cause, 'subscribed');
  t.true(bus.isLive(channel));
  t.is(bus.status().type, 'connected');
  await bus.publish([streamItem(channel, 'ok')]);
  await within(`the item published to ${channel} after the reconnect`, c.waitForText('ok'));
  t.deepEqual(c.texts, ['ok']);
});

test('connects to the first reachable server of a list', async (t) => {
  const dead = await NatsServer.start();
  t.teardown(() => dead.dispose());
  await dead.stop();
  const bus = newNatsBus(shared!.url, { servers: [dead.url, shared!.url] });
  t.teardown(() => bus.close());
  await connected(bus);
  t.is(bus.status().type, 'connected');
});

test('closes promptly while still waiting for a first connection', async (t) => {
  const server = await NatsServer.start();
  t.teardown(() => server.dispose());
  await server.stop();
  const bus = newNatsBus(server.url, { reconnectWaitMs: 60_000 });
  await nextEvent(bus, statusEvent('connecting'));
  await bus.close();
  t.is(bus.status().type, 'closed');
});
