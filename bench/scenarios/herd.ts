// Long-poll herd: N long-polls held on one channel; one publish answers them all and every
// client re-polls at once; repeated for R rounds. A round is fully delivered when all N clients
// got that round's message. Error statuses and connection errors are counted.

import type { OriginStats } from '../origin.js';
import type { OpenResult, PollStatus, RoundResult } from '../agent-protocol.js';
import { publish } from '../http-client.js';
import { encodeBenchMessage, MessageTag, monotonicMs } from '../wire/message.js';
import { summarizeLatencies } from '../wire/stats.js';
import { sumOf, uniqueChannel } from './common.js';
import { Better, type ScenarioContext, type ScenarioResult } from './types.js';

export interface HerdParams {
  clients: number;
  rounds: number;
  /**
   * The origin must have seen no poll for this long before a round is published: Pushpin
   * re-asks the origin about every held request 1 s after a channel's first subscription, and
   * a publish during that refresh would be lost by design, not by load.
   */
  quietMs?: number;
  /** Longest wait for everyone to be held again, and for a round's delivery. */
  roundTimeoutMs?: number;
}

export async function runHerd(ctx: ScenarioContext, p: HerdParams): Promise<ScenarioResult> {
  const notes: string[] = [];
  const quietMs = p.quietMs ?? 1500;
  const roundTimeoutMs = p.roundTimeoutMs ?? 30_000;
  const channel = uniqueChannel('herd');
  const path = `/poll?channel=${encodeURIComponent(channel)}`;
  // Read before any client polls: the first polls can reach the origin before poll-start returns.
  let pollsBefore = (await ctx.originStats()).poll;
  const opened = await ctx.agents.split<OpenResult>(p.clients, (share) => ({
    op: 'poll-start',
    count: share,
    // No retries here: a long-poll client that fails keeps re-polling by itself.
    target: { port: ctx.target.clientPort, path, srcAddrs: ctx.srcAddrs, window: ctx.window, retries: 0 },
  }));
  const failed = sumOf(opened, (o) => o.failed);
  if (failed > 0) notes.push(`${failed} of ${p.clients} first long-polls failed to connect (those clients kept retrying)`);

  let fullRounds = 0;
  let slowestReholdMs = NaN;
  const roundLatencies: number[] = [];
  const perRound: string[] = [];
  for (let round = 1; round <= p.rounds; round++) {
    const { held, heldAfterMs } = await waitAllHeld(ctx, p.clients, pollsBefore, quietMs, roundTimeoutMs);
    // After round 1, this is the herd itself: everyone re-polled at once; how long until all held?
    if (round > 1) slowestReholdMs = Number.isNaN(slowestReholdMs) ? heldAfterMs : Math.max(slowestReholdMs, heldAfterMs);
    pollsBefore = (await ctx.originStats()).poll;
    await publish(ctx.target.publishPort, [{ channel, response: encodeBenchMessage(MessageTag.Measured, round, monotonicMs()) }]);
    const results = await ctx.agents.all<RoundResult>({ op: 'poll-wait-round', round, timeoutMs: roundTimeoutMs });
    const delivered = sumOf(results, (r) => r.delivered);
    const lat = summarizeLatencies(results.flatMap((r) => r.latenciesMs));
    roundLatencies.push(lat.maxMs);
    if (delivered >= p.clients) fullRounds++;
    perRound.push(`${delivered}${held ? '' : ' (published before all were held)'} in ≤${lat.maxMs.toFixed(0)} ms`);
    ctx.log(`herd round ${round}: delivered ${delivered}/${p.clients}, last after ${lat.maxMs.toFixed(0)} ms`);
  }
  const statuses = await ctx.agents.all<PollStatus>({ op: 'poll-status' });
  await ctx.agents.all({ op: 'poll-stop' });

  const byStatus: Record<string, number> = {};
  for (const s of statuses) for (const [k, v] of Object.entries(s.statuses)) byStatus[k] = (byStatus[k] ?? 0) + v;
  const errorStatuses = Object.entries(byStatus)
    .filter(([k]) => k !== '200')
    .reduce((s, [, v]) => s + v, 0);
  const connErrors = sumOf(statuses, (s) => s.connectionErrors);
  notes.push(`long-poll herd N=${p.clients}: per round delivered ${perRound.join('; ')}`);
  notes.push(`long-poll herd statuses: ${JSON.stringify(byStatus)}; connection errors: ${connErrors}`);

  return {
    metrics: [
      {
        key: 'herd-rounds',
        label: `Long-poll herd N=${p.clients}: rounds fully delivered (of ${p.rounds})`,
        value: fullRounds,
        unit: '',
        better: Better.Higher,
        targetValue: p.rounds,
        digits: 0,
      },
      { key: 'herd-errors', label: `Long-poll herd N=${p.clients}: error statuses`, value: errorStatuses, unit: '', better: Better.Lower, targetValue: 0, digits: 0 },
      { key: 'herd-conn-errors', label: `Long-poll herd N=${p.clients}: connection errors`, value: connErrors, unit: '', better: Better.Lower, targetValue: 0, digits: 0 },
      {
        key: 'herd-rehold',
        label: `Long-poll herd N=${p.clients}: slowest re-poll herd, until all held again`,
        value: slowestReholdMs,
        unit: 'ms',
        better: Better.Lower,
        digits: 0,
      },
      {
        key: 'herd-round-max',
        label: `Long-poll herd N=${p.clients}: slowest round, last delivery`,
        value: roundLatencies.some(Number.isFinite) ? Math.max(...roundLatencies.filter(Number.isFinite)) : NaN,
        unit: 'ms',
        better: Better.Lower,
        digits: 0,
      },
    ],
    notes,
  };
}

/**
 * Until every client has a request outstanding, the origin has answered at least one poll per
 * client since `pollsBefore`, and it has then been quiet for `quietMs`. `heldAfterMs` is when the
 * first two held (checked every 100 ms), or the whole wait if they never did.
 */
async function waitAllHeld(
  ctx: ScenarioContext,
  clients: number,
  pollsBefore: number,
  quietMs: number,
  timeoutMs: number,
): Promise<{ held: boolean; heldAfterMs: number }> {
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  let heldAfterMs: number | undefined;
  while (Date.now() < deadline) {
    const statuses = await ctx.agents.all<PollStatus>({ op: 'poll-status' });
    const waiting = sumOf(statuses, (s) => s.waiting);
    const origin: OriginStats = await ctx.originStats();
    if (waiting >= clients && origin.poll - pollsBefore >= clients) {
      heldAfterMs ??= Date.now() - startedAt;
      if (origin.nowMs - origin.lastPollAtMs >= quietMs) return { held: true, heldAfterMs };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { held: false, heldAfterMs: heldAfterMs ?? Date.now() - startedAt };
}
