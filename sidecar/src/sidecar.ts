import { hostname, networkInterfaces } from 'node:os';
import type { Bus, BusEvent } from './bus/bus.js';
import { MemoryBus } from './bus/memory-bus.js';
import { NatsBus } from './bus/nats-bus.js';
import { withoutCredentials, type Config } from './config.js';
import { ChunkWriter } from './holds/chunk-writer.js';
import { systemClock } from './holds/clock.js';
import { createChannelLimit } from './holds/hold-ports.js';
import { HoldRegistry } from './holds/hold-registry.js';
import { KeepAliveWheel } from './holds/keep-alive-wheel.js';
import { ProxySession, type ProxySessionDeps } from './holds/proxy-session.js';
import { Hub } from './hub/hub.js';
import { HandoffVerifier, type NonceStore } from './kong/handoff-verifier.js';
import { FleetNonceStore } from './kong/nonce-store.js';
import { listenFailure } from './listen-failure.js';
import { createLogger, type Logger } from './log.js';
import { countPerTick, createMetrics, type Metrics } from './metrics.js';
import { GripSigner } from './origin/grip-sig.js';
import { GoneLinkSender } from './origin/gone-link.js';
import { LinkFetcher } from './origin/link-fetch.js';
import { OriginClient } from './origin/origin-client.js';
import { createOutboundPolicy, type OutboundCheck } from './origin/outbound-policy.js';
import { createWsEventsPoster } from './origin/ws-origin.js';
import { PublishGate, startControlServer, type ControlServer } from './publish/control-server.js';
import { Admission } from './server/admission.js';
import { ClientServer } from './server/client-server.js';
import { createTargetResolver } from './server/request-target.js';
import { ConnectionQuota } from './quota/connection-quota.js';
import { UsagePublisher } from './usage/usage-publisher.js';
import { WsUpgradeHandler } from './server/ws-upgrade.js';

// Wires one sidecar together: the client server, the control server, the bus, the hub, the
// origin client and the holds. Wiring only: components get their dependencies from here; nothing is a module-level singleton, so a test
// can run two sidecars in one process.

export interface SidecarOptions {
  config: Readonly<Config>;
  log?: Logger;
  /** Defaults to NATS when configured, else an in-process bus. */
  bus?: Bus;
  /**
   * Serve the control port (publish API, /metrics, /healthz) here. Cluster workers do not: the
   * primary serves it for all of them (cluster.ts).
   */
  serveControl?: boolean;
  /** Kong mode's fleet-wide nonce store; defaults to the JetStream KV store on config.nats (tests pass a fake). */
  nonceStore?: NonceStore & { close?(): Promise<void> };
  /** Kong mode's connection quota; defaults to leases in JetStream KV on config.nats (tests pass another). */
  quota?: ConnectionQuota;
}

export interface Sidecar {
  readonly clientPort: number;
  /** 0 when this process does not serve the control port. */
  readonly controlPort: number;
  readonly metrics: Metrics;
  readonly hub: Hub;
  readonly bus: Bus;
  /**
   * Graceful stop (SIGTERM): stop accepting, end every held connection so its client
   * reconnects elsewhere, hand accepted publishes to the bus, wait for clients to go for at
   * most shutdown.drainMs, then cut what is left and close the bus.
   */
  close(): Promise<void>;
}

/** How long a shutdown waits for gone-link POSTs under way before it closes origin connections. */
const GONE_FLUSH_MS = 2000;

export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const { config } = options;
  const log = options.log ?? createLogger(config.logLevel);
  const metrics = createMetrics({ collectDefaults: true });
  const bus = options.bus ?? createBus(config, log);
  const stopBusMetrics = recordBusMetrics(bus, metrics);
  const hub = new Hub(bus, metrics, { ...config.hold, sequencing: config.sequencing }, log);
  const signer = config.sigKey === undefined ? undefined : new GripSigner(config.sigKey, config.sigIss);
  const origin = new OriginClient({
    ...(signer ? { signer } : {}), timeoutMs: config.limits.originTimeoutMs, bodyTimeoutMs: config.limits.originBodyTimeoutMs,
  });
  const keepAlives = new KeepAliveWheel();
  const holds = new HoldRegistry();
  // Next links go through the outbound policy, built once both listeners' ports are known.
  let outbound: OutboundCheck | undefined;
  const links = new LinkFetcher(origin, config.limits.maxInstructBodyBytes, () => outbound);
  // Gone links likewise: the same policy, the same origin client (Grip-Sig).
  const gone = new GoneLinkSender(origin, () => outbound, metrics, log);
  // Each HTTP hold gets only the ports it uses; these objects are shared by all of them.
  const holdPorts = {
    hub, holds, metrics, clock: systemClock, gone, channelLimit: createChannelLimit(config.limits.maxChannelsPerConnection, metrics, log),
  };
  const sessions: ProxySessionDeps = {
    origin, metrics, log, limits: config.limits,
    lastEventIdPaths: config.nats?.jetstream?.lastEventIdPaths ?? [],
    responseHolds: { ...holdPorts, log, limits: config.limits },
    streamHolds: {
      ...holdPorts, log, limits: config.limits,
      chunks: new ChunkWriter(),
      keepAlives,
      countStreamSent: countPerTick((n) => metrics.messagesSent.inc({ kind: 'stream' }, n)),
      links,
    },
  };
  const publishGate = new PublishGate();
  const admission = new Admission(config.limits.maxConnections);
  // Kong mode: every accepted nonce is claimed once for the whole fleet (loadConfig requires NATS).
  const nonceStore = config.kong === undefined ? undefined : options.nonceStore ?? FleetNonceStore.connect({
    servers: config.nats?.servers ?? [], maxAgeSec: config.kong.maxAgeSec,
    reconnectWaitMs: config.nats?.reconnectWaitMs ?? 1000, metrics, log: log.child({ component: 'nonces' }),
  });
  // Kong mode: max_connections_per_consumer, counted for the whole fleet (docs/kong.md, "Connection quota").
  const quota = config.kong === undefined ? undefined : options.quota ?? ConnectionQuota.connect({
    servers: config.nats?.servers ?? [], leaseSec: config.kong.connectionLeaseSec,
    reconnectWaitMs: config.nats?.reconnectWaitMs ?? 1000, metrics, log: log.child({ component: 'quota' }),
  });
  // Usage records per consumer and channel on NATS (docs/kong.md, "Usage metering").
  const usage = config.usage === undefined || config.nats === undefined ? undefined : new UsagePublisher({
    servers: config.nats.servers, settings: config.usage, sidecar: `${hostname()}:${process.pid}`,
    reconnectWaitMs: config.nats.reconnectWaitMs, metrics, log: log.child({ component: 'usage' }),
  });
  const wsUpgrades = new WsUpgradeHandler({
    hub, metrics, log, limits: config.limits, ws: config.ws, post: createWsEventsPoster(origin, config.ws.maxResponseBytes),
    keepAlives, clock: systemClock, gone, onSessionEnded: () => admission.release('ws'),
  });
  // Whatever was started before a listener failed is stopped again, so the caller gets the
  // error and no half-started sidecar keeps the process alive.
  const stopStarted = async (): Promise<void> => {
    await nonceStore?.close?.();
    origin.close();
    keepAlives.close();
    hub.close();
    stopBusMetrics();
    await bus.close();
  };
  const clientServer = await ClientServer.start({
    host: config.listen.host,
    port: config.listen.port,
    admission,
    limits: config.limits,
    clock: systemClock,
    // Kong mode: the origin and the caller's identity come from the grip plugin's signed handoff.
    resolveTarget: createTargetResolver({
      handoff: config.kong === undefined ? undefined : new HandoffVerifier(config.kong, nonceStore),
      origin: config.origin === undefined ? undefined : new URL(config.origin),
      ...(quota !== undefined ? { quota } : {}),
      ...(usage !== undefined ? { openUsage: (consumer: string | null) => usage.open(consumer) } : {}),
      metrics, log,
    }),
    handleRequest: (req, res, target) => new ProxySession(sessions, req, res, target).run(),
    wsUpgrades, holds, metrics, log,
  }).catch(async (err: unknown) => {
    await stopStarted();
    throw listenFailure('listen', config.listen, err);
  });
  let closing: Promise<void> | undefined;

  const clientPort = clientServer.port;
  let control: ControlServer | undefined;
  if (options.serveControl !== false) {
    control = await startControlServer({
      bus, metrics, log, maxPublishBodyBytes: config.limits.maxPublishBodyBytes, gate: publishGate,
      ...(config.publishToken ? { publishToken: config.publishToken } : {}),
      health: () => {
        const status = bus.status();
        const isDraining = closing !== undefined;
        return { ready: status.type === 'connected' && !isDraining, details: { bus: status, channels: hub.channelCount(), ...(isDraining ? { draining: true } : {}) } };
      },
      renderMetrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }),
    }, config.control).catch(async (err: unknown) => {
      await clientServer.cut();
      await stopStarted();
      throw listenFailure('control', config.control, err);
    });
  }
  const controlPort = control?.port ?? 0;
  outbound = createOutboundPolicy({
    allowedOrigins: config.kong?.allowedOrigins ?? [],
    // A worker does not serve the control port; the primary does, on the configured one.
    listeners: [{ host: config.listen.host, port: clientPort }, { host: config.control.host, port: control?.port ?? config.control.port }],
    ownHosts: [hostname(), ...Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address))],
  });
  log.info({
    listen: `${config.listen.host}:${clientPort}`,
    ...(control ? { control: `${config.control.host}:${controlPort}` } : {}),
    // Credentials in the origin URL stay out of the logs.
    origin: config.origin === undefined ? undefined : withoutCredentials(config.origin),
    bus: bus instanceof NatsBus ? 'nats' : 'memory',
  }, control ? 'sidecar started' : 'worker started');

  const drain = async (): Promise<void> => {
    const { drainMs } = config.shutdown;
    metrics.draining.set(1);
    log.info({ drainMs, held: holds.size, ws: wsUpgrades.sessionCount }, 'draining');
    const startedAt = performance.now();
    // Stop accepting; connections with nothing in progress go now, the others when done.
    const clientsGone = clientServer.drain();
    const publishes = publishGate.drain();
    let deadline: NodeJS.Timeout | undefined;
    const isDrained = await Promise.race([
      Promise.all([clientsGone, publishes]).then(() => true),
      new Promise<boolean>((resolve) => { deadline = setTimeout(() => resolve(false), drainMs); }),
    ]);
    clearTimeout(deadline);
    if (!isDrained) log.warn({ drainMs, open: clientServer.openRequests, ws: wsUpgrades.sessionCount }, 'drain time over; cutting remaining connections');
    await clientServer.cut();
    await nonceStore?.close?.();
    // Every connection has ended: their slots are given back, and the last usage period is complete.
    await Promise.all([quota?.close(), usage?.close()]);
    // A publish whose body is still arriving is cut (it was not accepted: no 200); one that was
    // received is handed to the bus before the bus closes, however late.
    await control?.close();
    await publishes;
    // The sessions just ended may have gone links on their way to the origin: a short wait.
    await gone.whenIdle(GONE_FLUSH_MS);
    origin.close();
    keepAlives.close();
    hub.close();
    stopBusMetrics();
    await bus.close();
    log.info({ durationMs: Math.round(performance.now() - startedAt), isDrained }, 'drained');
  };

  return {
    clientPort, controlPort, metrics, hub, bus,
    close() {
      closing ??= drain();
      return closing;
    },
  };
}

/** NATS when configured (each process its own connection), else the in-process bus. */
export function createBus(config: Readonly<Config>, log: Logger): Bus {
  // The hub keeps a channel for hold.channelLingerMs after its last subscriber (with its
  // position), holding the bus subscription meanwhile: the bus itself need not linger.
  if (config.nats === undefined) {
    return new MemoryBus({ log: log.child({ component: 'bus' }), lingerMs: 0, deferDelivery: true });
  }
  const nats = config.nats;
  return new NatsBus({
    servers: nats.servers,
    subjectPrefix: nats.subjectPrefix,
    reconnectWaitMs: nats.reconnectWaitMs,
    connectTimeoutMs: nats.connectTimeoutMs,
    pingIntervalMs: nats.pingIntervalMs,
    lingerMs: 0,
    name: `kong-grip sidecar pid ${process.pid}`,
    log: log.child({ component: 'nats' }),
    ...(nats.subscriptionEvents ? { events: { prefix: nats.subscriptionEventPrefix, instance: `${hostname()}:${process.pid}` } } : {}),
    ...(nats.jetstream !== undefined ? { history: nats.jetstream } : {}),
  });
}

/** Keeps the NATS gauges and counters in step with the bus; returns the function that stops it. */
export function recordBusMetrics(bus: Bus, metrics: Metrics): () => void {
  const isNats = bus instanceof NatsBus;
  metrics.natsConnected.set(isNats && bus.status().type === 'connected' ? 1 : 0);
  return bus.listen((event) => recordBusEvent(event, metrics, isNats));
}

function recordBusEvent(event: BusEvent, metrics: Metrics, isNats: boolean): void {
  switch (event.type) {
    case 'status':
      if (!isNats) return;
      if (event.status.type === 'disconnected') metrics.natsDisconnects.inc();
      metrics.natsConnected.set(event.status.type === 'connected' ? 1 : 0);
      return;
    case 'payload-invalid':
      metrics.natsPayloadsInvalid.inc();
      return;
    case 'channel-resumed':
      metrics.historyResumes.inc({ cause: event.cause });
      metrics.historyItems.inc({ use: 'resume' }, event.items);
      return;
    case 'history-duplicate':
      metrics.historyDuplicates.inc();
      return;
    case 'history-kept':
      metrics.historyKeptItems.inc(event.items);
      return;
    case 'channel-live':
    case 'channel-released':
      return;
    default: {
      const never: never = event;
      throw new Error(`unhandled bus event ${JSON.stringify(never)}`);
    }
  }
}

