// New held streams per second: open M SSE streams as fast as the proxy accepts them (a bounded
// number of attempts in flight per agent); each one costs the proxy an origin round trip and a
// subscription. Rate = streams opened / time from the first attempt to the last response head.
// A warm-up round opens and closes a share of M first, on both systems alike, so the rate is the
// steady one: not the first second of a just-started process (JIT compilation for Node, the
// first connections to the origin for both).

import { treeCpuMs } from '../proc.js';
import { closeStreams, openStreams, uniqueChannel } from './common.js';
import { Better, type ScenarioContext, type ScenarioResult } from './types.js';

const WARMUP_STREAMS = 1000;
const WARMUP_SETTLE_MS = 500;

export async function runStreamRate(ctx: ScenarioContext, p: { streams: number; warmup?: number }): Promise<ScenarioResult> {
  const notes: string[] = [];
  const channel = uniqueChannel('rate');
  const warmup = p.warmup ?? Math.min(WARMUP_STREAMS, Math.ceil(p.streams / 5));
  const warm = await openStreams(ctx, 'sse', uniqueChannel('rate-warmup'), warmup);
  await closeStreams(ctx);
  // The proxy tears the warm-up connections down in the background; let that finish first.
  await new Promise((r) => setTimeout(r, WARMUP_SETTLE_MS));
  notes.push(`new streams: warm-up of ${warm.opened} streams opened and closed first (${warm.elapsedMs.toFixed(0)} ms), not counted`);
  const cpuBeforeMs = treeCpuMs(ctx.target.rootPid);
  const opened = await openStreams(ctx, 'sse', channel, p.streams);
  const proxyCpuMs = treeCpuMs(ctx.target.rootPid) - cpuBeforeMs;
  await closeStreams(ctx);
  if (opened.retried > 0 || opened.failed > 0) {
    notes.push(
      `new streams: ${opened.retried} failed attempts were retried (the time includes the retries); ${opened.failed} streams never opened` +
        ` (first errors: ${[...new Set(opened.firstErrors)].join('; ')})`,
    );
  }
  const rate = (opened.opened / opened.elapsedMs) * 1000;
  notes.push(`new streams: ${opened.opened} held in ${opened.elapsedMs.toFixed(0)} ms (${ctx.window} attempts in flight per agent × ${ctx.agents.size} agents)`);
  if (opened.opened > 0) notes.push(`new streams: the proxy used ${((1000 * proxyCpuMs) / opened.opened).toFixed(0)} µs of CPU per new stream (all its processes)`);
  ctx.log(`streams: ${opened.opened}/${p.streams} in ${opened.elapsedMs.toFixed(0)} ms`);
  return {
    metrics: [{ key: 'stream-rate', label: `New held SSE streams per second (M=${p.streams})`, value: rate, unit: '/s', better: Better.Higher, targetRatio: 3, digits: 0 }],
    notes,
  };
}
