import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';
import { StreamReader } from '../helpers/http.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';

// Shared rig for the socket-level fuzz tests: a sidecar in this process with small limits, a raw
// scripted origin, clients that record what became of each request, a canary SSE subscriber, and
// the invariants checked after every batch. Kept small on purpose: generators live in the tests.

/** The seed every fuzz file uses unless FUZZ_SEED is set; printed by fast-check on failure. */
export const FUZZ_SEED = Number(process.env['FUZZ_SEED'] ?? 20261206);
/** JSON of a value with long strings shortened, for failure reports. */
export function brief(value: unknown, max = 4000): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' && v.length > 120 ? `${v.slice(0, 100)}…(${v.length} chars)` : v));
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * fast-check options: fixed seed, no shrinking (slow over sockets) unless FUZZ_SHRINK is set,
 * and a short report: seed, path, the error, the counterexample with long strings cut.
 */
export const fcOptions = (numRuns: number) => ({
  seed: FUZZ_SEED, numRuns, endOnFailure: process.env['FUZZ_SHRINK'] === undefined,
  asyncReporter: async (d: { failed: boolean; seed: number; counterexamplePath: string | null; counterexample: unknown; errorInstance: unknown; numRuns: number }) => {
    if (!d.failed) return;
    const err = d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance);
    throw new Error(`fuzz failed after ${d.numRuns} run(s); reproduce with FUZZ_SEED=${d.seed} (path ${d.counterexamplePath})\n${err}\ncounterexample: ${brief(d.counterexample)}`);
  },
});

/** Small enough that stalls end quickly. */
export const LIMITS = { originTimeoutMs: 300, originBodyTimeoutMs: 300, headerTimeoutMs: 1000, requestBodyTimeoutMs: 1000 };
/**
 * A client must have its status (or a clean close) this long after its request: the origin
 * timeouts plus generous slack, as `npm test` shares a loaded machine.
 */
export const CLIENT_DEADLINE_MS = LIMITS.originTimeoutMs + LIMITS.originBodyTimeoutMs + 6000;
/** Channels the generators name; every one must be back to zero subscribers after a batch. */
export const CHANNELS = ['f0', 'f1', 'f2', 'f3'];
export const CANARY = 'canary';

// ---- crash watch --------------------------------------------------------------------------

/** Records every uncaughtException/unhandledRejection in this test process until disposed. */
export function watchCrashes(): { errors: string[]; dispose(): void } {
  const errors: string[] = [];
  const onError = (kind: string) => (err: unknown) => { errors.push(`${kind}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`); };
  const ex = onError('uncaughtException');
  const rej = onError('unhandledRejection');
  process.on('uncaughtException', ex);
  process.on('unhandledRejection', rej);
  return { errors, dispose: () => { process.off('uncaughtException', ex); process.off('unhandledRejection', rej); } };
}

// ---- scripted origin ----------------------------------------------------------------------

/** One raw origin answer: the head written as UTF-8, the body as bytes (latin1), with optional stalls. */
export interface Answer {
  /** Wait this long before writing anything. */
  stallMs?: number;
  /** Status line and headers, without the blank line (added unless `noBlankLine`). */
  head: string;
  noBlankLine?: boolean;
  body?: string;
  /** Write `body`, then wait this long before closing (a body cut or stalled mid-way). */
  bodyStallMs?: number;
}

/**
 * A raw TCP origin: each request's path `/a/<id>` picks the answer registered under `id`
 * (`/canary` is the canary's stream hold, anything else 404). The request body is read before
 * answering and the connection is closed after each answer.
 */
export async function startScriptedOrigin() {
  const answers = new Map<string, Answer>();
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => { const t = setTimeout(() => { timers.delete(t); fn(); }, ms); timers.add(t); };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const rest = buf.subarray(end + 4);
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      if (len && rest.length < Number(len[1])) return;
      if (chunked && !rest.includes('0\r\n\r\n')) return;
      answered = true;
      const path = head.split(' ')[1] ?? '';
      write(socket, answerFor(path));
    });
  });
  const answerFor = (path: string): Answer => {
    if (path === '/canary') return { head: `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nGrip-Hold: stream\r\nGrip-Channel: ${CANARY}\r\nContent-Length: 0` };
    const id = /^\/a\/([^/?]+)/.exec(path)?.[1];
    return (id && answers.get(id)) || { head: 'HTTP/1.1 404 Not Found\r\nContent-Length: 0' };
  };
  const write = (socket: net.Socket, a: Answer) => {
    const send = () => {
      if (socket.destroyed) return;
      socket.write(Buffer.concat([Buffer.from(a.head + (a.noBlankLine ? '' : '\r\n\r\n'), 'utf8'), Buffer.from(a.body ?? '', 'latin1')]));
      if (a.bodyStallMs === undefined) socket.end();
      else later(a.bodyStallMs, () => socket.destroy());
    };
    if (a.stallMs) later(a.stallMs, send);
    else send();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url, answers,
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---- clients ------------------------------------------------------------------------------

export type ClientKind = 'get' | 'sse' | 'post' | 'ws';
/** What became of one client request. */
export interface Outcome { kind: ClientKind; path: string; status?: number; closed?: string; hanging?: boolean; ms: number }

/** A client in flight: its outcome once known, and a way to leave now (counted as held). */
export interface Client { done: Promise<Outcome>; settled(): boolean; leave(): void }

/**
 * One client request on a fresh connection. Settles once it has a status (then closes its side
 * after `lingerMs`, as SSE and long-poll clients leave) or a clean close/error; `leave()`
 * destroys it and settles it as `hanging` (the caller decides whether it was legitimately held).
 * `leaveAfterMs` leaves before any answer.
 */
export function clientRequest(base: string, kind: ClientKind, path: string, opts: { lingerMs?: number; leaveAfterMs?: number; body?: string }): Client {
  const started = Date.now();
  let resolveDone!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => { resolveDone = r; });
  let isDone = false;
  let destroy = () => undefined as void;
  const finish = (o: Omit<Outcome, 'kind' | 'path' | 'ms'>) => {
    if (isDone) return;
    isDone = true;
    resolveDone({ kind, path, ...o, ms: Date.now() - started });
  };
  if (kind === 'ws') {
    const ws = new WebSocket(`${base.replace('http:', 'ws:')}${path}`);
    destroy = () => ws.terminate();
    ws.on('error', (err) => finish({ closed: err.message }));
    ws.on('unexpected-response', (_req, res) => { finish({ status: res.statusCode ?? 0 }); res.destroy(); ws.terminate(); });
    ws.on('open', () => { finish({ status: 101 }); ws.send('hello'); setTimeout(() => ws.close(), opts.lingerMs ?? 0).unref(); });
    ws.on('close', () => finish({ closed: 'closed' }));
  } else {
    const headers: Record<string, string> = kind === 'sse' ? { Accept: 'text/event-stream' } : {};
    const req = http.request(`${base}${path}`, { method: kind === 'post' ? 'POST' : 'GET', headers, agent: false }, (res) => {
      res.on('data', () => undefined);
      res.on('error', () => undefined);
      setTimeout(() => req.destroy(), opts.lingerMs ?? 0).unref();
      finish({ status: res.statusCode ?? 0 });
    });
    destroy = () => { req.destroy(); };
    req.on('error', (err) => finish({ closed: err.message }));
    req.on('close', () => finish({ closed: 'closed' }));
    req.end(kind === 'post' ? (opts.body ?? 'x') : undefined);
  }
  if (opts.leaveAfterMs !== undefined) setTimeout(() => { if (!isDone) { finish({ closed: 'left early' }); destroy(); } }, opts.leaveAfterMs);
  return { done, settled: () => isDone, leave: () => { finish({ hanging: true }); destroy(); } };
}

/**
 * Waits CLIENT_DEADLINE_MS, then checks that every client still without an answer is a held
 * long-poll (the response-hold gauge counts at least as many), and leaves them all.
 * Resolves with the outcomes and an error message for clients left hanging without a hold.
 */
export async function settleClients(rig: Rig, clients: Client[]): Promise<{ outcomes: Outcome[]; unheld: number }> {
  const until = Date.now() + CLIENT_DEADLINE_MS;
  while (Date.now() < until && clients.some((c) => !c.settled())) await new Promise((r) => setTimeout(r, 20));
  const pending = clients.filter((c) => !c.settled()).length;
  const held = (await rig.side.sidecar.metrics.connections.get()).values.find((v) => v.labels['kind'] === 'response')?.value ?? 0;
  for (const c of clients) c.leave(); // a no-op for those done, except that their sockets close
  return { outcomes: await Promise.all(clients.map((c) => c.done)), unheld: Math.max(0, pending - held) };
}

// ---- the rig ------------------------------------------------------------------------------

export interface Rig {
  side: TestSidecar;
  origin: Awaited<ReturnType<typeof startScriptedOrigin>>;
  crashes: { errors: string[] };
  /** POST a raw body to the publish API; resolves with the status. */
  publishRaw(body: string): Promise<number>;
  /** Publish one item on the canary channel and wait for it on the canary stream. */
  checkCanary(): Promise<void>;
  /** Every hold released, every gauge zero (the canary aside); throws naming what is left. */
  checkDrained(): Promise<void>;
  /** Throws if anything was recorded by the crash watch. */
  checkNoCrash(): void;
  close(): Promise<void>;
}

export async function startRig(overrides: Record<string, unknown> = {}): Promise<Rig> {
  const crashes = watchCrashes();
  const origin = await startScriptedOrigin();
  const side = await startTestSidecar({
    origin: origin.url, limits: { ...LIMITS }, sequencing: { waitMs: 100 }, hold: { channelLingerMs: 0 }, ...overrides,
  });
  const canary = await new Promise<StreamReader>((resolve, reject) => {
    http.get(side.url('/canary'), { agent: false }, (res) => resolve(new StreamReader(res))).on('error', reject);
  });
  let canaries = 0;
  const publishRaw = async (body: string) => {
    const res = await fetch(`${side.controlUri}publish/`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    await res.arrayBuffer();
    return res.status;
  };
  const gauges = async () => (await side.sidecar.metrics.connections.get()).values.filter((v) => v.value !== 0).map((v) => `${v.labels['kind']}=${v.value}`);
  const leftovers = async () => {
    const left = CHANNELS.filter((c) => side.sidecar.hub.subscriberCount(c) !== 0).map((c) => `${c}: ${side.sidecar.hub.subscriberCount(c)} subscriber(s)`);
    const g = (await gauges()).filter((s) => s !== 'stream=1'); // the canary
    if (side.sidecar.hub.subscriberCount(CANARY) !== 1) left.push(`canary: ${side.sidecar.hub.subscriberCount(CANARY)} subscriber(s)`);
    return [...left, ...g.map((s) => `kong_grip_connections ${s}`)];
  };
  return {
    side, origin, crashes, publishRaw,
    async checkCanary() {
      const n = ++canaries;
      const status = await publishRaw(JSON.stringify({ items: [{ channel: CANARY, formats: { 'http-stream': { content: `data: canary-${n}\n\n` } } }] }));
      if (status !== 200) throw new Error(`canary publish got ${status}`);
      const until = Date.now() + 10_000;
      while (!canary.text.includes(`canary-${n}\n`)) {
        if (canary.ended) throw new Error(`canary stream ended before canary-${n}`);
        if (Date.now() > until) throw new Error(`canary-${n} not received within 10 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async checkDrained() {
      const until = Date.now() + 5000;
      let left = await leftovers();
      while (left.length > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
        left = await leftovers();
      }
      if (left.length > 0) throw new Error(`not drained after all clients closed: ${left.join(', ')}`);
    },
    checkNoCrash() {
      if (crashes.errors.length > 0) throw new Error(`process errors:\n${crashes.errors.join('\n')}`);
    },
    async close() {
      canary.close();
      await side.close();
      await origin.close();
      crashes.dispose();
    },
  };
}

/** Clients left hanging with no hold to show for them, named with their inputs (undefined if none). */
export function hangingReport<T>(outcomes: Outcome[], unheld: number, inputs: T[]): string | undefined {
  if (unheld === 0) return undefined;
  const bad = outcomes.flatMap((o, i) => (o.hanging ? [`${o.kind} ${o.path}: ${brief(inputs[i], 1500)}`] : []));
  if (bad.length > 0 && process.env['FUZZ_DUMP']) {
    writeFileSync(process.env['FUZZ_DUMP'], JSON.stringify(outcomes.flatMap((o, i) => (o.hanging ? [{ outcome: o, input: inputs[i] }] : [])), null, 1));
  }
  return bad.length === 0 ? undefined : `${unheld} client(s) got neither a status nor a close within ${CLIENT_DEADLINE_MS} ms and are not held long-polls; the pending ones:\n${bad.join('\n')}`;
}
