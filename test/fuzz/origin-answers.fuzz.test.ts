import test from 'ava';
import fc from 'fast-check';
import {
  CHANNELS, LIMITS, clientRequest, fcOptions, hangingReport, settleClients, startRig, type Answer, type ClientKind,
} from './harness.js';

// Socket-level fuzz of what an origin may answer: generated status lines, Grip-* headers with
// hostile values, JSON instructs, bodies cut or stalled mid-way, to plain, SSE, POST and
// WebSocket clients of a running sidecar. After each batch: no process error, every client got
// a status or a close in time, every hold released, the canary still served.

// ---- generators ---------------------------------------------------------------------------

/** Header-value text without CR/LF (framing is generated separately), hostile otherwise. */
const hostileChar = fc.oneof(
  fc.constantFrom(',', ';', '=', '"', '\\', '<', '>', ' ', '\t', '\0', '\x01', '\x1b', '\x7f', '\xff', 'é', '€', '𝄞'),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
);
const hostile = fc.oneof(
  fc.string({ unit: hostileChar, maxLength: 30 }),
  fc.constantFrom('', ' ', '99999999999999999999999', '-1', '1e400', 'NaN', '0x10', '٣'),
  fc.integer({ min: 1, max: 3000 }).map((n) => 'a'.repeat(n)),
);
const channel = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CHANNELS) }, { weight: 1, arbitrary: hostile });
const channelHeader = fc.oneof(
  channel,
  fc.tuple(channel, hostile).map(([c, p]) => `${c}; prev-id=${p}`),
  fc.array(channel, { minLength: 2, maxLength: 25 }).map((cs) => cs.join(', ')),
);
const gripHeader = fc.oneof(
  fc.tuple(fc.constant('Grip-Hold'), fc.oneof(fc.constantFrom('response', 'stream', 'Stream', 'forever'), hostile)),
  fc.tuple(fc.constant('Grip-Channel'), channelHeader),
  fc.tuple(fc.constant('Grip-Timeout'), fc.oneof(fc.constantFrom('0', '1', '86401', '999999999999999999'), hostile)),
  fc.tuple(fc.constant('Grip-Keep-Alive'), fc.oneof(fc.constantFrom('\\n; format=cstring; timeout=1', 'x; timeout=0', 'x; format=base64'), hostile)),
  fc.tuple(fc.constant('Grip-Status'), fc.oneof(fc.constantFrom('404 Nope', '200', '100 Continue', '999', '0'), hostile)),
  fc.tuple(fc.constant('Grip-Set-Meta-x'), hostile),
  fc.tuple(fc.constant('Grip-Previous-Id'), hostile),
  fc.tuple(fc.constant('Grip-Link'), fc.oneof(fc.constant('</a/none>; rel=next; timeout=1'), hostile)),
  fc.tuple(fc.constantFrom('Content-Type', 'Grip-Foo', 'X-Thing', 'Sec-WebSocket-Extensions', 'Connection'), hostile),
);
const contentType = fc.constantFrom('text/plain', 'application/grip-instruct', 'text/event-stream', 'application/websocket-events');

/** JSON instruct bodies: valid-looking, wrong types, malformed, deeply nested. */
const instructBody = fc.oneof(
  fc.record({
    hold: fc.option(fc.record({
      mode: fc.constantFrom('response', 'stream', 'x', 1),
      channels: fc.oneof(fc.array(fc.record({ name: channel }, { requiredKeys: [] }), { maxLength: 25 }), fc.jsonValue()),
      timeout: fc.oneof(fc.integer({ min: -1, max: 2 }), fc.double(), fc.string()),
    }, { requiredKeys: [] }), { nil: undefined }),
    response: fc.option(fc.record({ code: fc.oneof(fc.integer({ min: -1, max: 1000 }), fc.string()), body: fc.jsonValue(), headers: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(hostile, fc.jsonValue())) }, { requiredKeys: [] }), { nil: undefined }),
  }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 40 }),
  fc.integer({ min: 10, max: 20000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 10, max: 20000 }).map((n) => `{"hold":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`),
);

const statusLine = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.1 404 Not Found', 'HTTP/1.0 200 OK', 'HTTP/1.1 304 Not Modified', 'HTTP/1.1 204 No Content', 'HTTP/1.1 500 Oops') },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 100, max: 999 }), fc.string({ unit: 'grapheme', maxLength: 20 })).map(([c, r]) => `HTTP/1.1 ${c} ${r}`) },
  // Reasons with control chars, which Node refuses to write (D1).
  { weight: 1, arbitrary: fc.tuple(fc.string({ unit: hostileChar, maxLength: 10 }), fc.constantFrom('\0', '\x01', '\x05', '\x1b', '\x7f'), fc.string({ unit: hostileChar, maxLength: 10 })).map((r) => `HTTP/1.1 200 ${r.join('')}`) },
  { weight: 1, arbitrary: fc.constantFrom('HTTP/1.1 abc', 'garbage', 'HTTP/9.9 200 OK', '', 'HTTP/1.1 200', 'HTTP/1.1  200 OK', 'ICY 200 OK') },
);

type Framing = 'length' | 'close' | 'chunked' | 'cut-length' | 'cut-chunked';
interface OriginCase { answer: Answer; kind: ClientKind; channels: string[] }

const originCase: fc.Arbitrary<OriginCase> = fc.record({
  status: statusLine,
  headers: fc.array(gripHeader, { maxLength: 6 }),
  repeated: fc.option(gripHeader, { nil: undefined }),
  contentType: fc.option(contentType, { nil: undefined }),
  body: fc.oneof(instructBody, fc.string({ maxLength: 200 }), fc.constant('')),
  framing: fc.constantFrom<Framing>('length', 'length', 'close', 'chunked', 'cut-length', 'cut-chunked'),
  stallMs: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 50, max: LIMITS.originTimeoutMs + 200 }) }),
  // Some stall past the client deadline: only limits.originBodyTimeoutMs can end those in time.
  bodyStallMs: fc.option(fc.integer({ min: 50, max: 10_000 }), { nil: undefined }),
  kind: fc.constantFrom<ClientKind>('get', 'get', 'sse', 'sse', 'post', 'ws'),
  // A next link to another host (the next-link SSRF item): no invariant here depends on the
  // policy, so it stays on; it must neither hang nor crash whether the fetch is refused or fails.
  link: fc.boolean(),
  // About half the answers are a well-formed hold on a pool channel with a few hostile extras.
  // A quarter are no GRIP at all (relayed as they are), a good share well-formed holds.
  shape: fc.constantFrom('relay', 'hold', 'hold', 'any'),
  hold: fc.tuple(fc.constantFrom('response', 'stream'), fc.constantFrom(...CHANNELS)),
}).map((g) => {
  const isRelay = g.shape === 'relay';
  const headers: Array<[string, string]> = [
    ...(g.shape === 'hold' ? [['Grip-Hold', g.hold[0]], ['Grip-Channel', g.hold[1]]] as Array<[string, string]> : []),
    ...(isRelay ? g.headers.filter(([n]) => !n.startsWith('Grip-')) : g.headers.slice(0, g.shape === 'hold' ? 2 : 6)), ...(g.repeated && !isRelay ? [g.repeated, g.repeated] : [])];
  if (g.contentType && !isRelay) headers.push(['Content-Type', g.contentType]);
  if (g.link && !isRelay) headers.push(['Grip-Link', '<http://127.0.0.1:9/x>; rel=next']);
  const body = Buffer.from(g.body, 'utf8').toString('latin1');
  let framing = '';
  let wire = body;
  if (g.framing === 'length') framing = `\r\nContent-Length: ${body.length}`;
  if (g.framing === 'cut-length') { framing = `\r\nContent-Length: ${body.length + 100}`; }
  if (g.framing === 'chunked' || g.framing === 'cut-chunked') {
    framing = '\r\nTransfer-Encoding: chunked';
    wire = (body.length > 0 ? `${body.length.toString(16)}\r\n${body}\r\n` : '') + (g.framing === 'chunked' ? '0\r\n\r\n' : '');
  }
  const head = g.status + headers.map(([n, v]) => `\r\n${n}: ${v}`).join('') + framing;
  const answer: Answer = { head, body: wire, ...(g.stallMs ? { stallMs: g.stallMs } : {}), ...(g.bodyStallMs ? { bodyStallMs: g.bodyStallMs } : {}) };
  const channels = headers.filter(([n]) => n === 'Grip-Channel').flatMap(([, v]) => v.split(',').map((c) => c.split(';')[0]!.trim()));
  return { answer, kind: g.kind, channels };
});

const clientTiming = fc.record({
  lingerMs: fc.integer({ min: 0, max: 200 }),
  leaveAfterMs: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }),
});

// ---- the test -----------------------------------------------------------------------------

const BATCHES = Number(process.env['FUZZ_ORIGIN_BATCHES'] ?? 25);

test('origin answers: no crash, no hanging client, every hold released, canary served', async (t) => {
  const rig = await startRig();
  t.teardown(() => rig.close());
  let batchNo = 0;
  let total = 0;
  const statuses = new Map<string, number>();
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(originCase, clientTiming), { minLength: 20, maxLength: 60 }), async (cases) => {
    const batch = ++batchNo;
    cases.forEach(([c], i) => rig.origin.answers.set(`b${batch}c${i}`, c.answer));
    // Long-polls hold at least 5 s: release every channel the origin named while clients wait.
    const named = [...new Set([...CHANNELS, ...cases.flatMap(([c]) => c.channels)])];
    let releasing = true;
    const releaser = (async () => {
      while (releasing) {
        await new Promise((r) => setTimeout(r, 250));
        for (const ch of named) {
          await rig.publishRaw(JSON.stringify({ items: [{ channel: ch, formats: { 'http-response': { body: 'released\n' }, 'http-stream': { action: 'close' } } }] })).catch(() => 0);
        }
      }
    })();
    const clients = cases.map(([c, timing], i) => clientRequest(rig.side.url(''), c.kind, `/a/b${batch}c${i}`, timing));
    const { outcomes, unheld } = await settleClients(rig, clients);
    releasing = false;
    await releaser;
    total += cases.length;
    for (const o of outcomes) {
      const key = o.hanging ? 'held' : o.status !== undefined ? String(o.status) : `closed(${o.kind})`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    }
    rig.checkNoCrash();
    const hanging = hangingReport(outcomes, unheld, cases.map(([c, timing]) => ({ ...c.answer, kind: c.kind, ...timing })));
    if (hanging) throw new Error(hanging);
    await rig.checkDrained();
    await rig.checkCanary();
    for (let i = 0; i < cases.length; i++) rig.origin.answers.delete(`b${batch}c${i}`);
  }), fcOptions(BATCHES));
  t.log(`${batchNo} batches, ${total} client requests; outcomes ${JSON.stringify(Object.fromEntries(statuses))}`);
  t.deepEqual(rig.crashes.errors, [], 'no uncaught exception or unhandled rejection');
  t.is([...statuses.values()].reduce((a, b) => a + b, 0), total, 'every client request has an outcome');
});
