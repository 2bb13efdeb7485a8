import type { Limits } from '../config.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { OriginClient } from '../origin/origin-client.js';
import type { ChunkWriter } from './chunk-writer.js';
import type { KeepAliveWheel } from './keep-alive-wheel.js';
import type { HoldRegistry } from './hold-registry.js';

/** What every hold needs from the sidecar, handed in explicitly (no module singletons). */
export interface HoldDeps {
  hub: Hub;
  origin: OriginClient;
  metrics: Metrics;
  log: Logger;
  limits: Limits;
  /** Shared by all stream holds: published content to sockets, framed once per item. */
  chunks: ChunkWriter;
  /** Shared by all stream holds: one timer for every keep-alive. */
  keepAlives: KeepAliveWheel;
  /** Counts one published item written to a stream (kong_grip_messages_sent_total, batched per tick). */
  countStreamSent: () => void;
  holds: HoldRegistry;
  /** Request path prefixes whose SSE Last-Event-ID stands for the prev-id of their channels. */
  lastEventIdPaths: readonly string[];
}

/** The channels a hold may subscribe to: the first maxChannelsPerConnection, the rest counted and dropped. */
export function limitChannels<T>(channels: readonly T[], deps: HoldDeps): T[] {
  const max = deps.limits.maxChannelsPerConnection;
  if (channels.length <= max) return [...channels];
  deps.metrics.channelsDropped.inc(channels.length - max);
  deps.log.warn({ requested: channels.length, max }, 'channels over the per-connection limit dropped');
  return channels.slice(0, max);
}

export function gripLastHeaders(lastIds: ReadonlyMap<string, string>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [channel, id] of lastIds) out.push(['Grip-Last', `${channel}; last-id=${id}`]);
  return out;
}

/** Seconds to a timer delay; Node timers cannot wait longer than 2^31-1 ms (about 24.8 days). */
export function timerMs(seconds: number): number {
  return Math.min(seconds * 1000, 2 ** 31 - 1);
}
