// Runs a private Pushpin 1.36 (Debian package, see install-pushpin.sh) against a given origin:
// its own config directory, rundir, ports and zurl, so it neither needs nor disturbs a system
// instance. The Debian config lacks zurl (it expects a system zurl under /var/run/zurl), so we
// copy the package's internal.conf with the zurl sockets moved into our rundir and add zurl to
// the runner's services. message_rate / message_hwm are raised so Pushpin's delivery rate
// limiter (2,500/s, backlog 25,000 in the example config) does not cap the benchmark.

import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { request } from './http-client.js';
import { BoundedLog } from './log-file.js';
import { summarizePushpinLog } from './log-summary.js';
import { freePort, spawnWithMaxFiles, stopProcess, waitForPort } from './proc.js';
import type { Target, TargetOptions } from './target.js';

export interface PushpinOptions extends TargetOptions {
  /** Deliveries per second before Pushpin's limiter queues them. */
  messageRate?: number;
  /** Queued deliveries before Pushpin drops them. */
  messageHwm?: number;
  /** Pushpin's log level: 0 error, 1 warning, 2 info, 3 debug. */
  logLevel?: number;
  /** Fixed ports (a restart on the same ports); free ones are picked otherwise. */
  clientPort?: number;
  publishPort?: number;
}

export const PUSHPIN_UNLIMITED_RATE = 100_000_000;

/** Where the package keeps internal.conf: `<prefix>/lib/pushpin/internal.conf` beside `<prefix>/bin/pushpin`. */
export function findPushpinInternalConf(): string {
  let bin: string;
  try {
    bin = execFileSync('sh', ['-c', 'command -v pushpin'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('pushpin is not installed (run bench/install-pushpin.sh)');
  }
  const path = join(dirname(dirname(realpathSync(bin))), 'lib', 'pushpin', 'internal.conf');
  if (!existsSync(path)) throw new Error(`pushpin's internal.conf not found at ${path}`);
  return path;
}

/** The package's internal.conf with the system zurl sockets moved into our rundir. */
export function privateInternalConf(original: string): string {
  return original.replace(/ipc:\/\/\/var\/run\/zurl\/zurl-/g, 'ipc://{rundir}/{ipc_prefix}zurl-');
}

export function pushpinConf(p: {
  dir: string;
  clientPort: number;
  publishPort: number;
  sigKey: string;
  messageRate: number;
  messageHwm: number;
  logLevel: number;
}): string {
  return `[global]
include=${p.dir}/internal.conf
rundir=${p.dir}/run
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:${p.clientPort}
logdir=${p.dir}/log
log_level=${p.logLevel}
client_buffer_size=8192
client_maxconn=200000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile=routes
debug=false
sig_iss=pushpin
sig_key=${p.sigKey}
updates_check=off

[handler]
push_in_spec=ipc://${p.dir}/run/push-in
push_in_sub_specs=ipc://${p.dir}/run/push-in-sub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=${p.publishPort}
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=ipc://${p.dir}/run/command
message_rate=${p.messageRate}
message_hwm=${p.messageHwm}
message_wait=5000
id_cache_ttl=0
connection_subscription_max=20
subscription_linger=60
stats_report_interval=10
`;
}

export async function startPushpin(opts: PushpinOptions): Promise<Target> {
  const dir = join(opts.workDir, 'pushpin');
  mkdirSync(join(dir, 'run'), { recursive: true });
  mkdirSync(join(dir, 'log'), { recursive: true });
  const clientPort = opts.clientPort ?? (await freePort());
  const publishPort = opts.publishPort ?? (await freePort());
  writeFileSync(join(dir, 'internal.conf'), privateInternalConf(readFileSync(findPushpinInternalConf(), 'utf8')));
  writeFileSync(
    join(dir, 'pushpin.conf'),
    pushpinConf({
      dir,
      clientPort,
      publishPort,
      sigKey: opts.sigKey,
      messageRate: opts.messageRate ?? PUSHPIN_UNLIMITED_RATE,
      messageHwm: opts.messageHwm ?? PUSHPIN_UNLIMITED_RATE,
      logLevel: opts.logLevel ?? 1,
    }),
  );
  // over_http: WebSocket clients are served with WebSocket-over-HTTP toward the origin.
  writeFileSync(join(dir, 'routes'), `* 127.0.0.1:${opts.originPort},over_http\n`);

  const log = await BoundedLog.open(join(dir, 'pushpin.log'));
  const child = spawnWithMaxFiles('pushpin', ['--config', join(dir, 'pushpin.conf'), '--merge-output'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  log.take(child.stdout);
  log.take(child.stderr);
  const isAlive = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<void> => {
    await stopProcess(child, 10_000);
    await log.end();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
    await waitForPort(clientPort, 15_000, isAlive);
    await waitForPort(publishPort, 15_000, isAlive);
    await waitUntilProxying(clientPort, isAlive);
  } catch (err) {
    await stop();
    throw new Error(`pushpin did not start (log: ${join(dir, 'pushpin.log')}): ${(err as Error).message}`);
  }
  const logSummary = (): string[] => log.summary(summarizePushpinLog);
  return { name: 'pushpin', clientPort, publishPort, rootPid: child.pid!, logSummary, stop };
}

/** Until a plain GET through the proxy reaches the origin (proves the zurl path works). */
export async function waitUntilProxying(clientPort: number, isAlive: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error('process exited');
    try {
      const res = await request(clientPort, 'GET', '/', undefined, 2000);
      if (res.status === 200 && res.body === 'bench origin\n') return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`GET / through the proxy never reached the origin (last: ${last})`);
}
