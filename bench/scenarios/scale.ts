// Scale run (issue 7, item 3): as many held SSE streams on one channel as the machine allows,
// spread over source addresses 127.0.0.x; what each held connection costs in memory, and whether
// a publish still reaches every one of them. Opening is bounded (a deadline, and a run of failed
// attempts), so a proxy that runs out of file descriptors is measured at what it held rather
// than stalling the run.

import os from 'node:os';
import type { CollectResult, WaitResult } from '../agent-protocol.js';
import { publish } from '../http-client.js';
import { treeCpuMs, treeOpenFiles, treeRssBytes } from '../proc.js';
import { encodeBenchMessage, MessageTag, monotonicMs } from '../wire/message.js';
import { summarizeLatencies } from '../wire/stats.js';
import { closeStreams, OPEN_RETRIES, openStreams, settledRss, streamItem, sumOf, uniqueChannel, warmUp } from './common.js';
import { Better, type Metric, type ScenarioContext, type ScenarioResult } from './types.js';

export interface ScaleParams {
  /** Streams to open (N). */
  connections: number;
  /** Messages published once they are held (K). */
  messages: number;
  /** No stream attempt starts later than this (default 2 min + 6 ms per stream). */
  openDeadlineMs?: number;
  /** Per agent: stop opening after this many failed attempts with no success between (default 2 × window). */
  maxFailuresInARow?: number;
  /** Per-message wait for every stream to receive it (default 60 s). */
  deliveryTimeoutMs?: number;
  /** Pause before each measured publish (default 500 ms; see FanoutParams.gapMs). */
  gapMs?: number;
  /** How often to log progress while opening (default 15 s). */
  progressEveryMs?: number;
}

export const SCALE_SECTION = 'Scale run';
/** Streams opened and closed before the baseline memory reading, so every process is warm. */
const WARM_STREAMS = 100;
const MIB = 2 ** 20;

/** Default bound on opening N streams: generous for a proxy that keeps up, finite for one that stalls. */
export function scaleOpenDeadlineMs(connections: number): number {
  return 120_000 + 6 * connections;
}

/** Longest the whole scenario should take with these parameters (for the run's per-job deadline). */
export function scaleBudgetMs(p: ScaleParams): number {
  const open = p.openDeadlineMs ?? scaleOpenDeadlineMs(p.connections);
  // Opening, in-flight attempts timing out, warm-up (5 × 20 s), memory readings, the messages, closing.
  return open + 60_000 + 100_000 + 10_000 + p.messages * ((p.deliveryTimeoutMs ?? 60_000) + (p.gapMs ?? 500)) + 60_000;
}

export async function runScale(ctx: ScenarioContext, p: ScaleParams): Promise<ScenarioResult> {
  const notes: string[] = [];
  const n = p.connections;
  const tag = `scale N=${n}`;
  const companionsRss = (): number[] => (ctx.target.companions ?? []).map((c) => treeRssBytes(c.pid));

  const warmChannel = uniqueChannel('warm-scale');
  await openStreams(ctx, 'sse', warmChannel, WARM_STREAMS);
  await warmUp(ctx, 'sse', warmChannel, 2);
  await closeStreams(ctx);
  const rssBefore = await settledRss(ctx, 2000);
  const companionsBefore = companionsRss();

  const channel = uniqueChannel('scale');
  const progress = setInterval(() => {
    const files = sumOf(treeOpenFiles(ctx.target.rootPid), (f) => f.openFiles);
    ctx.log(`${tag}: opening; the proxy's processes have ${files} files open`);
  }, p.progressEveryMs ?? 15_000);
  let opened;
  try {
    opened = await openStreams(ctx, 'sse', channel, n, {
      deadlineMs: p.openDeadlineMs ?? scaleOpenDeadlineMs(n),
      maxFailuresInARow: p.maxFailuresInARow ?? 2 * ctx.window,
    });
  } finally {
    clearInterval(progress);
  }
  ctx.log(`${tag}: opened ${opened.opened}/${n} in ${(opened.openedInMs / 1000).toFixed(1)} s; attempts ended after ${(opened.elapsedMs / 1000).toFixed(1)} s`);
  if (opened.retried > 0 || opened.failed > 0 || opened.stoppedEarly.length > 0) {
    notes.push(
      `${tag}: ${opened.opened} streams opened, ${opened.failed} failed after ${1 + OPEN_RETRIES} attempts, ${opened.retried} failed attempts retried, ` +
        `${n - opened.opened - opened.failed} never attempted; the last stream opened ${(opened.openedInMs / 1000).toFixed(1)} s after the first attempt, ` +
        `the last attempt ended after ${(opened.elapsedMs / 1000).toFixed(1)} s` +
        (opened.stoppedEarly.length > 0 ? `; ${[...new Set(opened.stoppedEarly)].join('; ')}` : '') +
        ` (first errors: ${[...new Set(opened.firstErrors)].join('; ') || 'none'})`,
    );
  }
  const openFiles = treeOpenFiles(ctx.target.rootPid);
  const warm = await warmUp(ctx, 'sse', channel, 5, 20_000);
  if (warm.reached < warm.open) notes.push(`${tag}: the warm-up probe reached only ${warm.reached} of ${warm.open} streams`);
  const rssAfter = await settledRss(ctx, 2000);
  const companionsAfter = companionsRss();

  // Counters afresh for the measured messages; `held` is what is open as they go out.
  const atStart = await ctx.agents.all<CollectResult>({ op: 'collect' });
  const held = sumOf(atStart, (c) => c.open);
  const timeoutMs = p.deliveryTimeoutMs ?? 60_000;
  let timeouts = 0;
  const cpuBeforeMs = treeCpuMs(ctx.target.rootPid);
  for (let seq = 1; seq <= p.messages; seq++) {
    await new Promise((r) => setTimeout(r, p.gapMs ?? 500));
    await publish(ctx.target.publishPort, [streamItem('sse', channel, encodeBenchMessage(MessageTag.Measured, seq, monotonicMs()))]);
    const waits = await ctx.agents.all<WaitResult>({ op: 'wait-message', tag: 'M', seq, timeoutMs });
    if (waits.some((w) => w.timedOut)) timeouts++;
  }
  const proxyCpuMs = treeCpuMs(ctx.target.rootPid) - cpuBeforeMs;
  const collected = await ctx.agents.all<CollectResult>({ op: 'collect' });
  await closeStreams(ctx);

  const summary = summarizeLatencies(collected.flatMap((c) => c.latenciesMs));
  const received = sumOf(collected, (c) => c.received);
  const expected = held * p.messages;
  const dropped = sumOf(collected, (c) => c.dropped);
  const duplicates = sumOf(collected, (c) => c.duplicates);
  const memPerConnKb = held > 0 ? (rssAfter - rssBefore) / held / 1024 : NaN;
  if (timeouts > 0) notes.push(`${tag}: ${timeouts} of ${p.messages} messages did not reach every stream within ${timeoutMs} ms`);
  if (dropped > 0) notes.push(`${tag}: ${dropped} streams were closed by the proxy while the messages went out`);
  if (duplicates > 0) notes.push(`${tag}: ${duplicates} duplicate deliveries`);
  notes.push(
    `${tag}: ${held} streams held over ${ctx.agents.size} client agents` +
      (ctx.srcAddrs.length > 0 ? ` from source addresses ${ctx.srcAddrs[0]}–${ctx.srcAddrs[ctx.srcAddrs.length - 1]}` : '') +
      `; RSS of the proxy's ${openFiles.length} processes ${(rssBefore / MIB).toFixed(0)} MiB → ${(rssAfter / MIB).toFixed(0)} MiB; ` +
      `open files per process ${openFiles.map((f) => f.openFiles).join(', ')}; ${received}/${expected} deliveries`,
  );
  if (received > 0) {
    const agentCpuMs = sumOf(collected, (c) => c.cpuMs);
    notes.push(
      `${tag}: CPU per delivery, the proxy's processes ${((1000 * proxyCpuMs) / received).toFixed(1)} µs, ` +
        `the client agents ${((1000 * agentCpuMs) / received).toFixed(1)} µs (both on the same ${os.cpus().length} cores; pauses between messages included)`,
    );
  }
  (ctx.target.companions ?? []).forEach((c, i) => {
    notes.push(
      `${tag}: ${c.name} (not counted above) RSS ${((companionsBefore[i] ?? 0) / MIB).toFixed(1)} MiB → ${((companionsAfter[i] ?? 0) / MIB).toFixed(1)} MiB`,
    );
  });

  const row = (key: string, label: string, m: Omit<Metric, 'key' | 'label' | 'section'>): Metric => ({ key: `scale-${key}`, label: `Scale N=${n}: ${label}`, section: SCALE_SECTION, ...m });
  const metrics: Metric[] = [
    row('held', 'SSE streams held', { value: held, unit: '', better: Better.Higher, targetValue: n, digits: 0 }),
    row('open-s', `time to open them`, { value: opened.openedInMs / 1000, unit: 's', better: Better.Lower, digits: 1 }),
    // The rate compares two proxies that held different numbers of streams; the time does not.
    row('open-rate', 'streams opened per second', { value: (1000 * opened.opened) / opened.openedInMs, unit: '/s', better: Better.Higher, digits: 0 }),
    row('rss', 'RSS of all the proxy\'s processes, streams held', { value: rssAfter / MIB, unit: 'MiB', better: Better.Lower, digits: 0 }),
    row('mem', 'memory per held stream', { value: memPerConnKb, unit: 'KB', better: Better.Lower, digits: 1 }),
    row('complete', `delivered (${p.messages} messages × streams held)`, {
      value: expected === 0 ? 0 : (100 * received) / expected,
      unit: '%',
      better: Better.Higher,
      targetValue: 100,
      digits: 2,
    }),
    row('order', 'out of order', { value: sumOf(collected, (c) => c.outOfOrder), unit: '', better: Better.Lower, targetValue: 0, digits: 0 }),
    row('p50', 'p50', { value: summary.p50Ms, unit: 'ms', better: Better.Lower, digits: 0 }),
    row('p99', 'p99', { value: summary.p99Ms, unit: 'ms', better: Better.Lower, digits: 0 }),
    row('max', 'max', { value: summary.maxMs, unit: 'ms', better: Better.Lower, digits: 0 }),
  ];
  return { metrics, notes };
}
