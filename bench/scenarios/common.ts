// Steps several scenarios share: opening streams, warming up a channel, reading memory.

import type { ConnectTarget, OpenResult, StreamKind, WaitResult } from '../agent-protocol.js';
import { publish, type PublishContent } from '../http-client.js';
import { treeRssBytes } from '../proc.js';
import { encodeBenchMessage, MessageTag, monotonicMs } from '../wire/message.js';
import type { ScenarioContext } from './types.js';

export function sumOf<T>(xs: T[], f: (x: T) => number): number {
  let s = 0;
  for (const x of xs) s += f(x);
  return s;
}

export function uniqueChannel(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}`;
}

export function streamPath(kind: StreamKind, channel: string): string {
  return `/${kind}?channel=${encodeURIComponent(channel)}`;
}

/** A publish item carrying `text` in the format a stream of `kind` receives. */
export function streamItem(kind: StreamKind, channel: string, text: string): PublishContent {
  return kind === 'ws' ? { channel, ws: text } : { channel, stream: `data: ${text}\n\n` };
}

/**
 * First explicit local port on a source address (see ConnectTarget.localPorts): above the
 * usual fixed service ports; 20,000 connections per address end near 40,000.
 */
const FIRST_LOCAL_PORT = 20_000;

function hasPrivateSourceAddresses(ctx: ScenarioContext): boolean {
  return ctx.srcAddrs.length > 0 && !ctx.srcAddrs.includes('127.0.0.1');
}

/** Further attempts for a stream that failed to open, as a browser's EventSource would make. */
export const OPEN_RETRIES = 3;

export interface Opened {
  opened: number;
  failed: number;
  retried: number;
  firstErrors: string[];
  /** Why agents stopped opening before every stream was attempted (see OpenLimits), one per agent that did. */
  stoppedEarly: string[];
  /** From the first attempt to the last attempt's end. */
  elapsedMs: number;
  /** From the first attempt to the last stream that opened (less than elapsedMs when the last attempts failed). */
  openedInMs: number;
}

export async function openStreams(
  ctx: ScenarioContext,
  kind: StreamKind,
  channel: string,
  count: number,
  limits: Pick<ConnectTarget, 'deadlineMs' | 'maxFailuresInARow'> = {},
): Promise<Opened> {
  const results = await ctx.agents.split<OpenResult>(count, (share, agentIndex) => ({
    op: 'open-streams',
    kind,
    count: share,
    target: {
      port: ctx.target.clientPort,
      path: streamPath(kind, channel),
      srcAddrs: ctx.srcAddrs,
      // On 127.0.0.2… (addresses nothing else binds) each agent takes its own series of ports.
      ...(hasPrivateSourceAddresses(ctx) ? { localPorts: { first: FIRST_LOCAL_PORT + agentIndex, stride: ctx.agents.size } } : {}),
      window: ctx.window,
      retries: OPEN_RETRIES,
      ...limits,
    },
  }));
  const opened = results.reduce((s, r) => s + r.opened, 0);
  if (opened === 0 && count > 0) {
    throw new Error(`no ${kind} stream opened (first errors: ${[...new Set(results.flatMap((r) => r.firstErrors))].join('; ')})`);
  }
  return {
    opened,
    failed: results.reduce((s, r) => s + r.failed, 0),
    retried: results.reduce((s, r) => s + r.retried, 0),
    firstErrors: results.flatMap((r) => r.firstErrors).slice(0, 5),
    stoppedEarly: results.flatMap((r) => (r.stoppedEarly === undefined ? [] : [r.stoppedEarly])),
    elapsedMs: Math.max(...results.map((r) => r.finishedAtMs)) - Math.min(...results.map((r) => r.startedAtMs)),
    openedInMs: Math.max(...results.map((r) => r.lastOpenedAtMs)) - Math.min(...results.map((r) => r.startedAtMs)),
  };
}

/**
 * Publishes warm-up probes until every open stream has received one (so the proxy has finished
 * subscribing every connection before anything is measured). Returns how many streams it reached.
 */
export async function warmUp(ctx: ScenarioContext, kind: StreamKind, channel: string, attempts = 5, timeoutMs = 5000): Promise<{ reached: number; open: number }> {
  let last = { reached: 0, open: 0 };
  for (let seq = 1; seq <= attempts; seq++) {
    await publish(ctx.target.publishPort, [streamItem(kind, channel, encodeBenchMessage(MessageTag.Warmup, seq, monotonicMs()))]);
    const results = await ctx.agents.all<WaitResult>({ op: 'wait-message', tag: 'W', seq, timeoutMs });
    last = { reached: sumOf(results, (r) => r.reached), open: sumOf(results, (r) => r.open) };
    if (!results.some((r) => r.timedOut)) return last;
  }
  return last;
}

/** RSS of the proxy's whole process tree after letting it settle for `settleMs`. */
export async function settledRss(ctx: ScenarioContext, settleMs = 1000): Promise<number> {
  await new Promise((r) => setTimeout(r, settleMs));
  return treeRssBytes(ctx.target.rootPid);
}

export async function closeStreams(ctx: ScenarioContext): Promise<void> {
  await ctx.agents.all({ op: 'close-streams' });
  await ctx.agents.all({ op: 'collect' });
}
