// Hot-path microbench: CPU per delivery of one published http-stream item to N filterless
// StreamHolds through the real Hub and MemoryBus, responses replaced by a no-op sink.
const root = process.argv[2]!;
const { Hub } = await import(`${root}/sidecar/src/hub/hub.ts`);
const { MemoryBus } = await import(`${root}/sidecar/src/bus/memory-bus.ts`);
const { StreamHold } = await import(`${root}/sidecar/src/holds/stream-hold.ts`);
const { ChunkWriter } = await import(`${root}/sidecar/src/holds/chunk-writer.ts`);
const { createMetrics } = await import(`${root}/sidecar/src/metrics.ts`);
const N = 5000, K = 1000;
const bus = new MemoryBus();
const metrics = createMetrics();
const hub = new Hub(bus, metrics);
const noop = () => undefined;
const deps = {
  hub, holds: { add: noop, delete: noop }, channelLimit: { max: 20, dropped: noop }, metrics,
  countStreamSent: noop, chunks: new ChunkWriter(), keepAlives: { add: noop, remove: noop, currentTick: () => 0 },
  links: { fetch: async () => { throw new Error('no'); } }, log: { warn: noop },
  limits: { maxQueueItems: 100, maxQueueBytes: 1 << 20, maxMetaKeys: 32, maxMetaBytes: 8192 },
  clock: { now: () => Date.now(), setTimeout: (f: () => void, ms: number) => setTimeout(f, ms), clearTimeout: (t: NodeJS.Timeout | undefined) => clearTimeout(t) },
};
let written = 0;
const makeRes = () => ({
  on: noop, off: noop, socket: null, writableLength: 0, chunkedEncoding: false, writableEnded: false,
  writeHead: noop, flushHeaders: noop, write: (b: Buffer) => { written += b.length; return true; }, end: noop, destroy: noop,
});
for (let i = 0; i < N; i++) {
  new StreamHold(deps, makeRes(), { code: 200, reason: 'OK', headers: [], initialBody: Buffer.from('x'), channels: [{ name: 'c', filters: [] }], requestUrl: new URL('http://o/') });
}
await new Promise((r) => setTimeout(r, 50));
const item = (i: number) => ({ channel: 'c', meta: {}, noSeq: false, formats: { 'http-stream': { action: 'send', content: Buffer.from(`data: ${i}\n\n`) } } });
for (let i = 0; i < 50; i++) await bus.publish([item(i)]); // warm-up
const before = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < K; i++) await bus.publish([item(i)]);
const cpu = process.cpuUsage(before);
const wall = Number(process.hrtime.bigint() - t0) / 1e6;
console.log(JSON.stringify({ nsPerDelivery: ((cpu.user + cpu.system) * 1000) / (N * K), wallMs: wall, written }));
process.exit(0);
