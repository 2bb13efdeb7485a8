// Reconnect storm (issue 15, item 1): N held SSE streams over C channels, publishes going on at a
// steady rate, every item's id also its SSE `id:`; then the disruption (kong-grip: SIGTERM to one
// of two sidecars; Pushpin: a restart). Clients reconnect with Last-Event-ID, a window of
// attempts in flight per agent. Reported: time until every moved client holds a stream again,
// failed reconnect attempts by status, ids lost and duplicated per client (summed), and the
// survivor's peak RSS and event-loop lag.

import type { OpenResult, StormMoved, StormReceiving, StormTally } from '../agent-protocol.js';
import { request } from '../http-client.js';
import { processTree, treeCpuMs } from '../proc.js';
import { cpuBetween, cpuByProcess, rssOf } from '../process-cpu.js';
import type { StormRig } from '../storm-rig.js';
import { monotonicMs } from '../wire/message.js';
import { promSample } from '../wire/prom-text.js';
import { summarizeLatencies } from '../wire/stats.js';
import { itemsDue, lastIds, stormEvent, stormItem } from '../wire/storm-ids.js';
import { OPEN_RETRIES, streamPath, sumOf, uniqueChannel } from './common.js';
import { Better, type Metric, type ScenarioContext, type ScenarioResult } from './types.js';

export interface StormParams {
  /** Streams held (N). */
  clients: number;
  /** Channels the streams are spread over (C). */
  channels: number;
  /** Items published per second, over all channels. */
  ratePerS: number;
  /** Publishing goes on this long after every client holds a stream again. */
  tailMs?: number;
  /** Bound on each wait (every client receiving; every client moved; every client at the last id); default 60 s + 10 ms per client. */
  waitMs?: number;
  /** How often the survivor's RSS is read (default 100 ms) and its /metrics (default 1000 ms: each scrape lists every handle and open file of each worker, work the storm would otherwise pay for). */
  rssEveryMs?: number;
  metricsEveryMs?: number;
}

export const STORM_SECTION = 'Storm run (kong-grip: SIGTERM to one of two sidecars; Pushpin: a restart, no history — not like for like)';
export const STORM_RESHELD_TARGET_MS = 5000;
const MIB = 2 ** 20;
const PUBLISH_TICK_MS = 50;

function stormWaitMs(p: StormParams): number {
  return p.waitMs ?? 60_000 + 10 * p.clients;
}

/** Longest the whole scenario should take (for the run's per-job deadline). */
export function stormBudgetMs(p: StormParams): number {
  const wait = stormWaitMs(p);
  const open = 120_000 + 6 * p.clients;
  return open + 3 * wait + (p.tailMs ?? 2000) + 60_000;
}

/**
 * Publishes the storm's items at a steady rate, one POST at a time (so every channel's ids reach
 * the proxy in order); a refused publish (a restarting proxy) is tried again with the same ids.
 */
class SteadyPublisher {
  published = 0;
  failedPosts = 0;
  firstErrors: string[] = [];
  private stopping = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly port: () => number,
    private readonly channels: string[],
    ratePerS: number,
  ) {
    const startedAt = monotonicMs();
    this.done = (async () => {
      while (!this.stopping) {
        const due = itemsDue(monotonicMs() - startedAt, ratePerS) - this.published;
        if (due > 0) await this.post(due);
        await new Promise((r) => setTimeout(r, PUBLISH_TICK_MS));
      }
    })();
  }

  private async post(count: number): Promise<void> {
    const items = [];
    for (let k = this.published; k < this.published + count; k++) {
      const { channelIndex, id } = stormItem(k, this.channels.length);
      items.push({ channel: this.channels[channelIndex]!, id: String(id), formats: { 'http-stream': { content: stormEvent(id) } } });
    }
    const body = JSON.stringify({ items });
    for (;;) {
      try {
        const res = await request(this.port(), 'POST', '/publish/', body, 10_000);
        if (res.status === 200) break;
        this.fail(`publish answered ${res.status}: ${res.body.trim().slice(0, 120)}`);
      } catch (err) {
        this.fail((err as Error).message);
      }
      if (this.stopping) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    this.published += count;
  }

  private fail(msg: string): void {
    this.failedPosts++;
    if (this.firstErrors.length < 3) this.firstErrors.push(msg);
  }

  async stop(): Promise<number> {
    this.stopping = true;
    await this.done;
    return this.published;
  }
}

/** Peaks of the survivor's RSS (all its processes) and of its event-loop lag (/metrics), sampled. */
class SurvivorSampler {
  peakRss = 0;
  peakLagS = 0;
  scrapes = 0;
  failedScrapes = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private scraping = false;

  constructor(rig: StormRig, rssEveryMs: number, metricsEveryMs: number) {
    // The process tree is looked up once a second (a walk of all of /proc), its RSS every tick.
    let pids: number[] = [];
    let treeAtMs = 0;
    this.timers.push(
      setInterval(() => {
        if (Date.now() - treeAtMs >= 1000) {
          pids = processTree(rig.rootPid);
          treeAtMs = Date.now();
        }
        this.peakRss = Math.max(this.peakRss, rssOf(pids));
      }, rssEveryMs),
    );
    const port = rig.metricsPort;
    if (port !== undefined) {
      this.timers.push(
        setInterval(() => {
          if (this.scraping) return;
          this.scraping = true;
          request(port, 'GET', '/metrics', undefined, 5000)
            .then((res) => {
              const lag = res.status === 200 ? promSample(res.body, 'nodejs_eventloop_lag_max_seconds') : undefined;
              if (lag === undefined) this.failedScrapes++;
              else {
                this.scrapes++;
                this.peakLagS = Math.max(this.peakLagS, lag);
              }
            })
            .catch(() => this.failedScrapes++)
            .finally(() => (this.scraping = false));
        }, metricsEveryMs),
      );
    }
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }
}

/** The survivor's catch-up figures from its /metrics (what reconnecting with Last-Event-ID cost it). */
async function historyCounters(port: number): Promise<string> {
  try {
    const res = await request(port, 'GET', '/metrics', undefined, 10_000);
    const read = (sample: string): string => String(promSample(res.body, sample) ?? 0);
    return (
      `the survivor's catch-ups (kong_grip_catch_ups_total): history ${read('kong_grip_catch_ups_total{result="history"}')}, ` +
      `not_found ${read('kong_grip_catch_ups_total{result="not_found"}')}, error ${read('kong_grip_catch_ups_total{result="error"}')}, ` +
      `overflow ${read('kong_grip_catch_ups_total{result="overflow"}')}; items they delivered ` +
      `${read('kong_grip_history_items_total{use="catch_up"}')} (kong_grip_history_items_total), of which from the recent items in memory ` +
      `${read('kong_grip_history_kept_items_total')} (kong_grip_history_kept_items_total; the rest read from JetStream, one request each)`
    );
  } catch (err) {
    return `the survivor's /metrics could not be read at the end: ${(err as Error).message}`;
  }
}

export async function runStorm(ctx: ScenarioContext, rig: StormRig, p: StormParams): Promise<ScenarioResult> {
  const notes: string[] = [];
  const n = p.clients;
  const tag = `storm N=${n} (${rig.name})`;
  const waitMs = stormWaitMs(p);
  const channels = Array.from({ length: p.channels }, (_, c) => uniqueChannel(`storm${c}`));

  const opens = await ctx.agents.split<OpenResult>(n, (share, agentIndex) => ({
    op: 'storm-open',
    count: share,
    target: {
      ports: rig.clientPorts,
      paths: channels.map((c) => streamPath('sse', c)),
      first: agentIndex,
      stride: ctx.agents.size,
      srcAddrs: ctx.srcAddrs,
      ...(ctx.srcAddrs.length > 0 && !ctx.srcAddrs.includes('127.0.0.1') ? { localPorts: { first: 20_000 + agentIndex, stride: ctx.agents.size } } : {}),
      window: ctx.window,
      retries: OPEN_RETRIES,
      deadlineMs: 120_000 + 6 * n,
    },
  }));
  const opened = sumOf(opens, (o) => o.opened);
  ctx.log(`${tag}: ${opened} streams open`);
  if (opened < n) notes.push(`${tag}: only ${opened} of ${n} streams opened (first errors: ${[...new Set(opens.flatMap((o) => o.firstErrors))].join('; ')})`);

  const publisher = new SteadyPublisher(() => rig.publishPort, channels, p.ratePerS);
  let sampler: SurvivorSampler | undefined;
  try {
    const receiving = await ctx.agents.all<StormReceiving>({ op: 'storm-wait-receiving', timeoutMs: waitMs });
    if (receiving.some((r) => r.timedOut)) {
      notes.push(`${tag}: before the disruption only ${sumOf(receiving, (r) => r.receiving)} of ${sumOf(receiving, (r) => r.clients)} clients had received an item within ${waitMs} ms`);
    }
    const marked = sumOf(await ctx.agents.all<{ marked: number }>({ op: 'storm-mark', ...(rig.victimPort !== undefined ? { port: rig.victimPort } : {}) }), (m) => m.marked);
    ctx.log(`${tag}: every client receiving; ${marked} clients to move; disruption`);
    sampler = new SurvivorSampler(rig, p.rssEveryMs ?? 100, p.metricsEveryMs ?? 1000);
    const cpuBefore = treeCpuMs(rig.rootPid);
    const perProcessBefore = cpuByProcess(process.pid);
    const disruptedAtMs = monotonicMs();
    await rig.disrupt();
    const moved = await ctx.agents.all<StormMoved>({ op: 'storm-await-moved', timeoutMs: waitMs });
    const movedInMs = monotonicMs() - disruptedAtMs;
    const perProcess = cpuBetween(perProcessBefore, cpuByProcess(process.pid));
    const lastReheldAtMs = Math.max(...moved.map((m) => m.lastReheldAtMs));
    const movedCount = sumOf(moved, (m) => m.moved);
    const reheldMs = moved.some((m) => m.timedOut) ? NaN : Math.max(0, lastReheldAtMs - disruptedAtMs);
    const dropped = moved.filter((m) => m.firstDroppedAtMs > 0);
    const droppedFromMs = dropped.length > 0 ? Math.min(...dropped.map((m) => m.firstDroppedAtMs)) - disruptedAtMs : NaN;
    const droppedToMs = dropped.length > 0 ? Math.max(...dropped.map((m) => m.lastDroppedAtMs)) - disruptedAtMs : NaN;
    const survivorCpuMs = rig.victimPort !== undefined ? treeCpuMs(rig.rootPid) - cpuBefore : NaN;
    const gaps = summarizeLatencies(moved.flatMap((m) => m.gapsMs));
    const timeline =
      `the moved clients' streams ended ${droppedFromMs.toFixed(0)}–${droppedToMs.toFixed(0)} ms after the disruption began, the last new one opened after ${reheldMs.toFixed(0)} ms; ` +
      `per client, from its stream's end to its new stream, p50 ${gaps.p50Ms.toFixed(0)} ms, p99 ${gaps.p99Ms.toFixed(0)} ms, max ${gaps.maxMs.toFixed(0)} ms`;
    ctx.log(`${tag}: ${movedCount}/${marked} clients hold a new stream; ${timeline}`);
    if (moved.some((m) => m.timedOut)) notes.push(`${tag}: only ${movedCount} of ${marked} clients held a new stream ${waitMs} ms after the disruption`);

    await new Promise((r) => setTimeout(r, p.tailMs ?? 2000));
    const published = await publisher.stop();
    const last = lastIds(published, p.channels);
    const tallies = await ctx.agents.all<StormTally>({ op: 'storm-wait-last', lastIds: last, timeoutMs: waitMs });
    sampler.stop();
    if (rig.metricsPort !== undefined) notes.push(`${tag}: ${await historyCounters(rig.metricsPort)}`);

    const statuses: Record<string, number> = {};
    for (const t of tallies) for (const [s, c] of Object.entries(t.statuses)) statuses[s] = (statuses[s] ?? 0) + c;
    const errorStatuses = sumOf(Object.values(statuses), (c) => c);
    const connectionErrors = sumOf(tallies, (t) => t.connectionErrors);
    const lost = sumOf(tallies, (t) => t.lost);
    const duplicated = sumOf(tallies, (t) => t.duplicated);
    const complete = sumOf(tallies, (t) => t.complete);
    const withoutIds = sumOf(tallies, (t) => t.withoutIds);
    const heldAtEnd = sumOf(tallies, (t) => t.held);
    if (tallies.some((t) => t.timedOut)) notes.push(`${tag}: ${complete} of ${n} clients had their channel's last id ${waitMs} ms after publishing stopped`);
    if (withoutIds > 0) notes.push(`${tag}: ${withoutIds} clients never received an item (not counted in lost)`);
    notes.push(
      `${tag}: ${rig.disruption}. ${opened} streams over ${p.channels} channels, ${marked} of them moved; ${published} items published at ${p.ratePerS}/s ` +
        `(ids sequential per channel, each item's id its SSE id:), through the disruption and ${p.tailMs ?? 2000} ms after every client held again; ` +
        `${sumOf(tallies, (t) => t.reconnects)} reconnects, failed attempts: ${errorStatuses} with an error status ${JSON.stringify(statuses)}, ${connectionErrors} without a response` +
        ` (first errors: ${[...new Set(tallies.flatMap((t) => t.firstErrors))].slice(0, 4).join('; ') || 'none'}); ${heldAtEnd} streams held at the end; ` +
        `${publisher.failedPosts} publish requests failed and were sent again${publisher.firstErrors.length > 0 ? ` (${publisher.firstErrors.join('; ')})` : ''}; ${timeline}`,
    );
    const survivorPids = new Set(processTree(rig.rootPid));
    notes.push(
      `${tag}: CPU per process from the disruption until every moved client held again (${(movedInMs / 1000).toFixed(1)} s, /proc), busiest first: ` +
        perProcess
          .filter((q) => q.cpuMs >= 10)
          .slice(0, 12)
          .map((q) => `${survivorPids.has(q.pid) ? 'survivor ' : ''}${q.name} [${q.pid}] ${q.cpuMs.toFixed(0)} ms`)
          .join(', '),
    );
    if (rig.metricsPort !== undefined) {
      notes.push(
        `${tag}: survivor's event-loop lag = the highest nodejs_eventloop_lag_max_seconds over ${sampler.scrapes} scrapes of its /metrics every ${p.metricsEveryMs ?? 1000} ms ` +
          `(in cluster mode the maximum over its processes, each reset at every scrape)${sampler.failedScrapes > 0 ? `; ${sampler.failedScrapes} scrapes failed` : ''}; ` +
          `its CPU from the disruption until every client held again ${survivorCpuMs.toFixed(0)} ms (all its processes, from /proc)`,
      );
    }

    const row = (key: string, label: string, m: Omit<Metric, 'key' | 'label' | 'section'>): Metric => ({ key: `storm-${key}`, label: `Storm: ${label}`, section: STORM_SECTION, ...m });
    const metrics: Metric[] = [
      row('clients', 'SSE streams held before the disruption', { value: opened, unit: '', better: Better.Higher, targetValue: n, digits: 0 }),
      row('reheld', 'time until every moved client holds a stream again', { value: reheldMs, unit: 'ms', better: Better.Lower, targetValue: STORM_RESHELD_TARGET_MS, digits: 0 }),
      row('error-statuses', 'error statuses during reconnect', { value: errorStatuses, unit: '', better: Better.Lower, targetValue: 0, digits: 0 }),
      row('connection-errors', 'connection errors during reconnect', { value: connectionErrors, unit: '', better: Better.Lower, digits: 0 }),
      row('lost', 'items lost (summed over clients)', { value: lost, unit: '', better: Better.Lower, targetValue: 0, digits: 0 }),
      row('duplicated', 'items duplicated (summed over clients)', { value: duplicated, unit: '', better: Better.Lower, targetValue: 0, digits: 0 }),
      row('rss', "survivor's peak RSS (all its processes)", { value: sampler.peakRss / MIB, unit: 'MiB', better: Better.Lower, digits: 0 }),
    ];
    if (rig.metricsPort !== undefined) metrics.push(row('lag', "survivor's peak event-loop lag", { value: sampler.peakLagS * 1000, unit: 'ms', better: Better.Lower, digits: 0 }));
    return { metrics, notes };
  } finally {
    sampler?.stop();
    await publisher.stop();
    await ctx.agents.all({ op: 'storm-close' });
  }
}
