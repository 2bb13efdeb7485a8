import test, { type ExecutionContext } from 'ava';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';
import { connect, echoHandler, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// Subscription meta and Pushpin's filters (spec 6) on each transport: long-polls, streams and
// WebSockets, with real publishes through the publish API. The engine's every rule is unit
// tested (test/unit/filters); here each filter is shown to act where the hold delivers.

/**
 * A hold as the query asks: `mode` response|stream, channel `ch` with filters `f` (comma list) and
 * prev-id `prev`, a second channel `ch2`, Grip-Set-Meta from every `m.<key>` parameter, a next
 * link `link` and the initial stream body `body`.
 */
function holdRoute(mode: 'response' | 'stream') {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    let channel = q.get('ch') ?? 'c';
    if (q.get('prev')) channel += `; prev-id=${q.get('prev')}`;
    for (const f of (q.get('f') ?? '').split(',').filter((s) => s !== '')) channel += `; filter=${f}`;
    const extra = q.get('ch2');
    res.setHeader('Grip-Hold', mode);
    res.setHeader('Grip-Channel', extra ? `${channel}, ${extra}` : channel);
    const meta = [...q].filter(([k]) => k.startsWith('m.')).map(([k, v]) => `${k.slice(2)}="${v}"`);
    if (meta.length > 0) res.setHeader('Grip-Set-Meta', meta.join(', '));
    if (q.get('link')) res.setHeader('Grip-Link', `<${q.get('link')}>; rel=next`);
    res.setHeader('Content-Type', 'text/plain');
    res.end(mode === 'stream' ? (q.get('body') ?? 'open\n') : 'timeout\n');
  };
}

async function setup(t: ExecutionContext, limits: Record<string, number> = {}) {
  const origin = await startGripOrigin({
    '/poll': holdRoute('response'),
    '/stream': holdRoute('stream'),
    '/json': (req, res) => {
      res.setHeader('Content-Type', 'application/grip-instruct');
      res.end(JSON.stringify({
        hold: { mode: 'response', channels: [{ name: 'j', filters: ['skip-users'] }], meta: { user: 'alice' } },
        response: { body: 'timeout\n' },
      }));
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, limits });
  t.teardown(async () => { await side.close(); await origin.close(); });
  return { side, publish: (...items: unknown[]) => publish(side, items) };
}

async function publish(side: TestSidecar, items: unknown[]): Promise<void> {
  const res = await request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items }) });
  if (res.status !== 200) throw new Error(`publish failed: ${res.status} ${res.body}`);
}

const responseItem = (channel: string, body: string, more: Record<string, unknown> = {}, format: Record<string, unknown> = {}) =>
  ({ channel, ...more, formats: { 'http-response': { body, ...format } } });
const streamItem = (channel: string, content: string, more: Record<string, unknown> = {}, format: Record<string, unknown> = {}) =>
  ({ channel, ...more, formats: { 'http-stream': { content, ...format } } });
const wsItem = (channel: string, content: string, more: Record<string, unknown> = {}, format: Record<string, unknown> = {}) =>
  ({ channel, ...more, formats: { 'ws-message': { content, ...format } } });

async function filterErrors(side: TestSidecar): Promise<number> {
  return (await side.sidecar.metrics.deliveriesDropped.get()).values.find((v) => v.labels['reason'] === 'filter_error')?.value ?? 0;
}

// --- long-polls --------------------------------------------------------------------------------

test('long-poll: skip-self keeps the sender\'s own item from it; the hold goes on until one is for it', async (t) => {
  const { side, publish } = await setup(t);
  const alice = request(side.url('/poll?ch=room&f=skip-self&m.user=alice'));
  const bob = request(side.url('/poll?ch=room&f=skip-self&m.user=bob'));
  await waitForSubscribers(side.sidecar.hub, 'room', 2);
  await publish(responseItem('room', 'from alice\n', { meta: { sender: 'alice' } }));
  t.is((await bob).body, 'from alice\n');
  await waitForSubscribers(side.sidecar.hub, 'room', 1);
  await publish(responseItem('room', 'from bob\n', { meta: { sender: 'bob' } }));
  t.is((await alice).body, 'from bob\n');
});

test('long-poll: require-sub lets an item through only to holds also subscribed to the channel it names', async (t) => {
  const { side, publish } = await setup(t);
  const withExtra = request(side.url('/poll?ch=q&f=require-sub&ch2=extra'));
  const without = request(side.url('/poll?ch=q&f=require-sub'));
  await waitForSubscribers(side.sidecar.hub, 'q', 2);
  await publish(responseItem('q', 'needs extra\n', { meta: { require_sub: 'extra' } }));
  t.is((await withExtra).body, 'needs extra\n');
  await waitForSubscribers(side.sidecar.hub, 'q', 1);
  await publish(responseItem('q', 'for all\n'));
  t.is((await without).body, 'for all\n');
});

test('long-poll: meta from a JSON instruct (hold.meta) feeds skip-users', async (t) => {
  const { side, publish } = await setup(t);
  const held = request(side.url('/json'));
  await waitForSubscribers(side.sidecar.hub, 'j', 1);
  await publish(responseItem('j', 'skipped\n', { meta: { skip_users: 'carol, alice' } }));
  await publish(responseItem('j', 'delivered\n', { meta: { skip_users: 'carol' } }));
  t.is((await held).body, 'delivered\n');
});

test('long-poll: build-id renders the id into the published body; content filters must agree', async (t) => {
  const { side, publish } = await setup(t);
  const withId = request(side.url('/poll?ch=r&prev=1&f=build-id&m.id_format=r:%25(r)s'));
  const plain = request(side.url('/poll?ch=r&prev=1'));
  await waitForSubscribers(side.sidecar.hub, 'r', 2);
  // One item, prepared for build-id subscribers: the plain long-poll does not get it.
  await publish(responseItem('r', 'id=%I, 100%%\n', { id: '2', 'prev-id': '1' }, { 'content-filters': ['build-id'] }));
  t.is((await withId).body, 'id=r:2, 100%\n');
  await waitForSubscribers(side.sidecar.hub, 'r', 1);
  await publish(responseItem('r', 'raw %I\n', { id: '3', 'prev-id': '2' }, { 'content-filters': [] }));
  t.is((await plain).body, 'raw %I\n');
});

test('long-poll: a filter error drops the item for that connection, counted; the hold goes on', async (t) => {
  const { side, publish } = await setup(t);
  const held = request(side.url('/poll?ch=v&f=var-subst&m.user=alice'));
  await waitForSubscribers(side.sidecar.hub, 'v', 1);
  await publish(responseItem('v', 'hello %(nobody)s\n'));
  await publish(responseItem('v', 'hello %(user)s\n'));
  t.is((await held).body, 'hello alice\n');
  t.is(await filterErrors(side), 1);
});

// --- streams -----------------------------------------------------------------------------------

test('stream: skip-users, require-sub and var-subst act per stream', async (t) => {
  const { side, publish } = await setup(t);
  const alice = await openStream(side.url('/stream?ch=s&f=skip-users,require-sub,var-subst&m.user=alice&ch2=extra'));
  const bob = await openStream(side.url('/stream?ch=s&f=skip-users,require-sub,var-subst&m.user=bob'));
  t.teardown(() => { alice.close(); bob.close(); });
  await waitForSubscribers(side.sidecar.hub, 's', 2);
  await publish(
    streamItem('s', 'not for alice, %(user)s\n', { meta: { skip_users: 'alice' } }),
    streamItem('s', 'only with extra, %(user)s\n', { meta: { require_sub: 'extra' } }),
    streamItem('s', 'all, %(user)s\n'),
  );
  await alice.waitFor('all, alice\n');
  await bob.waitFor('all, bob\n');
  t.is(alice.text, 'open\nonly with extra, alice\nall, alice\n');
  t.is(bob.text, 'open\nnot for alice, bob\nall, bob\n');
});

test('stream: skip-self; a next-link page\'s Grip-Set-Meta with an empty value deletes the key', async (t) => {
  const { side, publish } = await setup(t);
  const page = `/stream?ch=p&f=skip-self&m.user=&body=${encodeURIComponent('page\n')}`;
  const stream = await openStream(side.url(`/stream?ch=p&f=skip-self&m.user=alice&link=${encodeURIComponent(page)}`));
  t.teardown(() => stream.close());
  await waitForSubscribers(side.sidecar.hub, 'p', 1);
  await publish(streamItem('p', 'own, skipped\n', { meta: { sender: 'alice' } }), streamItem('p', 'from bob\n', { meta: { sender: 'bob' } }));
  await stream.waitFor('from bob\n');
  // A hint makes the stream fetch its next link; that answer deletes `user`.
  await publish({ channel: 'p', formats: { 'http-stream': { action: 'hint' } } });
  await stream.waitFor('page\n');
  await publish(streamItem('p', 'own, now delivered\n', { meta: { sender: 'alice' } }));
  await stream.waitFor('own, now delivered\n');
  t.is(stream.text, 'open\nfrom bob\npage\nown, now delivered\n');
});

test('stream: build-id with id_encoding=hex; the initial body is rendered too', async (t) => {
  const { side, publish } = await setup(t);
  const stream = await openStream(side.url(`/stream?ch=h&prev=a&f=build-id&m.id_format=%25(h)s&m.id_encoding=hex&body=${encodeURIComponent('50%% open %(ab)I\n')}`));
  t.teardown(() => stream.close());
  await stream.waitFor('50% open 6162\n');
  await waitForSubscribers(side.sidecar.hub, 'h', 1);
  await publish(streamItem('h', 'id: %I\n', { id: 'b', 'prev-id': 'a' }));
  await stream.waitFor('id: 62\n');
  t.is(stream.text, '50% open 6162\nid: 62\n');
});

test('stream: subscription meta over the limits is the origin\'s error: 502', async (t) => {
  const { side } = await setup(t, { maxMetaKeys: 1 });
  const res = await request(side.url('/stream?ch=x&m.user=alice&m.other=1'));
  t.is(res.status, 502);
  t.is(res.body, 'Error while proxying to origin.\n');
});

// --- WebSockets --------------------------------------------------------------------------------

async function wsSetup(t: ExecutionContext, limits: Record<string, number> = {}) {
  const control = (ws: import('@fanoutio/grip').WebSocketContext, msg: Record<string, unknown>) => ws.sendControl(JSON.stringify(msg));
  const origin = await startWsOrigin(echoHandler({
    commands: {
      '!alice': (ws) => { control(ws, { type: 'set-meta', name: 'user', value: 'alice' }); ws.send('ok'); },
      '!anon': (ws) => { control(ws, { type: 'set-meta', name: 'user' }); ws.send('ok'); },
      '!idfmt': (ws) => { control(ws, { type: 'set-meta', name: 'id_format', value: '%(ids)s' }); ws.send('ok'); },
      '!big': (ws) => { control(ws, { type: 'set-meta', name: 'big', value: 'x'.repeat(100) }); ws.send('ok'); },
      '!sub': (ws) => {
        control(ws, { type: 'subscribe', channel: 'w', filters: ['skip-self', 'skip-users', 'require-sub', 'var-subst'] });
        control(ws, { type: 'subscribe', channel: 'ids', filters: ['build-id'] });
        control(ws, { type: 'set-meta', name: 'id_format', value: 'fixed' });
        ws.send('ok');
      },
    },
  }));
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, limits });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const client = await connect(side.url('/ws'));
  t.teardown(() => client.close());
  const log = logOf(client);
  // Every message the client is to get, acks ('ok') included, counted so each wait is for the next ones.
  let expected = 0;
  const received = async (n: number) => { expected += n; return (await log.waitForCount(expected)).filter((m) => m !== 'ok'); };
  const command = async (c: string) => { client.send(c); await received(1); };
  return { side, command, received, publish: (...items: unknown[]) => publish(side, items) };
}

test('WebSocket: set-meta sets and deletes meta; skip-self, skip-users, require-sub and var-subst apply', async (t) => {
  const { side, command, received, publish } = await wsSetup(t);
  await command('!alice');
  await command('!sub');
  await waitForSubscribers(side.sidecar.hub, 'w', 1);
  await publish(
    wsItem('w', 'own, skipped', { meta: { sender: 'alice' } }),
    wsItem('w', 'skipped by list', { meta: { skip_users: 'bob,alice' } }),
    wsItem('w', 'needs elsewhere', { meta: { require_sub: 'elsewhere' } }),
    wsItem('w', 'needs ids: %(user)s', { meta: { require_sub: 'ids' } }),
  );
  t.deepEqual(await received(1), ['needs ids: alice']);
  // Deleting `user` (set-meta without value): skip-self no longer matches, var-subst fails.
  await command('!anon');
  await publish(wsItem('w', 'fails: %(user)s'), wsItem('w', 'own again', { meta: { sender: 'alice' } }));
  t.deepEqual(await received(1), ['needs ids: alice', 'own again']);
  t.is(await filterErrors(side), 1);
});

test('WebSocket: build-id renders %I from an id_format that names no channel (there are no prev-ids), and %(id)I; content filters must agree', async (t) => {
  const { side, command, received, publish } = await wsSetup(t);
  await command('!sub');
  await waitForSubscribers(side.sidecar.hub, 'ids', 1);
  await publish(
    wsItem('ids', 'not prepared for build-id'),
    wsItem('ids', 'bare %I'),
    wsItem('ids', 'for plain subscribers', {}, { 'content-filters': [] }),
    wsItem('ids', 'id %(7)I, 5%%', {}, { 'content-filters': ['build-id'] }),
  );
  t.deepEqual(await received(3), ['not prepared for build-id', 'bare fixed', 'id 7, 5%']);
});

test('WebSocket: an id_format that names a channel cannot be rendered: build-id drops the item', async (t) => {
  const { side, command, received, publish } = await wsSetup(t);
  await command('!sub');
  await command('!idfmt');
  await waitForSubscribers(side.sidecar.hub, 'ids', 1);
  await publish(wsItem('ids', 'id %I'), wsItem('w', 'after, on w'));
  t.deepEqual(await received(1), ['after, on w']);
  t.is(await filterErrors(side), 1);
});

test('WebSocket: a set-meta over the limits is refused and the connection kept', async (t) => {
  const { side, command, received, publish } = await wsSetup(t, { maxMetaBytes: 50 });
  await command('!big');
  await command('!alice');
  await command('!sub');
  await waitForSubscribers(side.sidecar.hub, 'w', 1);
  await publish(wsItem('w', 'hello %(user)s'), wsItem('w', 'big: %(big)s'));
  t.deepEqual(await received(1), ['hello alice']);
});
