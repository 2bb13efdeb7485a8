// What the storm scenario runs against. kong-grip: one nats-server with JetStream and two
// standalone sidecars on it (each `--workers W`, history on with Last-Event-ID resumption for
// the bench's SSE path); the disruption is SIGTERM to the first, whose clients move to the
// second. Pushpin: one instance, stopped and started again on the same ports (it has no
// history and no second address to offer: the nearest storm it allows, not like for like).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KongGripOptions, startKongGrip, waitUntilReady } from './kong-grip.js';
import { NatsServer } from './nats-server.js';
import { startPushpin } from './pushpin.js';
import type { Target, TargetOptions } from './target.js';

export interface StormRig extends Target {
  /** Where clients connect, spread evenly; each client knows all of them. */
  clientPorts: number[];
  /** The port whose clients the disruption moves (undefined: every client's). */
  victimPort: number | undefined;
  /** What the disruption does, for the notes. */
  disruption: string;
  /**
   * SIGTERM to the victim (kong-grip; resolves once sent) or a stop and start (Pushpin;
   * resolves once it serves again). `rootPid` and `publishPort` are the survivor's after it.
   */
  disrupt(): Promise<void>;
  /** The survivor's control port for /metrics, when it has one (kong-grip). */
  metricsPort: number | undefined;
}

/** The sidecar's YAML config: NATS with JetStream history, Last-Event-ID resumption on `/sse`. */
export function stormSidecarConfig(natsUrl: string): string {
  return [
    'nats:',
    `  servers: ${natsUrl}`,
    '  jetstream:',
    '    stream: GRIPBENCH',
    "    lastEventIdPaths: ['/sse']",
    '',
  ].join('\n');
}

export interface KongGripPairOptions extends KongGripOptions {
  /** Workers per sidecar (`--workers`). */
  workers: number;
}

export async function startKongGripPair(opts: KongGripPairOptions): Promise<StormRig> {
  const nats = await NatsServer.start({ jetstream: true, logFile: join(opts.workDir, 'nats-server.log') });
  const configPath = join(opts.workDir, 'sidecar.yaml');
  writeFileSync(configPath, stormSidecarConfig(nats.url));
  const started: Target[] = [];
  const stopAll = async (): Promise<void> => {
    for (const t of started) await t.stop();
    await nats.dispose();
  };
  try {
    for (const name of ['a', 'b']) {
      const workDir = join(opts.workDir, `sidecar-${name}`);
      mkdirSync(workDir, { recursive: true });
      const t = await startKongGrip({ ...opts, workDir, extraArgs: ['--config', configPath, '--workers', String(opts.workers), ...(opts.extraArgs ?? [])] });
      started.push(t);
      await waitUntilReady(t.publishPort, 30_000);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  const [victim, survivor] = started as [Target, Target];
  let victimStopped: Promise<void> | undefined;
  return {
    name: 'kong-grip',
    clientPort: survivor.clientPort,
    publishPort: survivor.publishPort,
    rootPid: survivor.rootPid,
    companions: [{ name: 'nats-server', pid: nats.pid! }],
    clientPorts: [victim.clientPort, survivor.clientPort],
    victimPort: victim.clientPort,
    disruption: `SIGTERM to one of two sidecars (each --workers ${opts.workers}), whose clients reconnect to the other with Last-Event-ID`,
    metricsPort: survivor.publishPort,
    disrupt: async () => {
      // Target.stop sends SIGTERM and waits for the drain (SIGKILL only past its grace period).
      victimStopped = victim.stop();
    },
    logSummary: () => [...victim.logSummary().map((l) => `sidecar terminated: ${l}`), ...survivor.logSummary().map((l) => `surviving sidecar: ${l}`)],
    stop: async () => {
      await victimStopped;
      await stopAll();
    },
  };
}

export async function startPushpinRestartable(opts: TargetOptions & { logLevel?: number }): Promise<StormRig> {
  let runs = 0;
  const start = (ports: { clientPort?: number; publishPort?: number }): Promise<Target> => {
    const workDir = join(opts.workDir, `pushpin-run-${++runs}`);
    mkdirSync(workDir, { recursive: true });
    return startPushpin({ ...opts, workDir, ...ports });
  };
  let current = await start({});
  const ports = { clientPort: current.clientPort, publishPort: current.publishPort };
  const earlierLogs: string[] = [];
  return {
    name: 'pushpin',
    clientPort: ports.clientPort,
    publishPort: ports.publishPort,
    get rootPid() {
      return current.rootPid;
    },
    clientPorts: [ports.clientPort],
    victimPort: undefined,
    disruption: 'Pushpin stopped (SIGTERM) and started again on the same ports; its clients reconnect to it with Last-Event-ID, which it has no history to answer',
    metricsPort: undefined,
    disrupt: async () => {
      earlierLogs.push(...current.logSummary().map((l) => `before the restart: ${l}`));
      await current.stop();
      current = await start(ports);
    },
    logSummary: () => [...earlierLogs, ...current.logSummary()],
    stop: () => current.stop(),
  };
}
