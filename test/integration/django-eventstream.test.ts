import test from 'ava';
import { EventSource } from 'eventsource';
import { withDeadline } from '../../bench/proc.js';
import { startDjangoEventStreamOrigin, type DjangoEventStreamOrigin } from '../helpers/django-eventstream-origin.js';
import { openStream, type StreamReader } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';

// Django EventStream ("reliable SSE for Django") behind kong-grip, unchanged: an origin that
// answers as its view does (test/helpers/django-eventstream-origin.ts) and EventSource clients.
// Every event carries the composite id the proxy renders from the client's own meta and ids
// (build-id), a resume by Last-Event-ID loses and repeats nothing across two channels,
// skip_users skips, and a permission kick ends only the streams that carry the channel.
// The same scenario byte for byte against Pushpin 1.36 is in django-eventstream-pushpin.test.ts.

interface Received { type: string; id: string; data: string }

/** An EventSource signed in as `user`, recording every event it gets (and the Last-Event-ID it would resume with). */
class Client {
  readonly events: Received[] = [];
  readonly es: EventSource;
  private waiters: Array<() => void> = [];
  errors = 0;

  constructor(url: string, user: string, extraHeaders: Record<string, string> = {}) {
    this.es = new EventSource(url, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, 'X-Test-User': user, ...extraHeaders } }),
    });
    for (const type of ['message', 'stream-open', 'stream-error', 'stream-reset']) {
      this.es.addEventListener(type, (e) => {
        this.events.push({ type, id: e.lastEventId, data: e.data });
        this.wake();
      });
    }
    this.es.addEventListener('error', () => { this.errors++; this.wake(); });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The events of `type` so far, once there are at least `count`. */
  async waitFor(type: string, count: number, ms = 10_000): Promise<Received[]> {
    const of = () => this.events.filter((e) => e.type === type);
    await withDeadline((async () => {
      while (of().length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
    })(), ms, () => `${count} ${type} event(s); got ${JSON.stringify(this.events)}`);
    return of();
  }

  async waitForErrors(count: number, ms = 10_000): Promise<void> {
    await withDeadline((async () => {
      while (this.errors < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
    })(), ms, () => `${count} error(s)`);
  }

  close(): void {
    this.es.close();
  }
}

async function setup(t: { teardown(fn: () => unknown): void }): Promise<{ origin: DjangoEventStreamOrigin; side: TestSidecar }> {
  const origin = await startDjangoEventStreamOrigin();
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  origin.publishTo(`${side.controlUri}publish/`);
  t.teardown(async () => { await side.close(); await origin.close(); });
  return { origin, side };
}

function open(t: { teardown(fn: () => unknown): void }, side: TestSidecar, query: string, user: string, headers: Record<string, string> = {}): Client {
  const client = new Client(side.url(`/events/?${query}`), user, headers);
  t.teardown(() => client.close());
  return client;
}

/**
 * Resolves once the proxy has refreshed `user`'s streams `n` times in all. A channel's first
 * subscriber makes the proxy fetch the next link after 1 s, as Pushpin does (spec 3.5); events
 * published before that answer would race with it, so the tests publish after it.
 */
async function refreshed(origin: DjangoEventStreamOrigin, user: string): Promise<void> {
  await origin.waitForRequest((r) => r.isRecover && r.user === user);
}

const messages = (events: Received[]) => events.filter((e) => e.type === 'message').map((e) => ({ id: e.id, data: e.data }));

test('every event carries the composite id rendered for the client, and `%` in data arrives once', async (t) => {
  const { origin, side } = await setup(t);
  const alice = open(t, side, 'channel=a&channel=b', 'alice');
  await alice.waitFor('stream-open', 1);
  await refreshed(origin, 'alice');
  await origin.sendEvent('a', 'message', { pct: '50%' });
  await origin.sendEvent('b', 'message', { n: 1 });
  await alice.waitFor('message', 2);
  t.deepEqual(messages(alice.events), [
    { id: 'a:1,b:0', data: '{"pct": "50%"}' },
    { id: 'a:1,b:1', data: '{"n": 1}' },
  ]);
});

test('a client that reconnects resumes by Last-Event-ID: nothing lost or repeated across two channels', async (t) => {
  const { origin, side } = await setup(t);
  const alice = open(t, side, 'channel=a&channel=b', 'alice');
  await alice.waitFor('stream-open', 1);
  await refreshed(origin, 'alice');
  await origin.sendEvent('a', 'message', { n: 'a1' });
  await origin.sendEvent('b', 'message', { n: 'b1' });
  await alice.waitFor('message', 2);
  // The connection drops (here: a close item on one of its channels); EventSource reconnects on
  // its own after 3 s. Meanwhile two more events are stored and published to nobody.
  await origin.publish({ channel: 'events-a', formats: { 'http-stream': { action: 'close' } } });
  await alice.waitForErrors(1);
  await origin.sendEvent('a', 'message', { n: 'a2' });
  await origin.sendEvent('b', 'message', { n: 'b2' });
  await alice.waitFor('stream-open', 2);
  const resumed = origin.requests.filter((r) => !r.isRecover).at(-1)!;
  t.is(resumed.headers['last-event-id'], 'a:1,b:1');
  // Its channels are still live on the bus (they linger), so no second refresh comes.
  await waitForSubscribers(side.sidecar.hub, 'events-a', 1);
  await origin.sendEvent('a', 'message', { n: 'a3' });
  await alice.waitFor('message', 5);
  t.deepEqual(messages(alice.events), [
    { id: 'a:1,b:0', data: '{"n": "a1"}' },
    { id: 'a:1,b:1', data: '{"n": "b1"}' },
    { id: 'a:2,b:1', data: '{"n": "a2"}' }, // from the resumed answer's body
    { id: 'a:2,b:2', data: '{"n": "b2"}' },
    { id: 'a:3,b:2', data: '{"n": "a3"}' }, // live again, its id built from the resumed position
  ]);
});

test('the initial body of a resumed stream is rendered: `%%` there becomes `%`', async (t) => {
  const { origin, side } = await setup(t);
  await origin.sendEvent('a', 'message', { pct: '1%' });
  await origin.sendEvent('a', 'message', { pct: '2%' });
  const stream = await openStream(side.url('/events/?channel=a'), { 'X-Test-User': 'alice', 'Last-Event-ID': 'a:1' });
  t.teardown(() => stream.close());
  const text = await stream.waitFor('event: stream-open\ndata:\n\nevent: message\nid: a:2\ndata: {"pct": "2%"}\n\n');
  t.false(text.includes('%%'));
});

test('skip_users: the skipped user does not get the event, the others do; ids stay consistent', async (t) => {
  const { origin, side } = await setup(t);
  const alice = open(t, side, 'channel=test', 'alice');
  const bob = open(t, side, 'channel=test', 'bob');
  await Promise.all([alice.waitFor('stream-open', 1), bob.waitFor('stream-open', 1)]);
  await Promise.all([refreshed(origin, 'alice'), refreshed(origin, 'bob')]);
  await origin.sendEvent('test', 'message', { text: 'not for alice' }, { skipUserIds: ['alice'] });
  await origin.sendEvent('test', 'message', { text: 'for all' });
  await bob.waitFor('message', 2);
  await alice.waitFor('message', 1);
  t.deepEqual(messages(bob.events), [{ id: 'test:1', data: '{"text": "not for alice"}' }, { id: 'test:2', data: '{"text": "for all"}' }]);
  t.deepEqual(messages(alice.events), [{ id: 'test:2', data: '{"text": "for all"}' }]);
});

test('require-sub: a permission kick ends only the kicked user\'s streams that carry the channel', async (t) => {
  const { origin, side } = await setup(t);
  const streams: StreamReader[] = [];
  const openRaw = async (query: string, user: string) => {
    const s = await openStream(side.url(`/events/?${query}`), { 'X-Test-User': user });
    streams.push(s);
    await s.waitFor('event: stream-open\n');
    return s;
  };
  t.teardown(() => { for (const s of streams) s.close(); });
  const aliceTest = await openRaw('channel=test', 'alice');
  const alicePriv = await openRaw('channel=test&channel=priv', 'alice');
  const bobPriv = await openRaw('channel=priv', 'bob');
  await waitForSubscribers(side.sidecar.hub, 'user-alice', 2);
  await waitForSubscribers(side.sidecar.hub, 'events-priv', 2);
  await Promise.all([refreshed(origin, 'alice'), refreshed(origin, 'bob')]);
  await origin.revoke('alice', 'priv');
  const kicked = await alicePriv.waitForEnd();
  t.true(kicked.endsWith(
    "event: stream-error\nid: error\ndata: {'condition': 'forbidden', 'text': 'Permission denied to channels: priv', 'channels': ['priv']}\n\n",
  ), kicked.slice(-200));
  t.true(alicePriv.res.complete, 'the kicked stream ended cleanly');
  // The stream on `test` only never carried `priv`: it stays open and keeps receiving.
  await origin.sendEvent('test', 'message', { n: 1 });
  await origin.sendEvent('priv', 'message', { n: 2 });
  await aliceTest.waitFor('event: message\nid: test:1\ndata: {"n": 1}\n\n');
  await bobPriv.waitFor('event: message\nid: priv:1\ndata: {"n": 2}\n\n');
  t.false(aliceTest.ended);
  t.false(aliceTest.text.includes('stream-error'));
  t.false(bobPriv.text.includes('stream-error'));
  // A reconnect after the kick is refused by the origin, as Django EventStream does.
  const again = await openStream(side.url('/events/?channel=priv'), { 'X-Test-User': 'alice' });
  t.true((await again.waitForEnd()).includes('"condition": "forbidden"'));
});

test('a resume with an unparsable Last-Event-ID is answered with the origin\'s stream-error', async (t) => {
  // What a client behind a proxy that leaves `%I` unrendered would send.
  const { side } = await setup(t);
  const stream = await openStream(side.url('/events/?channel=test'), { 'X-Test-User': 'alice', 'Last-Event-ID': '%I' });
  t.is(await stream.waitForEnd(),
    'event: stream-error\nid: error\ndata: {"condition": "bad-request", "text": "Invalid request: Failed to parse Last-Event-ID or lastEventId."}\n\n');
});

test('a next-link recovery (recover=true, Grip-Last) fills a gap with the right ids', async (t) => {
  const { origin, side } = await setup(t);
  const alice = open(t, side, 'channel=a&channel=b', 'alice');
  await alice.waitFor('stream-open', 1);
  await refreshed(origin, 'alice');
  await origin.sendEvent('a', 'message', { n: 'a1' });
  await alice.waitFor('message', 1);
  // a2 is stored but its publish is lost; a3 then does not follow what the client has.
  t.is(await origin.sendEvent('a', 'message', { n: 'a2' }, { isPublishLost: true }), 2);
  await origin.sendEvent('a', 'message', { n: 'a3' });
  await alice.waitFor('message', 3);
  t.deepEqual(messages(alice.events), [
    { id: 'a:1,b:0', data: '{"n": "a1"}' },
    { id: 'a:2,b:0', data: '{"n": "a2"}' },
    { id: 'a:3,b:0', data: '{"n": "a3"}' },
  ]);
  // After the first-subscription refresh, the recovery from the gap.
  const recovery = origin.requests.filter((r) => r.isRecover)[1];
  t.truthy(recovery, 'the proxy fetched the next link');
  t.is(recovery?.headers['grip-last'], 'events-a; last-id=1, events-b; last-id=0');
});
