import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Fixed names, bounded labels (no channel, consumer or URL labels), prefix kong_grip_. Node and
// process metrics keep prom-client's standard names (process_cpu_seconds_total,
// nodejs_eventloop_lag_seconds, ...), which standard dashboards look for (docs/metrics.md).

export type HoldKindLabel = 'response' | 'stream' | 'ws';
export type CloseReason =
  | 'published' | 'timeout' | 'client_gone' | 'closed_by_publish' | 'completed' | 'slow_consumer' | 'origin_error' | 'shutdown' | 'error'
  // WebSocket sessions: a clean client close, a CLOSE/DISCONNECT from the origin, an OPEN the origin refused.
  | 'client_closed' | 'origin_closed' | 'rejected'
  // WebSocket sessions closed with 1008 for sending over ws_messages_per_second / ws_burst.
  | 'rate_limited';

export function createMetrics(options: { collectDefaults?: boolean } = {}) {
  const registry = new Registry();
  if (options.collectDefaults) collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    requests: new Counter({
      name: 'kong_grip_requests_total', help: 'Client requests by outcome',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
    connections: new Gauge({
      name: 'kong_grip_connections', help: 'Held connections by kind',
      labelNames: ['kind'] as const, registers: [registry],
    }),
    holdsClosed: new Counter({
      name: 'kong_grip_holds_closed_total', help: 'Held connections closed, by kind and reason',
      labelNames: ['kind', 'reason'] as const, registers: [registry],
    }),
    holdDuration: new Histogram({
      name: 'kong_grip_hold_duration_seconds', help: 'How long connections were held',
      labelNames: ['kind'] as const, buckets: [0.1, 1, 5, 30, 60, 300, 1800, 3600], registers: [registry],
    }),
    subscribedChannels: new Gauge({
      name: 'kong_grip_channels', help: 'Channels with at least one local subscriber', registers: [registry],
    }),
    publishItems: new Counter({
      name: 'kong_grip_publish_items_total', help: 'Publish items accepted, by source',
      labelNames: ['source'] as const, registers: [registry],
    }),
    publishRejected: new Counter({
      name: 'kong_grip_publish_rejected_total', help: 'Publish requests refused, by reason',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    messagesSent: new Counter({
      name: 'kong_grip_messages_sent_total', help: 'Published items delivered to connections, by kind',
      labelNames: ['kind'] as const, registers: [registry],
    }),
    deliveriesDropped: new Counter({
      name: 'kong_grip_deliveries_dropped_total', help: 'Published items not delivered as published to a connection, by reason (patch: its body-patch failed; filter_error: a subscription filter failed on it)',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    channelsDropped: new Counter({
      name: 'kong_grip_channels_dropped_total', help: 'Channels ignored because a connection exceeded the per-connection limit',
      registers: [registry],
    }),
    subscriberRefreshes: new Counter({
      name: 'kong_grip_subscriber_refreshes_total', help: 'Holds refreshed because their channel went live on the bus, by cause',
      labelNames: ['cause'] as const, registers: [registry],
    }),
    natsConnected: new Gauge({
      name: 'kong_grip_nats_connected', help: '1 while the NATS connection is up (0 while down, or without NATS)',
      registers: [registry], aggregator: 'min',
    }),
    natsDisconnects: new Counter({
      name: 'kong_grip_nats_disconnects_total', help: 'Times the NATS connection was lost', registers: [registry],
    }),
    natsPayloadsInvalid: new Counter({
      name: 'kong_grip_nats_payloads_invalid_total', help: 'NATS messages dropped because they were not valid publish items',
      registers: [registry],
    }),
    handoffStoreUnavailable: new Counter({
      name: 'kong_grip_handoff_store_unavailable_total',
      help: 'Handed-off requests refused (503) because the fleet-wide nonce store (NATS JetStream KV) did not answer',
      registers: [registry],
    }),
    handoffStoreOutage: new Gauge({
      name: 'kong_grip_handoff_store_outage',
      help: 'Kong mode: 1 while the fleet-wide nonce store does not answer (handed-off requests get 503), else 0; summed over workers',
      registers: [registry],
    }),
    handoffRejected: new Counter({
      name: 'kong_grip_handoff_rejected_total', help: 'Client requests refused in Kong mode, by handoff failure',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    // Realtime API management (docs/kong.md): connection quotas, WebSocket message limits, usage.
    // No consumer label: per-consumer figures go to NATS (grip.usage), totals stay here.
    quotaRefused: new Counter({
      name: 'kong_grip_quota_refused_total',
      help: 'Connections refused (429) because their consumer held max_connections_per_consumer across the fleet',
      registers: [registry],
    }),
    quotaStoreUnavailable: new Counter({
      name: 'kong_grip_quota_store_unavailable_total',
      help: 'Connections admitted without the quota check because the fleet-wide lease store (NATS JetStream KV) did not answer',
      registers: [registry],
    }),
    quotaStoreOutage: new Gauge({
      name: 'kong_grip_quota_store_outage',
      help: '1 while the fleet-wide lease store does not answer (quotas not enforced), else 0; summed over workers',
      registers: [registry],
    }),
    wsRateLimited: new Counter({
      name: 'kong_grip_ws_rate_limited_total',
      help: 'WebSocket connections closed with 1008 for sending more than ws_messages_per_second / ws_burst',
      registers: [registry],
    }),
    usageMessages: new Counter({
      name: 'kong_grip_usage_messages_total', help: 'Published messages delivered to clients, as metered (added when each usage period closes)',
      registers: [registry],
    }),
    usageBytes: new Counter({
      name: 'kong_grip_usage_bytes_total', help: 'Bytes of published content delivered to clients, as metered (added when each usage period closes)',
      registers: [registry],
    }),
    usageConnectionSeconds: new Counter({
      name: 'kong_grip_usage_connection_seconds_total', help: 'Connection time of metered connections (added when each usage period closes)',
      registers: [registry],
    }),
    usageRecords: new Counter({
      name: 'kong_grip_usage_records_total', help: 'Usage records published on NATS, by result (published, failed)',
      labelNames: ['result'] as const, registers: [registry],
    }),
    sequencerItems: new Counter({
      name: 'kong_grip_sequencer_items_total',
      help: 'Items the per-channel sequencer held back or dropped, by outcome (waited, released_by_timeout, duplicate, overflow)',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
    catchUps: new Counter({
      name: 'kong_grip_catch_ups_total',
      help: 'New holds whose prev-id was not the channel position, by how they were brought up to date',
      labelNames: ['result'] as const, registers: [registry],
    }),
    historyItems: new Counter({
      name: 'kong_grip_history_items_total', help: 'Items read from the JetStream history, by use (resume, catch_up)',
      labelNames: ['use'] as const, registers: [registry],
    }),
    historyKeptItems: new Counter({
      name: 'kong_grip_history_kept_items_total',
      help: 'Items catch-ups took from the recent items kept in memory per channel, instead of reading the JetStream history',
      registers: [registry],
    }),
    historyResumes: new Counter({
      name: 'kong_grip_history_resumes_total', help: 'Channels resumed from JetStream history, by cause (reconnect, gap)',
      labelNames: ['cause'] as const, registers: [registry],
    }),
    historyDuplicates: new Counter({
      name: 'kong_grip_history_duplicates_total', help: 'Stored items received again and dropped (already delivered)',
      registers: [registry],
    }),
    draining: new Gauge({
      name: 'kong_grip_draining', help: '1 while the process drains after SIGTERM', registers: [registry], aggregator: 'max',
    }),
    originErrors: new Counter({
      name: 'kong_grip_origin_errors_total', help: 'Failures talking to the origin, by kind',
      labelNames: ['kind'] as const, registers: [registry],
    }),
    // Grip-Link rel=gone notifications (origin/gone-link.ts): sent (the origin answered),
    // refused (outbound policy), failed (the origin did not answer).
    goneLinks: new Counter({
      name: 'kong_grip_gone_links_total', help: 'Gone-link notifications to the origin, by outcome',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
    // Client connections (server/admission.ts), read when scraped, not updated per connection:
    // `active` (a request in progress or a WebSocket session: what limits.maxConnections bounds)
    // and `idle` (no complete request yet: limits.maxIdleConnections). Refusals and closes are
    // counted in kong_grip_requests_total{outcome} (over_limit, idle_limit, header_timeout, body_timeout).
    clientConnections: new Gauge({
      name: 'kong_grip_client_connections', help: 'Client connections by state (active: request in progress or WebSocket; idle: no complete request yet)',
      labelNames: ['state'] as const, registers: [registry],
      collect() {
        const counts = m.readClientConnections();
        this.set({ state: 'active' }, counts.active);
        this.set({ state: 'idle' }, counts.idle);
      },
    }),
    /** Set by the client server: how to read its connection counts when scraped. */
    readClientConnections: (): { active: number; idle: number } => ({ active: 0, idle: 0 }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * A counter increment for the delivery path: events are summed and added to the counter once
 * per tick, since each prom-client inc() with labels hashes them and allocates.
 */
export function countPerTick(add: (n: number) => void): () => void {
  let pending = 0;
  const flush = (): void => {
    const n = pending;
    pending = 0;
    add(n);
  };
  return () => {
    if (pending++ === 0) process.nextTick(flush);
  };
}
