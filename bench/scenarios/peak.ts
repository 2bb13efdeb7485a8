// Peak deliveries per second: N SSE streams on one channel, K messages published back to back
// (several items per publish request, a few requests in flight). Rate = deliveries received /
// time from the first publish to the last delivery. Order is not judged here: concurrent
// publish requests may legitimately be applied in either order.

import type { CollectResult, WaitResult } from '../agent-protocol.js';
import { publish, type PublishContent } from '../http-client.js';
import { treeCpuMs } from '../proc.js';
import { encodeBenchMessage, MessageTag, monotonicMs } from '../wire/message.js';
import { closeStreams, openStreams, streamItem, sumOf, uniqueChannel, warmUp } from './common.js';
import { Better, type ScenarioContext, type ScenarioResult } from './types.js';

export interface PeakParams {
  clients: number;
  messages: number;
  itemsPerRequest?: number;
  requestsInFlight?: number;
  timeoutMs?: number;
}

export async function runPeak(ctx: ScenarioContext, p: PeakParams): Promise<ScenarioResult> {
  const notes: string[] = [];
  const perRequest = p.itemsPerRequest ?? 10;
  const inFlight = p.requestsInFlight ?? 2;
  const channel = uniqueChannel('peak');
  const opened = await openStreams(ctx, 'sse', channel, p.clients);
  if (opened.retried > 0 || opened.failed > 0) notes.push(`peak: ${opened.retried} failed attempts to open a stream were retried; ${opened.failed} never opened`);
  await warmUp(ctx, 'sse', channel);

  const cpuBeforeMs = treeCpuMs(ctx.target.rootPid);
  const startedAtMs = monotonicMs();
  let nextSeq = 1;
  const lane = async (): Promise<void> => {
    while (nextSeq <= p.messages) {
      const batch: PublishContent[] = [];
      for (let k = 0; k < perRequest && nextSeq <= p.messages; k++) {
        batch.push(streamItem('sse', channel, encodeBenchMessage(MessageTag.Measured, nextSeq++, monotonicMs())));
      }
      await publish(ctx.target.publishPort, batch);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const publishedMs = monotonicMs() - startedAtMs;
  // The highest sequence number is in the last batch of one of the lanes; wait for every item.
  const timeoutMs = p.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (let seq = 1; seq <= p.messages; seq++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const waits = await ctx.agents.all<WaitResult>({ op: 'wait-message', tag: 'M', seq, timeoutMs: left });
    if (waits.some((w) => w.timedOut)) break;
  }
  const proxyCpuMs = treeCpuMs(ctx.target.rootPid) - cpuBeforeMs;
  const collected = await ctx.agents.all<CollectResult>({ op: 'collect' });
  await closeStreams(ctx);

  const received = sumOf(collected, (c) => c.received);
  const expected = opened.opened * p.messages;
  const lastAt = Math.max(...collected.map((c) => c.lastReceivedAtMs));
  const dropped = sumOf(collected, (c) => c.dropped);
  if (dropped > 0) notes.push(`peak: ${dropped} streams were closed by the proxy during the run`);
  const rate = received / ((lastAt - startedAtMs) / 1000);
  notes.push(
    `peak: ${received}/${expected} deliveries in ${(lastAt - startedAtMs).toFixed(0)} ms ` +
      `(publishing took ${publishedMs.toFixed(0)} ms: ${p.messages} items, ${perRequest} per request, ${inFlight} requests in flight)`,
  );
  if (received > 0) notes.push(`peak: the proxy used ${((1000 * proxyCpuMs) / received).toFixed(2)} µs of CPU per delivery (all its processes)`);
  ctx.log(`peak: ${received}/${expected} in ${(lastAt - startedAtMs).toFixed(0)} ms`);
  return {
    metrics: [
      { key: 'peak-rate', label: `Peak deliveries per second (N=${p.clients}, ${p.messages} messages)`, value: rate, unit: '/s', better: Better.Higher, targetRatio: 1, digits: 0 },
      {
        key: 'peak-complete',
        label: `Peak run: delivered`,
        value: expected === 0 ? 0 : (100 * received) / expected,
        unit: '%',
        better: Better.Higher,
        targetValue: 100,
        digits: 2,
      },
    ],
    notes,
  };
}
