// What a client sees through Pushpin 1.36 (the reference, bench/install-pushpin.sh) and through
// kong-grip, in front of the same serve-grip origin, compared case by case: status, reason,
// body and the headers that matter. Where kong-grip deliberately says more (error detail lines),
// only the part Pushpin defines is compared.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPushpin } from '../../bench/pushpin.js';
import type { Target } from '../../bench/target.js';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request, type SimpleResponse } from '../helpers/http.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { connect, logOf } from '../helpers/ws-origin.js';
import { withDeadline } from '../../bench/proc.js';

type Origin = Awaited<ReturnType<typeof startGripOrigin>>;
let origin: Origin;
let pushpin: Target;
let kongGrip: TestSidecar;
let workDir: string;

test.before(async () => {
  origin = await startGripOrigin({
    '/': (req, res) => { res.end('bench origin\n'); }, // Pushpin start-up probe
    '/status': (req, res) => { res.setHeader('Grip-Status', '404 Nope'); res.setHeader('Grip-Foo', 'bar'); res.end('missing\n'); },
    '/odd-status': (req, res) => { res.setHeader('Grip-Status', '299'); res.end('odd\n'); },
    '/json': (req, res) => {
      res.setHeader('Content-Type', 'application/grip-instruct');
      res.setHeader('X-Origin-Only', '1');
      res.end(JSON.stringify({ response: { code: 201, headers: { 'X-I': '1' }, body: 'from json\n' } }));
    },
    '/poll': (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('X-Custom', 'foo');
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', `poll-${String(new URL(req.url ?? '/', 'http://x').searchParams.get('n'))}`);
      res.end('timeout body\n');
    },
    '/stream': (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('Grip-Hold', 'stream');
      res.setHeader('Grip-Channel', `stream-${String(new URL(req.url ?? '/', 'http://x').searchParams.get('n'))}`);
      res.end('stream open\n');
    },
    '/timeout': (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('X-Custom', 'kept');
      res.setHeader('Grip-Hold', 'response');
      res.setHeader('Grip-Channel', 'never-published');
      res.setHeader('Grip-Timeout', '1');
      res.end('timeout body');
    },
    '/page1': (req, res) => { res.setHeader('Grip-Link', '</page2>; rel=next'); res.end('one\n'); },
    '/page2': (req, res) => { res.end('two\n'); },
    '/bad-hold': (req, res) => { res.setHeader('Grip-Hold', 'forever'); res.end(); },
    // WebSocket-over-HTTP answered by hand: OPEN with GRIP on; "go" gets a message, a detach and
    // a message after it, in one reply.
    '/ws-detach': (req, res, seen) => {
      res.setHeader('Content-Type', 'application/websocket-events');
      if (seen.body.startsWith('OPEN')) {
        res.setHeader('Sec-WebSocket-Extensions', 'grip');
        res.end('OPEN\r\n');
        return;
      }
      const events = ['m:before', 'c:{"type":"detach"}', 'm:after'].map((m) => `TEXT ${m.length.toString(16)}\r\n${m}\r\n`);
      res.end(seen.body.includes('\r\ngo\r\n') ? events.join('') : '');
    },
    '/echo-headers': (req, res) => { res.end(JSON.stringify({ gripFoo: req.headers['grip-foo'] ?? null, ae: req.headers['accept-encoding'] ?? null })); },
  }, { rawPaths: ['/ws-detach'] });
  workDir = mkdtempSync(join(tmpdir(), 'kg-compat-'));
  pushpin = await startPushpin({ originPort: origin.port, sigKey: TEST_SIG_KEY, workDir });
  await waitUntilPushpinHandlesGrip();
  kongGrip = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
});

/**
 * startPushpin proves plain proxying; a GRIP answer also needs Pushpin's handler process, which
 * connects a moment later (until then Pushpin answers 500 "Accept service unavailable.").
 * Pushpin has no signal for it, so ask until a GRIP answer comes through.
 */
async function waitUntilPushpinHandlesGrip(): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await request(`http://127.0.0.1:${pushpin.clientPort}/status`);
    if (res.status === 404) return;
    if (Date.now() > deadline) throw new Error(`Pushpin never relayed a GRIP answer (last: ${res.status} ${res.body.trim()})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test.after.always(async () => {
  await kongGrip?.close();
  await pushpin?.stop();
  await origin?.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

const proxies = () => [
  { name: 'pushpin', url: (p: string) => `http://127.0.0.1:${pushpin.clientPort}${p}`, publish: `http://127.0.0.1:${pushpin.publishPort}/publish/` },
  { name: 'kong-grip', url: (p: string) => kongGrip.url(p), publish: `${kongGrip.controlUri}publish/` },
];

const view = (r: SimpleResponse, headers: string[]) => ({
  status: r.status, reason: r.reason, body: r.body,
  ...Object.fromEntries(headers.map((h) => [h, r.headers[h] ?? null])),
  gripHeaders: Object.keys(r.headers).filter((h) => h.startsWith('grip-')),
});

async function both(path: string, headers: string[], init: Parameters<typeof request>[1] = {}) {
  const [p, k] = await Promise.all(proxies().map(async (x) => view(await request(x.url(path), init), headers)));
  return { pushpin: p!, kongGrip: k! };
}

test.serial('Grip-Status without a hold', async (t) => {
  const r = await both('/status', ['content-length']);
  t.deepEqual(r.kongGrip, r.pushpin);
  const odd = await both('/odd-status', []);
  t.deepEqual(odd.kongGrip, odd.pushpin);
});

test.serial('a JSON instruct response is built only from its response object', async (t) => {
  const r = await both('/json', ['x-i', 'x-origin-only', 'content-length']);
  t.deepEqual(r.kongGrip, r.pushpin);
});

test.serial('a long-poll nobody publishes to gets the timeout response after the 5 s minimum', async (t) => {
  const started = Date.now();
  const r = await both('/timeout', ['content-type', 'x-custom', 'content-length']);
  t.true(Date.now() - started >= 4900);
  t.deepEqual(r.kongGrip, r.pushpin);
});

test.serial('paged streaming through a next link', async (t) => {
  const r = await both('/page1', []);
  t.deepEqual(r.kongGrip, r.pushpin);
});

test.serial('client Grip-* and Accept-Encoding never reach the origin', async (t) => {
  const r = await both('/echo-headers', [], { headers: { 'Grip-Foo': 'evil', 'Accept-Encoding': 'gzip' } });
  t.is(r.pushpin.body.includes('"gripFoo":null'), true);
  t.is(r.kongGrip.body.includes('"gripFoo":null'), true);
  t.is(JSON.parse(r.kongGrip.body).ae, null);
});

test.serial('a malformed instruction is a 502 from both', async (t) => {
  const r = await both('/bad-hold', []);
  t.is(r.pushpin.status, 502);
  t.is(r.kongGrip.status, 502);
});

test.serial('a long-poll answered by a publish merges item headers over the timeout response', async (t) => {
  const results = await Promise.all(proxies().map(async (x, i) => {
    const channel = `poll-${i}`;
    const pending = request(x.url(`/poll?n=${i}`));
    const item = { items: [{ channel, formats: { 'http-response': { code: 202, headers: { 'X-Pub': '1', 'Content-Type': 'application/json' }, body: '{"n":42}\n' } } }] };
    // A proxy's subscription becomes live at a moment the client cannot observe: publish until
    // the held request is answered (a long-poll takes exactly one item).
    let answered = false;
    void pending.then(() => { answered = true; });
    while (!answered) {
      await request(x.publish, { method: 'POST', body: JSON.stringify(item) });
      await Promise.race([pending, new Promise((r) => setTimeout(r, 100))]);
    }
    return view(await pending, ['content-type', 'x-custom', 'x-pub', 'content-length']);
  }));
  t.deepEqual(results[1], results[0]);
  t.is(results[0]?.status, 202);
});

test.serial('a stream gets published content appended and ends on a close item', async (t) => {
  const results = await Promise.all(proxies().map(async (x, i) => {
    const channel = `stream-${i}`;
    const stream = await openStream(x.url(`/stream?n=${i}`));
    await stream.waitFor('stream open\n');
    const publish = (formats: unknown) => request(x.publish, { method: 'POST', body: JSON.stringify({ items: [{ channel, formats }] }) });
    // Repeat a marker until it arrives (subscription live), then send the real items once each.
    while (!stream.text.includes('marker\n')) {
      await publish({ 'http-stream': { content: 'marker\n' } });
      await Promise.race([stream.waitFor('marker\n'), new Promise((r) => setTimeout(r, 100))]);
    }
    await publish({ 'http-stream': { content: 'hello\n' } });
    await publish({ 'http-stream': { action: 'close' } });
    const text = (await stream.waitForEnd()).replace(/marker\n/g, '');
    return { status: stream.res.statusCode, chunked: stream.res.headers['transfer-encoding'], type: stream.res.headers['content-type'], text, complete: stream.res.complete };
  }));
  t.deepEqual(results[1], results[0]);
  t.is(results[0]?.text, 'stream open\nhello\n');
});

test.serial('WebSocket: the messages after a detach in the same origin reply reach the client', async (t) => {
  for (const x of proxies()) {
    const client = await connect(x.url('/ws-detach'));
    const log = logOf(client);
    client.send('go');
    t.deepEqual(await withDeadline(log.waitForCount(2), 10_000, `two messages through ${x.name}`), ['before', 'after'], x.name);
    client.close();
  }
});

test.serial('publish item errors carry Pushpin\'s reason, after the item\'s location', async (t) => {
  const stream = { 'http-stream': { content: 'x' } };
  const items: unknown[][] = [
    [{ channel: 5, formats: stream }], [5], [{ formats: stream }], [{ channel: 'a', id: 5, formats: stream }],
    [{ channel: 'a', formats: 5 }], [{ channel: 'a' }], [{ channel: 'a', formats: { 'http-stream': 5 } }],
    [{ channel: 'a', formats: { 'http-stream': { action: 5 } } }], [{ channel: 'a', formats: { 'http-stream': {} } }],
    [{ channel: 'a', formats: { 'http-stream': { content: 'x', 'content-filters': [5] } } }],
    [{ channel: 'a', formats: { 'http-response': {} } }], [{ channel: 'a', formats: { 'http-response': { body: 'x', code: 1000 } } }],
    [{ channel: 'a', formats: { 'http-response': { body: 'x', headers: [['a']] } } }],
    [{ channel: 'a', formats: { 'http-response': { body: 'x', headers: { a: 5 } } } }],
    [{ channel: 'a', formats: { 'ws-message': { type: 'nope', content: 'x' } } }],
    [{ channel: 'a', formats: { 'ws-message': { action: 'close', code: -5 } } }],
    [{ channel: 'a', formats: stream, meta: { k: 5 } }], [{ channel: 'a', formats: stream, 'no-seq': 'yes' }],
    [{ channel: 'a', formats: stream, size: -1 }], [{ channel: 'a', formats: stream }, { channel: 7 }],
  ];
  for (const list of items) {
    const body = JSON.stringify({ items: list });
    const [p, k] = await Promise.all(proxies().map((x) => request(x.publish, { method: 'POST', body })));
    t.is(p?.status, 400, body);
    t.is(k?.status, 400, body);
    const at = list.length - 1; // the bad item is the last
    t.is(k?.body, (p?.body ?? '').replace('Invalid format: ', `Invalid format: items[${at}]: `), body);
  }
});

test.serial('publish API answers alike', async (t) => {
  const deep = (d: number) => `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}},"meta":{"k":"v"},"x":${'['.repeat(d)}${']'.repeat(d)}}]}`;
  for (const [body, accept] of [['{not json', undefined], ['{}', undefined], ['{"items":{}}', undefined], ['{"items":[]}', 'application/json'], ['{"items":[]}', 'image/png'],
    ['[]', undefined], ['"items"', undefined], ['null', undefined], ['5', undefined], [deep(1022), undefined], [deep(1021), undefined]] as const) {
    const [p, k] = await Promise.all(proxies().map((x) => request(x.publish, { method: 'POST', body, headers: accept ? { Accept: accept } : {} })));
    t.is(k?.status, p?.status, body);
    t.is(k?.body, p?.body, body);
  }
  const [p, k] = await Promise.all(proxies().map((x) => request(x.publish)));
  t.is(k?.status, p?.status);
  t.is(k?.body, p?.body);
});
