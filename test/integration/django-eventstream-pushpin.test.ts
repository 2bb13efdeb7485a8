// The Django EventStream scenario on Pushpin 1.36 (the reference, bench/install-pushpin.sh) and
// on kong-grip, byte for byte: each proxy in front of its own copy of the origin (its own event
// store), the same clients and the same publishes, and the same bytes must come out. Covers
// Grip-Set-Meta, build-id (composite ids, `%%` in data), skip-users, require-sub and the kick.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPushpin } from '../../bench/pushpin.js';
import type { Target } from '../../bench/target.js';
import { startDjangoEventStreamOrigin, type DjangoEventStreamOrigin } from '../helpers/django-eventstream-origin.js';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request, type StreamReader } from '../helpers/http.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';

interface Proxy { name: string; origin: DjangoEventStreamOrigin; url(path: string): string }

let pushpin: Target;
let kongGrip: TestSidecar;
let workDir: string;
const proxies: Proxy[] = [];

test.before(async () => {
  const forPushpin = await startDjangoEventStreamOrigin();
  const forKongGrip = await startDjangoEventStreamOrigin();
  workDir = mkdtempSync(join(tmpdir(), 'kg-des-'));
  pushpin = await startPushpin({ originPort: forPushpin.port, sigKey: TEST_SIG_KEY, workDir });
  forPushpin.publishTo(`http://127.0.0.1:${pushpin.publishPort}/publish/`);
  kongGrip = await startTestSidecar({ origin: forKongGrip.url, sigKey: TEST_SIG_KEY });
  forKongGrip.publishTo(`${kongGrip.controlUri}publish/`);
  proxies.push(
    { name: 'pushpin', origin: forPushpin, url: (p) => `http://127.0.0.1:${pushpin.clientPort}${p}` },
    { name: 'kong-grip', origin: forKongGrip, url: (p) => kongGrip.url(p) },
  );
  await waitUntilPushpinHandlesGrip(proxies[0]!);
});

test.after.always(async () => {
  await kongGrip?.close();
  await pushpin?.stop();
  for (const p of proxies) await p.origin.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** Pushpin's handler connects a moment after its proxy: ask until a GRIP answer (a stream-error from the view) comes through. */
async function waitUntilPushpinHandlesGrip(p: Proxy): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await request(p.url('/events/'));
    if (res.body.startsWith('event: stream-error')) return;
    if (Date.now() > deadline) throw new Error(`Pushpin never relayed a GRIP answer (last: ${res.status} ${res.body.trim()})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PROBE = ': probe\n\n';

/**
 * Waits until the stream's subscriptions are live on the proxy: a comment published on the
 * user's own channel (no require_sub, so it passes require-sub) is repeated until it arrives.
 * Probes are taken out of the text before comparing.
 */
async function untilSubscribed(p: Proxy, stream: StreamReader, user: string): Promise<void> {
  const before = stream.text.split(PROBE).length;
  while (stream.text.split(PROBE).length === before) {
    await p.origin.publish({ channel: `user-${user}`, formats: { 'http-stream': { content: PROBE } } });
    await Promise.race([stream.waitFor(PROBE), new Promise((r) => setTimeout(r, 100))]);
  }
}

const view = (s: StreamReader) => ({
  status: s.res.statusCode,
  type: s.res.headers['content-type'],
  cacheControl: s.res.headers['cache-control'],
  accelBuffering: s.res.headers['x-accel-buffering'],
  chunked: s.res.headers['transfer-encoding'],
  gripHeaders: Object.keys(s.res.headers).filter((h) => h.startsWith('grip-')),
  text: s.text.split(PROBE).join(''),
  ended: s.ended,
});

test('Django EventStream: the same bytes from Pushpin 1.36 and kong-grip', async (t) => {
  const results = await Promise.all(proxies.map(async (p) => {
    // One stream after the other, each once the proxy's first-subscription refresh (a next-link
    // fetch 1 s after a channel's first subscriber, spec 3.5) is through, so no refresh races
    // with the publishes. `onlyA` brings no new channel, so it is not refreshed.
    const streams: StreamReader[] = [];
    const open = async (query: string, user: string, refreshes: number) => {
      const s = await openStream(p.url(`/events/?${query}`), { 'X-Test-User': user });
      streams.push(s);
      await untilSubscribed(p, s, user);
      let seen = 0;
      if (refreshes > 0) await p.origin.waitForRequest((r) => r.isRecover && r.user === user && ++seen >= refreshes);
      return s;
    };
    try {
      const both = await open('channel=a&channel=b', 'alice', 1);
      const onlyA = await open('channel=a', 'alice', 0);
      const bob = await open('channel=a&channel=b', 'bob', 1);
      await p.origin.sendEvent('a', 'message', { pct: '50%' });
      await p.origin.sendEvent('b', 'message', { n: 1 });
      await p.origin.sendEvent('a', 'update', { text: 'not for alice' }, { skipUserIds: ['alice'] });
      await p.origin.sendEvent('b', 'message', { n: 2 });
      await Promise.all([both, bob].map((s) => s.waitFor('"n": 2}\n\n')));
      // alice may no longer read b: her stream that carries b is kicked, the one on a stays.
      await p.origin.revoke('alice', 'b');
      await both.waitForEnd();
      await p.origin.sendEvent('a', 'message', { n: 3 });
      await Promise.all([onlyA, bob].map((s) => s.waitFor('"n": 3}\n\n')));
      return { both: view(both), onlyA: view(onlyA), bob: view(bob) };
    } finally {
      for (const s of streams) s.close();
    }
  }));
  const [fromPushpin, fromKongGrip] = results;
  t.deepEqual(fromKongGrip, fromPushpin);
  // What both gave, spelled out once.
  const events = (text: string) => text.slice(text.indexOf('event: stream-open'));
  t.is(events(fromPushpin!.both.text), [
    'event: stream-open\ndata:\n\n',
    'event: message\nid: a:1,b:0\ndata: {"pct": "50%"}\n\n',
    'event: message\nid: a:1,b:1\ndata: {"n": 1}\n\n',
    'event: message\nid: a:2,b:2\ndata: {"n": 2}\n\n',
    "event: stream-error\nid: error\ndata: {'condition': 'forbidden', 'text': 'Permission denied to channels: b', 'channels': ['b']}\n\n",
  ].join(''));
  t.true(events(fromPushpin!.bob.text).includes('event: update\nid: a:2,b:1\ndata: {"text": "not for alice"}\n\n'));
  t.true(events(fromPushpin!.onlyA.text).endsWith('event: message\nid: a:3\ndata: {"n": 3}\n\n'));
  t.false(fromPushpin!.onlyA.ended);
});
