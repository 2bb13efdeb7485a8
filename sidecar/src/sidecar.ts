import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Bus, BusEvent } from './bus/bus.js';
import { MemoryBus } from './bus/memory-bus.js';
import { NatsBus } from './bus/nats-bus.js';
import type { Config } from './config.js';
import { startControlServer, type ControlServer } from './control.js';
import { KgError } from './errors.js';
import { GripSigner } from './grip-sig.js';
import { forwardRequestHeaders } from './grip/headers.js';
import { ChunkWriter } from './holds/chunk-writer.js';
import type { HoldDeps } from './holds/hold-deps.js';
import { KeepAliveWheel } from './holds/keep-alive-wheel.js';
import { Hub } from './hub.js';
import { HandoffVerifier, handoffFailureReason, isHandoffOwnedHeader, type VerifiedHandoff } from './kong-handoff.js';
import { createLogger, type Logger } from './log.js';
import { countPerTick, createMetrics, type Metrics } from './metrics.js';
import { OriginClient } from './origin.js';
import { originUrl } from './origin-url.js';
import { ProxySession, type ProxyTarget } from './proxy-session.js';
import { createWsEventsPoster } from './ws-origin.js';
import { WsUpgradeHandler } from './ws-upgrade.js';

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
  close(): Promise<void>;
}

const OVERLOADED_TEXT = 'Service Unavailable: connection limit reached.\n';
const HANDOFF_REFUSED_TEXT = 'Unauthorized: missing or invalid Kong handoff.';
const HANDOFF_CAPACITY_TEXT = 'Service Unavailable: too many new requests, retry.';

export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const { config } = options;
  const log = options.log ?? createLogger(config.logLevel);
  const metrics = createMetrics({ collectDefaults: true });
  const bus = options.bus ?? createBus(config, log);
  const stopBusMetrics = recordBusMetrics(bus, metrics);
  const hub = new Hub(bus, metrics, config.hold, log);
  const signer = config.sigKey === undefined ? undefined : new GripSigner(config.sigKey, config.sigIss);
  const origin = new OriginClient({ ...(signer ? { signer } : {}), timeoutMs: config.limits.originTimeoutMs });
  const keepAlives = new KeepAliveWheel();
  const deps: HoldDeps = {
    hub, origin, metrics, log, limits: config.limits,
    chunks: new ChunkWriter(),
    keepAlives,
    countStreamSent: countPerTick((n) => metrics.messagesSent.inc({ kind: 'stream' }, n)),
  };

  let active = 0;
  // One listener shared by every response, not a closure per request.
  const onResponseClosed = (): void => { active--; };
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

  const client = http.createServer({ keepAlive: true }, (req: IncomingMessage, res: ServerResponse) => {
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
      bus, metrics, log, maxPublishBodyBytes: config.limits.maxPublishBodyBytes,
      ...(config.publishToken ? { publishToken: config.publishToken } : {}),
      health: () => {
        const status = bus.status();
        return { ready: status.type === 'connected', details: { bus: status, channels: hub.channelCount() } };
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

  return {
    clientPort, controlPort, metrics, hub, bus,
    async close() {
      await wsUpgrades.close();
      client.closeAllConnections();
      await Promise.all([closeServer(client), control?.close()]);
      origin.close();
      keepAlives.close();
      hub.close();
      stopBusMetrics();
      await bus.close();
    },
  };
}

/** NATS when configured (each process its own connection), else the in-process bus. */
export function createBus(config: Readonly<Config>, log: Logger): Bus {
  if (config.nats === undefined) {
    return new MemoryBus({ log: log.child({ component: 'bus' }), lingerMs: config.hold.channelLingerMs, deferDelivery: true });
  }
  return new NatsBus({
    ...config.nats,
    lingerMs: config.hold.channelLingerMs,
    name: `kong-grip sidecar pid ${process.pid}`,
    log: log.child({ component: 'nats' }),
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
