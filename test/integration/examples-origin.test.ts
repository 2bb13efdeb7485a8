import http from 'node:http';
import test from 'ava';
// @ts-expect-error plain JavaScript example, no types
import { createExampleOrigin } from '../../examples/origin.js';
import { listenHttp, openStream, request, type StreamReader } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';

// The example origin (examples/) behind a real sidecar, below the browser: what the long-poll
// notes and the reliable feed promise (nothing lost between polls, across a gap, or on resume)
// and how the origin answers bad input. A publish relay in between can drop publishes, as a
// failed or lost publish would.

interface Setup {
  side: TestSidecar;
  originUrl: string;
  /** The next `n` publishes the origin makes are refused (503) instead of reaching the sidecar. */
  dropNext(n: number): void;
  close(): Promise<void>;
}

async function setup(): Promise<Setup> {
  let example: http.Server | undefined;
  const origin = await listenHttp((req, res) => { example?.emit('request', req, res); });
  // A short sequencing wait: an item after a lost one is released (and the gap seen) quickly.
  const side = await startTestSidecar({ origin: origin.url, sequencing: { waitMs: 100 } });
  let drops = 0;
  const relay = await listenHttp((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (drops > 0) {
        drops--;
        res.writeHead(503).end();
        return;
      }
      request(`${side.controlUri}publish/`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: Buffer.concat(chunks) })
        .then((r) => res.writeHead(r.status).end(r.body), () => res.writeHead(502).end());
    });
  });
  example = createExampleOrigin({ publishUrl: `${relay.url}/publish/` }) as http.Server;
  return {
    side, originUrl: origin.url, dropNext: (n) => { drops = n; },
    close: async () => { await side.close(); await relay.close(); await origin.close(); },
  };
}

async function post(url: string, body: string): Promise<{ id: string; published: boolean }> {
  const res = await request(url, { method: 'POST', body });
  if (res.status !== 201) throw new Error(`POST ${url} answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as { id: string; published: boolean };
}

/** The SSE events of a stream's text: [id, text] for each `data` event, ['reset', text] for a reset. */
function sseEvents(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const block of text.split('\n\n')) {
    const fields = new Map(block.split('\n').filter((l) => !l.startsWith(':') && l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
    const data = fields.get('data');
    if (data === undefined) continue;
    out.push([fields.get('event') === 'reset' ? 'reset' : fields.get('id') ?? '', (JSON.parse(data) as { text: string }).text]);
  }
  return out;
}

/** A reader of the feed, once the sidecar holds it (the `readers`-th on the channel). */
async function feedStream(s: Setup, t: import('ava').ExecutionContext, headers: Record<string, string> = {}, query = '', readers = 1): Promise<StreamReader> {
  const stream = await openStream(s.side.url(`/events/feed${query}`), headers);
  t.teardown(() => stream.close());
  t.is(stream.res.statusCode, 200);
  await stream.waitFor('retry: 1000\n\n');
  await waitForSubscribers(s.side.sidecar.hub, 'feed', readers);
  return stream;
}

test('feed: an event whose publish was lost reaches the reader when the next one shows the gap, once and in order', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const stream = await feedStream(s, t);
  const one = await post(`${s.originUrl}/events/feed`, 'one');
  t.true(one.published);
  await stream.waitFor('"text":"one"');
  s.dropNext(1);
  const two = await post(`${s.originUrl}/events/feed`, 'two');
  t.false(two.published, 'stored, not delivered');
  const three = await post(`${s.originUrl}/events/feed`, 'three');
  t.true(three.published);
  // three's prev-id is two, which the reader lacks: the sidecar fetches the next link with
  // Grip-Last, and the origin answers with two and three from its store.
  await stream.waitFor('"text":"three"');
  t.deepEqual(sseEvents(stream.text), [[one.id, 'one'], [two.id, 'two'], [three.id, 'three']]);
});

test('feed: a reader resumes after its Last-Event-ID (header or ?lastEventId=); an id the origin cannot continue from gets a reset and all it kept', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const ids = [];
  for (const text of ['a', 'b', 'c']) ids.push((await post(`${s.originUrl}/events/feed`, text)).id);
  let readers = 0;
  const byHeader = await feedStream(s, t, { 'Last-Event-ID': ids[0] as string }, '', ++readers);
  await byHeader.waitFor('"text":"c"');
  t.deepEqual(sseEvents(byHeader.text), [[ids[1], 'b'], [ids[2], 'c']]);
  const byQuery = await feedStream(s, t, {}, `?lastEventId=${ids[1]}`, ++readers);
  await byQuery.waitFor('"text":"c"');
  t.deepEqual(sseEvents(byQuery.text), [[ids[2], 'c']]);
  const header = await feedStream(s, t, { 'Last-Event-ID': ids[1] as string }, `?lastEventId=${ids[0]}`, ++readers);
  await header.waitFor('"text":"c"');
  t.deepEqual(sseEvents(header.text), [[ids[2], 'c']], 'the header (the newer position) wins over the query');
  for (const foreign of ['0abc-2', 'not an id', `${(ids[0] as string).split('-')[0]}-99`]) {
    const reset = await feedStream(s, t, { 'Last-Event-ID': foreign }, '', ++readers);
    await reset.waitFor('"text":"c"');
    const events = sseEvents(reset.text);
    t.is(events[0]?.[0], 'reset', foreign);
    t.deepEqual(events.slice(1), [[ids[0], 'a'], [ids[1], 'b'], [ids[2], 'c']], foreign);
  }
});

test('notes: a poll without a position is answered at once; one at the newest note is held until the next; one behind gets what it lacks', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const first = await request(s.side.url('/poll/notes'));
  t.is(first.status, 200);
  const { notes, last } = JSON.parse(first.body) as { notes: unknown[]; last: string };
  t.deepEqual(notes, []);
  const held = request(s.side.url(`/poll/notes?after=${last}`));
  await waitForSubscribers(s.side.sidecar.hub, 'notes', 1);
  const one = await post(`${s.originUrl}/poll/notes`, 'one');
  const answered = await held;
  t.is(answered.status, 200);
  t.regex(String(answered.headers['content-type']), /^application\/json/);
  t.like(JSON.parse(answered.body), { notes: [{ id: one.id, text: 'one' }], last: one.id });
  await post(`${s.originUrl}/poll/notes`, 'two');
  const behind = JSON.parse((await request(s.side.url(`/poll/notes?after=${last}`))).body) as { notes: Array<{ text: string }> };
  t.deepEqual(behind.notes.map((n) => n.text), ['one', 'two']);
  const reset = JSON.parse((await request(s.side.url('/poll/notes?after=elsewhere-1'))).body) as { reset?: boolean; notes: unknown[] };
  t.true(reset.reset);
  t.is(reset.notes.length, 2);
});

test('notes: a held poll whose next note was lost is answered with it when the note after shows the gap', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const one = await post(`${s.originUrl}/poll/notes`, 'one');
  const held = request(s.side.url(`/poll/notes?after=${one.id}`));
  await waitForSubscribers(s.side.sidecar.hub, 'notes', 1);
  s.dropNext(1);
  t.false((await post(`${s.originUrl}/poll/notes`, 'two')).published);
  t.true((await post(`${s.originUrl}/poll/notes`, 'three')).published);
  const answered = JSON.parse((await held).body) as { notes: Array<{ text: string }> };
  t.deepEqual(answered.notes.map((n) => n.text), ['two', 'three']);
});

test('the origin refuses bad input with a reason and keeps serving: empty or long lines, unknown paths and methods, a broken WebSocket-over-HTTP body, an upload cut off', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  for (const path of ['/say', '/poll/notes', '/events/feed']) {
    for (const body of ['', '   ', 'x'.repeat(2001)]) {
      const res = await request(`${s.originUrl}${path}`, { method: 'POST', body });
      t.is(res.status, 400, `${path} ${body.length}`);
      t.regex(res.body, /message must be 1-2000 bytes/);
    }
  }
  t.is((await request(`${s.originUrl}/nothing`)).status, 404);
  const wrongMethod = await request(`${s.originUrl}/events/feed`, { method: 'DELETE' });
  t.is(wrongMethod.status, 405);
  t.is(wrongMethod.headers['allow'], 'GET, POST');
  const ws = await request(`${s.originUrl}/ws`, { method: 'POST', headers: { 'Content-Type': 'application/websocket-events' }, body: 'TEXT ff\r\nshort\r\n' });
  t.is(ws.status, 400);
  t.regex(ws.body, /bad websocket-events body: bad TEXT content length/);
  const favicon = await request(s.side.url('/favicon.ico'));
  t.is(favicon.status, 200);
  t.is(favicon.headers['content-type'], 'image/svg+xml');

  // An upload that stops half-way: the origin answers nothing to it and goes on serving.
  await new Promise<void>((resolve) => {
    const req = http.request(`${s.originUrl}/events/feed`, { method: 'POST', headers: { 'Content-Length': '100' } });
    req.on('error', () => resolve());
    req.write('only part', () => { req.destroy(); resolve(); });
  });
  t.is((await post(`${s.originUrl}/events/feed`, 'still here')).published, true);
});
