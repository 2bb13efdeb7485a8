// Fan-out: N held streams (SSE or WebSocket) on one channel; K messages published one after
// another, each carrying its publish time. Measures publish→receive latency over every delivery,
// completeness, order, and the proxy's memory per held connection (RSS of its whole process
// tree, before and after the N connections).

import type { CollectResult, StreamKind, WaitResult } from '../agent-protocol.js';
import { publish } from '../http-client.js';
import { treeCpuMs } from '../proc.js';
import { encodeBenchMessage, MessageTag, monotonicMs } from '../wire/message.js';
import { summarizeLatencies } from '../wire/stats.js';
import { closeStreams, openStreams, settledRss, streamItem, sumOf, uniqueChannel, warmUp } from './common.js';
import { Better, type Metric, type ScenarioContext, type ScenarioResult } from './types.js';

export interface FanoutParams {
  kind: StreamKind;
  clients: number;
  messages: number;
  /** Per-message wait for every stream to receive it. */
  deliveryTimeoutMs?: number;
  /**
   * Pause between one message reaching every stream and the next publish. Longer than the
   * kernel's delayed-ACK timer (40 ms), so each publish starts on idle connections: otherwise a
   * proxy that leaves Nagle's algorithm on waits for the previous message's ACK, and the figure
   * measures the pacing of the test rather than the fan-out.
   */
  gapMs?: number;
}

export async function runFanout(ctx: ScenarioContext, p: FanoutParams): Promise<ScenarioResult> {
  const notes: string[] = [];
  const name = `${p.kind}-${p.clients}`;
  const kindLabel = p.kind === 'ws' ? 'WebSocket' : 'SSE';

  // Warm the proxy's code paths with a few streams so the baseline is not taken on a cold process.
  const warmChannel = uniqueChannel(`warm-${p.kind}`);
  await openStreams(ctx, p.kind, warmChannel, 10);
  await warmUp(ctx, p.kind, warmChannel, 2);
  await closeStreams(ctx);
  const rssBefore = await settledRss(ctx);

  const channel = uniqueChannel(`fan-${p.kind}`);
  const opened = await openStreams(ctx, p.kind, channel, p.clients);
  ctx.log(`${name}: opened ${opened.opened}/${p.clients} in ${opened.elapsedMs.toFixed(0)} ms`);
  if (opened.retried > 0 || opened.failed > 0) {
    notes.push(
      `${kindLabel} ${p.clients}: ${opened.retried} failed attempts to open a stream were retried; ${opened.failed} streams never opened` +
        ` (first errors: ${[...new Set(opened.firstErrors)].join('; ')})`,
    );
  }
  const warm = await warmUp(ctx, p.kind, channel);
  if (warm.reached < warm.open) notes.push(`warm-up probe reached only ${warm.reached} of ${warm.open} streams`);
  const rssAfter = await settledRss(ctx);

  // Start the agents' counters (deliveries, CPU time) afresh for the measured messages.
  await ctx.agents.all({ op: 'collect' });
  const timeoutMs = p.deliveryTimeoutMs ?? 15_000;
  let timeouts = 0;
  const gapMs = p.gapMs ?? 200;
  const cpuBeforeMs = treeCpuMs(ctx.target.rootPid);
  for (let seq = 1; seq <= p.messages; seq++) {
    await new Promise((r) => setTimeout(r, gapMs));
    await publish(ctx.target.publishPort, [streamItem(p.kind, channel, encodeBenchMessage(MessageTag.Measured, seq, monotonicMs()))]);
    const waits = await ctx.agents.all<WaitResult>({ op: 'wait-message', tag: 'M', seq, timeoutMs });
    if (waits.some((w) => w.timedOut)) timeouts++;
  }
  const proxyCpuMs = treeCpuMs(ctx.target.rootPid) - cpuBeforeMs;
  const collected = await ctx.agents.all<CollectResult>({ op: 'collect' });
  await closeStreams(ctx);

  const latencies = collected.flatMap((c) => c.latenciesMs);
  const summary = summarizeLatencies(latencies);
  const received = sumOf(collected, (c) => c.received);
  const expected = opened.opened * p.messages;
  const outOfOrder = sumOf(collected, (c) => c.outOfOrder);
  const duplicates = sumOf(collected, (c) => c.duplicates);
  const dropped = sumOf(collected, (c) => c.dropped);
  if (timeouts > 0) notes.push(`${timeouts} of ${p.messages} messages did not reach every stream within ${timeoutMs} ms`);
  if (dropped > 0) notes.push(`${dropped} streams were closed by the proxy during the run`);
  if (duplicates > 0) notes.push(`${duplicates} duplicate deliveries`);
  const agentCpuMs = collected.map((c) => c.cpuMs);
  if (received > 0) {
    notes.push(
      `${kindLabel} ${p.clients}: the client agents used ${((1000 * agentCpuMs.reduce((a, b) => a + b, 0)) / received).toFixed(1)} µs of CPU per delivery ` +
        `(per agent and message: ${agentCpuMs.map((c) => (c / p.messages).toFixed(0)).join(', ')} ms, gaps between messages included)`,
    );
  }
  if (received > 0) {
    notes.push(`${kindLabel} ${p.clients}: the proxy used ${((1000 * proxyCpuMs) / received).toFixed(1)} µs of CPU per delivery (all its processes, gaps between messages included)`);
  }
  const memPerConnKb = opened.opened > 0 ? (rssAfter - rssBefore) / opened.opened / 1024 : NaN;
  notes.push(
    `${kindLabel} ${p.clients}: RSS ${(rssBefore / 2 ** 20).toFixed(1)} MiB → ${(rssAfter / 2 ** 20).toFixed(1)} MiB; ` +
      `${received}/${expected} deliveries`,
  );

  const metrics: Metric[] = [
    { key: `${name}-p50`, label: `${kindLabel} fan-out N=${p.clients}: p50`, value: summary.p50Ms, unit: 'ms', better: Better.Lower, digits: 1 },
    { key: `${name}-p99`, label: `${kindLabel} fan-out N=${p.clients}: p99`, value: summary.p99Ms, unit: 'ms', better: Better.Lower, targetRatio: 0.5, digits: 1 },
    { key: `${name}-max`, label: `${kindLabel} fan-out N=${p.clients}: max`, value: summary.maxMs, unit: 'ms', better: Better.Lower, digits: 1 },
    {
      key: `${name}-complete`,
      label: `${kindLabel} fan-out N=${p.clients}: delivered`,
      value: expected === 0 ? 0 : (100 * received) / expected,
      unit: '%',
      better: Better.Higher,
      targetValue: 100,
      digits: 2,
    },
    { key: `${name}-order`, label: `${kindLabel} fan-out N=${p.clients}: out of order`, value: outOfOrder, unit: '', better: Better.Lower, targetValue: 0, digits: 0 },
    {
      key: `${name}-mem`,
      label: `Memory per held ${kindLabel} connection (N=${p.clients})`,
      value: memPerConnKb,
      unit: 'KB',
      better: Better.Lower,
      // The memory targets are stated for N ≥ 5,000, where fixed costs no longer dominate.
      ...(p.clients >= 5000 ? { targetRatio: p.kind === 'ws' ? 0.25 : 0.35 } : {}),
      digits: 1,
    },
  ];
  return { metrics, notes };
}
