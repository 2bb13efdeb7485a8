import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { WebSocketServer } from 'ws';
import { MemoryBus } from '../sidecar/src/bus/memory-bus.js';
import { DEFAULT_LIMITS, DEFAULT_WS } from '../sidecar/src/config.js';
import { forwardRequestHeaders } from '../sidecar/src/grip/headers.js';
import type { PublishItem } from '../sidecar/src/grip/types.js';
import { encodeWsEvents } from '../sidecar/src/grip/ws-events.js';
import { systemClock } from '../sidecar/src/holds/clock.js';
import { KeepAliveWheel } from '../sidecar/src/holds/keep-alive-wheel.js';
import { Hub } from '../sidecar/src/hub/hub.js';
import { createLogger } from '../sidecar/src/log.js';
import { createMetrics } from '../sidecar/src/metrics.js';
import type { PostWsEvents, WsOriginOutcome } from '../sidecar/src/origin/ws-origin.js';
import { WsUpgradeHandler } from '../sidecar/src/server/ws-upgrade.js';
import { NO_GONE_LINKS } from '../sidecar/src/origin/gone-link.js';

// Fan-out of one published ws-message to N WebSocket clients held by the sidecar's session code.
//   npx tsx bench/ws-fanout.bench.ts [clients=5000] [rounds=30] [payloadBytes=100]
// The clients run in a child process. For each round it reports:
//   loop: time inside bus.publish (hub loop: every session writes the shared frame to its socket)
//   e2e:  publish until the child has seen the message on every client
//   loop CPU: user (JavaScript: hub, sessions, framing) and system (kernel: one write per socket)
// and, on the same sockets, the same two figures for per-client ws.send() (a frame built per client).
// The origin is in-process (accepts OPEN and subscribes to "bench"): only the fan-out is measured.
// Before the rounds it reports the heap this process holds per connected client (after a full GC).

const clients = Number(process.argv[2] ?? 5000);
const rounds = Number(process.argv[3] ?? 30);
const payloadBytes = Number(process.argv[4] ?? 100);
const WARMUP = 5;

const OPEN_REPLY: WsOriginOutcome = {
  type: 'reply', status: 200, reason: 'OK',
  headers: [['Content-Type', 'application/websocket-events'], ['Sec-WebSocket-Extensions', 'grip']],
  body: encodeWsEvents([{ type: 'OPEN' }, { type: 'TEXT', content: Buffer.from('c:{"type":"subscribe","channel":"bench"}') }]),
};
const EMPTY_REPLY: WsOriginOutcome = { ...OPEN_REPLY, body: Buffer.alloc(0) };
const post: PostWsEvents = async (_url, _headers, body) => (body.subarray(0, 4).toString() === 'OPEN' ? OPEN_REPLY : EMPTY_REPLY);

const bus = new MemoryBus();
const metrics = createMetrics();
const hub = new Hub(bus, metrics);
const handler = new WsUpgradeHandler({
  hub, post, metrics, log: createLogger('silent'),
  limits: { ...DEFAULT_LIMITS, maxConnections: clients + 10 }, ws: DEFAULT_WS, keepAlives: new KeepAliveWheel(), clock: systemClock,
  gone: NO_GONE_LINKS, onSessionEnded: () => undefined,
});
const server = http.createServer((_req, res) => { res.writeHead(404); res.end(); });
server.on('upgrade', (req, socket, head) => handler.start(req, socket, head, {
  url: new URL(`http://origin.invalid${req.url ?? '/'}`), headers: forwardRequestHeaders(req.rawHeaders),
}));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as AddressInfo).port;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapNow = (): number => {
  gc();
  return process.memoryUsage().heapUsed;
};
const heapBefore = heapNow();
const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./ws-fanout-clients.ts', import.meta.url)), `ws://127.0.0.1:${port}/bench`, String(clients)], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = createInterface({ input: child.stdout });
const waiters = new Map<string, () => void>();
lines.on('line', (line) => {
  const w = waiters.get(line.startsWith('ready') ? 'ready' : line);
  if (w !== undefined) { waiters.delete(line.startsWith('ready') ? 'ready' : line); w(); }
});
const waitLine = (key: string): Promise<void> => new Promise((resolve) => waiters.set(key, resolve));

const connectStart = performance.now();
await waitLine('ready');
while (hub.subscriberCount('bench') < clients) await new Promise((resolve) => setImmediate(resolve));
console.log(`${clients} clients connected and subscribed in ${((performance.now() - connectStart) / 1000).toFixed(1)} s`);
console.log(`heap per client: ${Math.round((heapNow() - heapBefore) / clients)} bytes (sessions, ws objects, sockets)`);

const payloadFor = (k: number): Buffer => Buffer.concat([Buffer.from(String(k).padStart(8, '0')), Buffer.alloc(Math.max(0, payloadBytes - 8), 'x')]);

async function measure(label: string, send: (k: number) => void, firstK: number): Promise<void> {
  const loop: number[] = [];
  const e2e: number[] = [];
  const user: number[] = [];
  const system: number[] = [];
  for (let r = 0; r < rounds + WARMUP; r++) {
    const k = firstK + r;
    const seen = waitLine(`got ${k}`);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    send(k);
    const t1 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    await seen;
    const t2 = performance.now();
    if (r >= WARMUP) {
      loop.push(t1 - t0);
      e2e.push(t2 - t0);
      user.push(cpu.user / 1000);
      system.push(cpu.system / 1000);
    }
  }
  console.log(`${label}\n  loop ms   ${stats(loop)}\n  e2e ms    ${stats(e2e)}`);
  console.log(`  loop CPU ms: user ${stats(user)}; system ${stats(system)}`);
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return `median ${at(0.5).toFixed(2)} p90 ${at(0.9).toFixed(2)} min ${(s[0] as number).toFixed(2)}`;
}

console.log(`one ${payloadBytes}-byte text message to ${clients} clients, ${rounds} rounds after ${WARMUP} warm-up`);
// The baseline needs the ws objects, which the handler keeps to itself.
const wss = (handler as unknown as { handshake: { wss: WebSocketServer } }).handshake.wss;
const sharedFrame = (k: number): void => {
  const item: PublishItem = {
    channel: 'bench', formats: { 'ws-message': { action: 'send', type: 'text', content: payloadFor(k) } }, meta: {}, noSeq: false,
  };
  void bus.publish([item]);
};
const perClientSend = (k: number): void => {
  const payload = payloadFor(k).toString('latin1');
  for (const ws of wss.clients) ws.send(payload);
};
// Alternate the two so neither profits from running second.
for (let pass = 0; pass < 2; pass++) {
  await measure('shared frame (sidecar)', sharedFrame, 1_000 + pass * 10_000);
  await measure('per-client ws.send()', perClientSend, 2_000 + pass * 10_000);
}

child.stdin.write('quit\n');
await handler.close();
server.close();
