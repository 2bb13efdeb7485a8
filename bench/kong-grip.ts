// Runs the kong-grip sidecar standalone (no Kong, in-process bus) in front of the bench origin:
//   node sidecar/dist/process/cli.js --listen 127.0.0.1:P --control 127.0.0.1:Q --origin URL --sig-key K
// Build it first (`npm run build`). Clients connect to P; the publish API is POST /publish/ on Q.
// For the scale run, startKongGripCluster adds its own nats-server and `--nats URL --workers W`.

import { createWriteStream, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from './http-client.js';
import { summarizeLogFile } from './log-file.js';
import { summarizePinoLog } from './log-summary.js';
import { NatsServer } from './nats-server.js';
import { waitUntilProxying } from './pushpin.js';
import { freePort, spawnWithMaxFiles, stopProcess, waitForPort } from './proc.js';
import type { Target, TargetOptions } from './target.js';

export interface KongGripOptions extends TargetOptions {
  /** Extra CLI arguments (for example a worker count). */
  extraArgs?: string[];
  /** Extra node flags (for example --cpu-prof). */
  nodeArgs?: string[];
  /** The CLI to run; tests run the TypeScript source with `nodeArgs: ['--import', 'tsx']`. */
  cli?: string;
}

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
export const SIDECAR_CLI = join(ROOT, 'sidecar', 'dist', 'process', 'cli.js');
export const SIDECAR_CLI_SOURCE = join(ROOT, 'sidecar', 'src', 'process', 'cli.ts');

export async function startKongGrip(opts: KongGripOptions): Promise<Target> {
  const cli = opts.cli ?? SIDECAR_CLI;
  if (!existsSync(cli)) throw new Error(`${cli} not found: build the sidecar first (npm run build)`);
  const clientPort = await freePort();
  const publishPort = await freePort();
  const logPath = join(opts.workDir, 'kong-grip.log');
  const log = createWriteStream(logPath);
  await new Promise<void>((res, rej) => {
    log.once('open', () => res());
    log.once('error', rej);
  });
  const args = [
    ...(opts.nodeArgs ?? []),
    cli,
    '--listen',
    `127.0.0.1:${clientPort}`,
    '--control',
    `127.0.0.1:${publishPort}`,
    '--origin',
    `http://127.0.0.1:${opts.originPort}`,
    '--sig-key',
    opts.sigKey,
    // Quiet like Pushpin at log level 1: warnings and errors only, no line per request.
    '--log-level',
    'warn',
    ...(opts.extraArgs ?? []),
  ];
  const child = spawnWithMaxFiles(process.execPath, args, { stdio: ['ignore', log, log], cwd: ROOT });
  const isAlive = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<void> => {
    await stopProcess(child, 10_000);
    log.end();
  };
  try {
    await new Promise<void>((res, rej) => {
      child.once('spawn', () => res());
      child.once('error', rej);
    });
    await waitForPort(clientPort, 15_000, isAlive);
    await waitForPort(publishPort, 15_000, isAlive);
    await waitUntilProxying(clientPort, isAlive);
  } catch (err) {
    await stop();
    throw new Error(`kong-grip did not start (log: ${logPath}): ${(err as Error).message}`);
  }
  const logSummary = (): string[] => summarizeLogFile(logPath, summarizePinoLog);
  return { name: 'kong-grip', clientPort, publishPort, rootPid: child.pid!, logSummary, stop };
}

export interface KongGripClusterOptions extends KongGripOptions {
  /** Worker processes (`--workers`), unless extraArgs already give one. */
  workers: number;
}

/**
 * The sidecar in cluster mode: a private nats-server, then `--nats URL --workers W`, ready once
 * every worker listens and has its NATS connection (/readyz). Each worker is a process with its
 * own open-files limit, which is what lets one sidecar hold more connections than that limit.
 */
export async function startKongGripCluster(opts: KongGripClusterOptions): Promise<Target> {
  const nats = await NatsServer.start({ logFile: join(opts.workDir, 'nats-server.log') });
  const extra = opts.extraArgs ?? [];
  const clusterArgs = ['--nats', nats.url, ...(extra.includes('--workers') ? [] : ['--workers', String(opts.workers)])];
  let sidecar: Target;
  try {
    sidecar = await startKongGrip({ ...opts, extraArgs: [...clusterArgs, ...extra] });
  } catch (err) {
    await nats.dispose();
    throw err;
  }
  const natsPid = nats.pid!;
  const stop = async (): Promise<void> => {
    await sidecar.stop();
    await nats.dispose();
  };
  try {
    await waitUntilReady(sidecar.publishPort, 30_000);
  } catch (err) {
    await stop();
    throw new Error(`kong-grip (cluster) did not get ready: ${(err as Error).message}`);
  }
  return { ...sidecar, companions: [{ name: 'nats-server', pid: natsPid }], stop };
}

export async function waitUntilReady(controlPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await request(controlPort, 'GET', '/readyz', undefined, 2000);
      if (res.status === 200) return;
      last = `status ${res.status}: ${res.body.trim().slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`/readyz did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}
