import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Bus } from './bus/bus.js';
import { MemoryBus } from './bus/memory-bus.js';
import type { Config } from './config.js';
import { createControlHandler } from './control.js';
import { KgError } from './errors.js';
import { GripSigner } from './grip-sig.js';
import { forwardRequestHeaders } from './grip/headers.js';
import type { HoldDeps } from './holds/hold-deps.js';
import { Hub } from './hub.js';
import { HandoffVerifier, handoffFailureReason, isHandoffOwnedHeader, type VerifiedHandoff } from './kong-handoff.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
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
  /** Defaults to an in-process bus. */
  bus?: Bus;
}

export interface Sidecar {
  readonly clientPort: number;
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
  if (config.nats !== undefined && options.bus === undefined) {
    throw new KgError('KG_ERR_CONFIG_INVALID', 'nats is configured but this build has no NATS bus; pass a bus or remove nats');
  }
  const bus = options.bus ?? new MemoryBus();
  const hub = new Hub(bus, metrics);
  const signer = config.sigKey === undefined ? undefined : new GripSigner(config.sigKey, config.sigIss);
  const origin = new OriginClient({ ...(signer ? { signer } : {}), timeoutMs: config.limits.originTimeoutMs });
  const deps: HoldDeps = { hub, origin, metrics, log, limits: config.limits };

  let active = 0;
  // Kong mode: the origin and the caller's identity come from the grip plugin's signed handoff.
  const handoff = config.kong === undefined ? undefined : new HandoffVerifier(config.kong);
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
    if (config.origin === undefined) {
      // loadConfig never allows this; fail closed all the same, never act as an open proxy.
      throw new KgError('KG_ERR_HANDOFF_INVALID', 'no origin configured for requests without a Kong handoff');
    }
    return { url: originUrl(new URL(config.origin), req.url), headers };
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
    res.once('close', () => { active--; });
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

  const controlHandler = createControlHandler({
    bus, hub, metrics, log, maxPublishBodyBytes: config.limits.maxPublishBodyBytes,
    ...(config.publishToken ? { publishToken: config.publishToken } : {}),
  });
  const control = http.createServer((req, res) => {
    controlHandler(req, res).catch((err: unknown) => {
      log.error({ err }, 'control request failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  await listen(client, config.listen.host, config.listen.port);
  await listen(control, config.control.host, config.control.port);
  const clientPort = (client.address() as AddressInfo).port;
  const controlPort = (control.address() as AddressInfo).port;
  log.info({ listen: `${config.listen.host}:${clientPort}`, control: `${config.control.host}:${controlPort}`, origin: config.origin }, 'sidecar started');

  return {
    clientPort, controlPort, metrics, hub, bus,
    async close() {
      await wsUpgrades.close();
      client.closeAllConnections();
      control.closeAllConnections();
      await Promise.all([closeServer(client), closeServer(control)]);
      origin.close();
      await bus.close();
    },
  };
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
