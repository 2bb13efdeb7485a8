// CPU per delivery on the stream fan-out hot path, in one process, without sockets: N stream
// holds with no filters on one channel, behind the real Hub and MemoryBus, their responses
// replaced by a sink; K published items, each to all N. Prints nanoseconds of process CPU
// (user + system) per delivery. Far less disturbed by other load on the machine than the
// socket fan-out's latency, so it shows whether a change costs the per-subscriber loop
// anything. Compare two checkouts by running it in each, alternately:
//
//   npx tsx bench/stream-delivery-cpu.bench.ts [N] [K]

import type { ServerResponse } from 'node:http';
import { MemoryBus } from '../sidecar/src/bus/memory-bus.js';
import { DEFAULT_LIMITS } from '../sidecar/src/config.js';
import type { PublishItem } from '../sidecar/src/grip/types.js';
import { ChunkWriter } from '../sidecar/src/holds/chunk-writer.js';
import { systemClock } from '../sidecar/src/holds/clock.js';
import { StreamHold, type StreamHoldDeps } from '../sidecar/src/holds/stream-hold.js';
import { Hub } from '../sidecar/src/hub/hub.js';
import { createMetrics } from '../sidecar/src/metrics.js';

const N = Number(process.argv[2] ?? 5000);
const K = Number(process.argv[3] ?? 1000);
const noop = (): undefined => undefined;

const bus = new MemoryBus();
const metrics = createMetrics();
const hub = new Hub(bus, metrics);
const deps: StreamHoldDeps = {
  hub, metrics, holds: { add: noop, delete: noop }, channelLimit: { max: 20, dropped: noop },
  countStreamSent: noop, chunks: new ChunkWriter(), keepAlives: { add: noop, remove: noop, currentTick: () => 0 },
  links: { fetch: () => Promise.reject(new Error('no next link here')) }, gone: { notify: noop }, log: { warn: noop },
  limits: DEFAULT_LIMITS, clock: systemClock,
};

let written = 0;
/** Just what a stream hold touches on a response that is not chunked (ChunkWriter then calls write). */
const sink = (): ServerResponse => ({
  on: noop, off: noop, socket: null, writableLength: 0, chunkedEncoding: false, writableEnded: false,
  writeHead: noop, flushHeaders: noop, end: noop, destroy: noop,
  write: (b: Buffer) => { written += b.length; return true; },
}) as unknown as ServerResponse;

for (let i = 0; i < N; i++) {
  new StreamHold(deps, sink(), {
    code: 200, reason: 'OK', headers: [], initialBody: Buffer.from('open\n'),
    channels: [{ name: 'c', filters: [] }], requestUrl: new URL('http://origin.test/'),
  });
}

const item = (i: number): PublishItem => ({
  channel: 'c', meta: {}, noSeq: false, formats: { 'http-stream': { action: 'send', content: Buffer.from(`data: ${i}\n\n`) } },
});
for (let i = 0; i < 50; i++) await bus.publish([item(i)]); // warm-up: JIT, buffers
const before = process.cpuUsage();
for (let i = 0; i < K; i++) await bus.publish([item(i)]);
const cpu = process.cpuUsage(before);
console.log(JSON.stringify({ streams: N, items: K, nsPerDelivery: Math.round(((cpu.user + cpu.system) * 1000) / (N * K) * 10) / 10, bytes: written }));
process.exit(0);
