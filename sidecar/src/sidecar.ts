import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Bus, BusEvent } from './bus/bus.js';
import { MemoryBus } from './bus/memory-bus.js';
import { NatsBus } from './bus/nats-bus.js';
import type { Config } from './config.js';
import { PublishGate, startControlServer, type ControlServer } from './publish/control-server.js';
import { KgError } from './errors.js';
import { GripSigner } from './origin/grip-sig.js';
import { forwardRequestHeaders } from './grip/headers.js';
import { ChunkWriter } from './holds/chunk-writer.js';
import type { HoldDeps } from './holds/hold-deps.js';
import { KeepAliveWheel } from './holds/keep-alive-wheel.js';
import { HoldRegistry } from './holds/hold-registry.js';
import { Hub } from './hub/hub.js';
import { HandoffVerifier, handoffFailureReason, isHandoffOwnedHeader, type VerifiedHandoff } from './kong/handoff-verifier.js';
import { createLogger, type Logger } from './log.js';
import { countPerTick, createMetrics, type Metrics } from './metrics.js';
import { OriginClient } from './origin/origin-client.js';
import { originUrl } from './origin/origin-url.js';
import { ProxySession, type ProxyTarget } from './holds/proxy-session.js';
import { createWsEventsPoster } from './origin/ws-origin.js';
import { WsUpgradeHandler } from './server/ws-upgrade.js';

// Wires one sidecar together: the client-facing server, the control server, the bus, the hub.
// Components get their dependencies from here; nothing is a module-level singleton, so a test
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

const OVERLOADED_TEXT = 'Service Unavailable: connection limit reached.\n';
const HANDOFF_REFUSED_TEXT = 'Unauthorized: missing or invalid Kong handoff.';
const HANDOFF_CAPACITY_TEXT = 'Service Unavailable: too many new requests, retry.';
const SHUTTING_DOWN_TEXT = 'Service Unavailable: shutting down.\n';

export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const { config } = options;
  const log = options.log ?? createLogger(config.logLevel);
  const metrics = createMetrics({ collectDefaults: true });
  const bus = options.bus ?? createBus(config, log);
  const stopBusMetrics = recordBusMetrics(bus, metrics);
  const hub = new Hub(bus, metrics, { ...config.hold, sequencing: config.sequencing }, log);
  const signer = config.sigKey === undefined ? undefined : new GripSigner(config.sigKey, config.sigIss);
  const origin = new OriginClient({ ...(signer ? { signer } : {}), timeoutMs: config.limits.originTimeoutMs });
  const keepAlives = new KeepAliveWheel();
  const holds = new HoldRegistry();
  const deps: HoldDeps = {
    hub, origin, metrics, log, limits: config.limits,
    chunks: new ChunkWriter(),
    keepAlives,
    countStreamSent: countPerTick((n) => metrics.messagesSent.inc({ kind: 'stream' }, n)),
    holds, lastEventIdPaths: config.nats?.jetstream?.lastEventIdPaths ?? [],
  };
  const publishGate = new PublishGate();
  let closing: Promise<void> | undefined;

  let active = 0;
  // Kong mode: the origin and the caller's identity come from the grip plugin's signed handoff.
  const handoff = config.kong === undefined ? undefined : new HandoffVerifier(config.kong);
  const originBase = config.origin === undefined ? undefined : new URL(config.origin);
  const targetFor = (req: IncomingMessage): ProxyTarget => {
    // Headers only a verified handoff may set are dropped in both modes, so an origin behind a
    // sidecar can always trust Kong-Grip-* identity headers.
    const headers = forwardRequestHeaders(req.rawHeaders).filter(([name]) => !isHandoffOwnedHeader(name));
    if (handoff !== undefined) {
      let verified: VerifiedHandoff;
      try {
        verified = handoff.verify(req.headers, Date.now());
      } catch (err) {
        throw handoffRefused(req, err);
      }
      return { url: originUrl(verified.origin, req.url), headers: [...headers, ...verified.headersForOrigin] };
    }
    if (originBase === undefined) {
      // loadConfig never allows this; fail closed all the same, never act as an open proxy.
      throw new KgError('KG_ERR_HANDOFF_INVALID', 'no origin configured for requests without a Kong handoff');
    }
    return { url: originUrl(originBase, req.url), headers };
  };
  // Counted and logged here, for plain requests and WebSocket upgrades alike. The error the
  // caller answers with carries only a generic text: the client learns nothing about why.
  const handoffRefused = (req: IncomingMessage, err: unknown): unknown => {
    const reason = handoffFailureReason(err);
    if (reason === undefined) return err;
    const e = err as KgError;
    metrics.handoffRejected.inc({ reason });
    log[e.code === 'KG_ERR_HANDOFF_CAPACITY' ? 'error' : 'warn']({ code: e.code, reason, err: e.message, remote: req.socket.remoteAddress }, 'handoff refused');
    return new KgError(e.code, e.code === 'KG_ERR_HANDOFF_CAPACITY' ? HANDOFF_CAPACITY_TEXT : HANDOFF_REFUSED_TEXT, { cause: err });
  };
  const refuse = (req: IncomingMessage, res: ServerResponse, err: KgError): void => {
    metrics.requests.inc({ outcome: err.code ?? 'error' });
    const extra = err.code === 'KG_ERR_HANDOFF_INVALID' ? ['WWW-Authenticate', 'Kong-Grip-Handoff']
      : err.code === 'KG_ERR_HANDOFF_CAPACITY' ? ['Retry-After', '1'] : [];
    res.writeHead(err.status || 400, ['Content-Type', 'text/plain; charset=utf-8', ...extra]);
    res.end(`${err.message}\n`);
    req.resume();
  };

  // While draining, connections are closed as soon as they have nothing in progress.
  let isSweepScheduled = false;
  const sweepIdle = (): void => {
    isSweepScheduled = false;
    client.closeIdleConnections();
  };
  // One listener shared by every response, not a closure per request.
  const onResponseClosed = (): void => {
    active--;
    if (closing !== undefined && !isSweepScheduled) {
      isSweepScheduled = true;
      setImmediate(sweepIdle);
    }
  };
  const client = http.createServer({ keepAlive: true }, (req: IncomingMessage, res: ServerResponse) => {
    if (closing !== undefined) {
      // A request on a connection kept alive from before the drain.
      metrics.requests.inc({ outcome: 'KG_ERR_SHUTTING_DOWN' });
      res.writeHead(503, ['Content-Type', 'text/plain; charset=utf-8', 'Retry-After', '1', 'Connection', 'close']);
      res.end(SHUTTING_DOWN_TEXT);
      req.resume();
      return;
    }
    if (active >= config.limits.maxConnections) {
      metrics.requests.inc({ outcome: 'over_limit' }); // KG_ERR_TOO_MANY_CONNECTIONS
      res.writeHead(503, ['Content-Type', 'text/plain; charset=utf-8', 'Retry-After', '1']);
      res.end(OVERLOADED_TEXT);
      req.resume();
      return;
    }
    active++;
    res.on('close', onResponseClosed); // emitted once; on() needs no wrapper per response
    let target: ProxyTarget;
    try {
      target = targetFor(req);
    } catch (err) {
      refuse(req, res, err as KgError);
      return;
    }
    void new ProxySession(deps, req, res, target).run().catch((err: unknown) => {
      log.error({ err }, 'request handling failed');
      if (!res.headersSent) res.writeHead(500);
      res.destroy();
    });
  });
  const wsUpgrades = new WsUpgradeHandler({
    hub, metrics, log, limits: config.limits, ws: config.ws, post: createWsEventsPoster(origin, config.ws.maxResponseBytes),
  });
  client.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => wsUpgrades.handleUpgrade(req, socket, head, () => targetFor(req)));
  // Long-lived streams must not be cut by Node's default request timeouts.
  client.requestTimeout = 0;
  client.headersTimeout = 60_000;

  await listen(client, config.listen.host, config.listen.port);
  const clientPort = (client.address() as AddressInfo).port;
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
    }, config.control);
  }
  const controlPort = control?.port ?? 0;
  log.info({
    listen: `${config.listen.host}:${clientPort}`,
    ...(control ? { control: `${config.control.host}:${controlPort}` } : {}),
    origin: config.origin,
    bus: bus instanceof NatsBus ? 'nats' : 'memory',
  }, control ? 'sidecar started' : 'worker started');

  const drain = async (): Promise<void> => {
    const { drainMs } = config.shutdown;
    metrics.draining.set(1);
    log.info({ drainMs, held: holds.size, ws: wsUpgrades.sessionCount }, 'draining');
    const startedAt = performance.now();
    // Stop accepting; connections with nothing in progress go now, the others when done.
    const clientClosed = closeServer(client);
    client.closeIdleConnections();
    const publishes = publishGate.drain();
    holds.drainAll();
    const wsGone = wsUpgrades.drain();
    let deadline: NodeJS.Timeout | undefined;
    const isDrained = await Promise.race([
      Promise.all([clientClosed, publishes, wsGone]).then(() => true),
      new Promise<boolean>((resolve) => { deadline = setTimeout(() => resolve(false), drainMs); }),
    ]);
    clearTimeout(deadline);
    if (!isDrained) log.warn({ drainMs, open: active, ws: wsUpgrades.sessionCount }, 'drain time over; cutting remaining connections');
    client.closeAllConnections();
    await wsUpgrades.close(0);
    await clientClosed;
    // A publish whose body is still arriving is cut (it was not accepted: no 200); one that was
    // received is handed to the bus before the bus closes, however late.
    await control?.close();
    await publishes;
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
    case 'channel-live':
    case 'channel-released':
      return;
    default: {
      const never: never = event;
      throw new Error(`unhandled bus event ${JSON.stringify(never)}`);
    }
  }
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
