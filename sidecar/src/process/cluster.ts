import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { BusStatus } from '../bus/bus.js';
import { withoutCredentials, type Config } from '../config.js';
import { startControlServer, type ControlServer } from '../publish/control-server.js';
import type { Logger } from '../log.js';
import { listenFailure } from '../listen-failure.js';
import { setAcceptPolicy } from './accept-policy.js';
import { createMetrics } from '../metrics.js';
import { createBus, recordBusMetrics, startSidecar } from '../sidecar.js';

// Several worker processes on one listen port (node:cluster; the primary hands out connections
// round-robin). Each worker holds connections and has its own NATS connection and
// subscriptions. The primary serves the control port for all of them: publishes go into NATS
// over its own connection (so they reach every worker, and every other sidecar), /metrics sums
// the workers' registries, and /readyz is ready only when every worker's NATS is connected.
//
//   primary: fork N ──each reports listening + bus status──▶ serving
//              ▲  └── a worker exits ──▶ fork a replacement (backing off if it keeps failing)
//   SIGTERM/SIGINT ──▶ new publishes refused, accepted ones handed to NATS; workers told to
//                      drain (each ends its holds, WebSockets with 1012) ──▶ all exited ──▶
//                      control and bus closed

const MSG = {
  Listening: 'kong-grip:listening',
  BusStatus: 'kong-grip:bus-status',
  MetricsRequest: 'kong-grip:metrics-request',
  Metrics: 'kong-grip:metrics',
  Shutdown: 'kong-grip:shutdown',
  StartFailed: 'kong-grip:start-failed',
} as const;

type Metric = MetricObjectWithValues<MetricValue<string>>;

type WorkerMessage =
  | { type: typeof MSG.Listening; clientPort: number }
  | { type: typeof MSG.BusStatus; status: BusStatus }
  | { type: typeof MSG.Metrics; requestId: number; metrics: Metric[] }
  /** The worker could not start (its listen port cannot be bound): the message names the fix. */
  | { type: typeof MSG.StartFailed; message: string };

type PrimaryMessage =
  | { type: typeof MSG.MetricsRequest; requestId: number }
  | { type: typeof MSG.Shutdown };

const METRICS_TIMEOUT_MS = 2000;
/** Beyond the drain time, how long a draining worker may take to exit before it is killed. */
const SHUTDOWN_MARGIN_MS = 5_000;
const RESPAWN_MIN_MS = 500;
const RESPAWN_MAX_MS = 30_000;

function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string'
    && (m as { type: string }).type.startsWith('kong-grip:');
}

/** In a cluster worker: run the client side and report to the primary. */
export async function runWorker(config: Readonly<Config>, log: Logger): Promise<void> {
  const send = (message: WorkerMessage): void => {
    if (process.connected) process.send?.(message);
  };
  let sidecar;
  try {
    sidecar = await startSidecar({ config, log, serveControl: false });
  } catch (err) {
    // The primary reports it once and stops (rather than respawning into the same failure).
    const message: WorkerMessage = { type: MSG.StartFailed, message: err instanceof Error ? err.message : String(err) };
    if (process.connected && process.send) process.send(message, () => process.exit(1));
    else process.exit(1);
    return;
  }
  let isStopping = false;
  const stop = (why: string): void => {
    if (isStopping) return;
    isStopping = true;
    log.info({ why }, 'worker shutting down');
    sidecar.close().then(() => process.exit(0), () => process.exit(1));
  };
  sidecar.bus.listen((event) => {
    if (event.type === 'status') send({ type: MSG.BusStatus, status: event.status });
  });
  process.on('message', (message: PrimaryMessage) => {
    switch (message?.type) {
      case MSG.MetricsRequest:
        void sidecar.metrics.registry.getMetricsAsJSON().then((metrics) => {
          send({ type: MSG.Metrics, requestId: message.requestId, metrics: metrics as Metric[] });
        });
        return;
      case MSG.Shutdown:
        stop('primary asked');
        return;
      default:
        return;
    }
  });
  // Never outlive the primary.
  process.once('disconnect', () => stop('primary gone'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  send({ type: MSG.BusStatus, status: sidecar.bus.status() });
  send({ type: MSG.Listening, clientPort: sidecar.clientPort });
}

interface WorkerState {
  readonly worker: Worker;
  readonly startedAt: number;
  clientPort: number | undefined;
  bus: BusStatus;
}

export interface Primary {
  readonly controlPort: number;
  close(): Promise<void>;
}

/**
 * In the cluster primary: fork the workers, serve the control port, supervise. A worker that
 * cannot start before all have started is fatal: `onStartFailed` gets its message once.
 */
export async function runPrimary(config: Readonly<Config>, log: Logger, onStartFailed: (message: string) => void = () => {}): Promise<Primary> {
  const states = new Map<number, WorkerState>();
  const metrics = createMetrics({ collectDefaults: true });
  // The primary publishes only; it never subscribes.
  const bus = createBus(config, log);
  const stopBusMetrics = recordBusMetrics(bus, metrics);
  let isStopping = false;
  let respawnDelayMs = RESPAWN_MIN_MS;
  let respawnTimer: NodeJS.Timeout | undefined;
  let hasAnnounced = false;
  /** A worker failed to start before all had: no respawning, the caller stops everything. */
  let hasFailed = false;
  let requestCounter = 0;
  const pendingMetrics = new Map<number, { left: Set<number>; collected: Metric[][]; done: () => void }>();
  let control: ControlServer | undefined;

  setAcceptPolicy();
  const fork = (): void => {
    const worker = cluster.fork();
    states.set(worker.id, { worker, startedAt: Date.now(), clientPort: undefined, bus: { type: 'connecting' } });
  };

  const announceWhenAllListening = (): void => {
    if (hasAnnounced || control === undefined || states.size < config.workers) return;
    const ports = [...states.values()].map((s) => s.clientPort);
    if (ports.some((p) => p === undefined)) return;
    hasAnnounced = true;
    log.info({
      listen: `${config.listen.host}:${ports[0]}`,
      control: `${config.control.host}:${control.port}`,
      // Credentials in the origin URL stay out of the logs.
      origin: config.origin === undefined ? undefined : withoutCredentials(config.origin),
      bus: 'nats',
      workers: config.workers,
    }, 'sidecar started');
  };

  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isWorkerMessage(message)) return;
    const state = states.get(worker.id);
    if (state === undefined) return;
    switch (message.type) {
      case MSG.Listening:
        state.clientPort = message.clientPort;
        announceWhenAllListening();
        return;
      case MSG.BusStatus:
        state.bus = message.status;
        return;
      case MSG.StartFailed:
        // Every worker fails alike on a port in use: the first is reported, once.
        if (hasFailed) return;
        if (hasAnnounced || isStopping) {
          log.error({ pid: worker.process.pid, err: message.message }, 'worker could not start');
          return;
        }
        hasFailed = true;
        onStartFailed(message.message);
        return;
      case MSG.Metrics: {
        const pending = pendingMetrics.get(message.requestId);
        if (pending === undefined || !pending.left.delete(worker.id)) return;
        pending.collected.push(message.metrics);
        if (pending.left.size === 0) pending.done();
        return;
      }
      default: {
        const never: never = message;
        log.warn({ message: never }, 'unknown worker message');
      }
    }
  });

  cluster.on('exit', (worker: Worker, code: number | null, signal: string | null) => {
    const state = states.get(worker.id);
    states.delete(worker.id);
    for (const pending of pendingMetrics.values()) {
      if (pending.left.delete(worker.id) && pending.left.size === 0) pending.done();
    }
    if (isStopping || hasFailed) return;
    // A worker that dies soon after starting is probably failing at start: back off.
    const lived = state === undefined ? 0 : Date.now() - state.startedAt;
    respawnDelayMs = lived > RESPAWN_MAX_MS ? RESPAWN_MIN_MS : Math.min(respawnDelayMs * 2, RESPAWN_MAX_MS);
    log.error({ pid: worker.process.pid, code, signal, respawnInMs: respawnDelayMs }, 'worker exited; starting a replacement');
    respawnTimer = setTimeout(() => {
      respawnTimer = undefined;
      if (!isStopping) fork();
    }, respawnDelayMs);
  });

  const renderMetrics = async (): Promise<{ contentType: string; text: string }> => {
    const requestId = ++requestCounter;
    const left = new Set([...states.values()].filter((s) => s.worker.isConnected()).map((s) => s.worker.id));
    const collected: Metric[][] = [];
    await new Promise<void>((resolve) => {
      if (left.size === 0) {
        resolve();
        return;
      }
      // A worker that does not answer in time is left out rather than failing the scrape.
      const timer = setTimeout(resolve, METRICS_TIMEOUT_MS);
      pendingMetrics.set(requestId, { left, collected, done: () => { clearTimeout(timer); resolve(); } });
      for (const id of left) states.get(id)?.worker.send({ type: MSG.MetricsRequest, requestId } satisfies PrimaryMessage);
    });
    pendingMetrics.delete(requestId);
    collected.push((await metrics.registry.getMetricsAsJSON()) as Metric[]);
    const aggregated = AggregatorRegistry.aggregate(collected);
    return { contentType: metrics.registry.contentType, text: await aggregated.metrics() };
  };

  const health = () => {
    const workers = [...states.values()].map((s) => ({ pid: s.worker.process.pid, bus: s.bus, isListening: s.clientPort !== undefined }));
    const ready = !isStopping && bus.status().type === 'connected'
      && workers.length === config.workers
      && workers.every((w) => w.isListening && w.bus.type === 'connected');
    return { ready, details: { bus: bus.status(), workers } };
  };

  control = await startControlServer({
    bus, metrics, log, maxPublishBodyBytes: config.limits.maxPublishBodyBytes,
    ...(config.publishToken ? { publishToken: config.publishToken } : {}),
    health, renderMetrics,
  }, config.control).catch(async (err: unknown) => {
    stopBusMetrics();
    await bus.close();
    throw listenFailure('control', config.control, err);
  });
  for (let i = 0; i < config.workers; i++) fork();
  announceWhenAllListening();
  const controlServer = control;

  return {
    controlPort: controlServer.port,
    async close() {
      if (isStopping) return;
      isStopping = true;
      if (respawnTimer !== undefined) clearTimeout(respawnTimer);
      metrics.draining.set(1);
      const publishes = controlServer.drain();
      const exited = [...states.values()].map((s) => new Promise<void>((resolve) => {
        if (s.worker.isDead()) {
          resolve();
          return;
        }
        s.worker.once('exit', () => resolve());
        const kill = setTimeout(() => s.worker.process.kill('SIGKILL'), config.shutdown.drainMs + SHUTDOWN_MARGIN_MS);
        kill.unref();
        if (s.worker.isConnected()) s.worker.send({ type: MSG.Shutdown } satisfies PrimaryMessage);
        else s.worker.process.kill('SIGTERM');
      }));
      await Promise.all(exited);
      // Bodies still arriving are cut (not accepted); received publishes reach NATS first.
      await controlServer.close();
      await publishes;
      stopBusMetrics();
      await bus.close();
    },
  };
}
