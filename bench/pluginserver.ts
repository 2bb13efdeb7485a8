// The plugin server's ceiling: every new request on a grip route costs one access phase in the
// one plugin-server process of a Kong node, shared by all of Kong's workers. This drives that
// process the way Kong does (one connection per Kong worker, each running access phases back to
// back, every PDK call answered at once) and reports access phases per second and the server's
// CPU per access. Two servers: grip-pluginserver (what kong-grip ships) and, for comparison,
// kong-pdk's own kong-js-pluginserver loading the same plugin.
//
//   DURATION_MS=5000 npx tsx bench/pluginserver.ts
//   KINDS=grip-pluginserver          only these servers (comma-separated)
//   LAUNCHER=/tmp/old/grip-pluginserver.js   measure a launcher built earlier (before/after)
//   NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'   node arguments for the server process

import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { buildPluginServer } from '../plugin/build.js';
import { KongRpcConnection, runPhase, type PdkAnswer } from './kong-rpc.js';
import { stopProcess, treeCpuMs, withDeadline } from './proc.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const PLAIN_SERVER_BIN = join(REPO, 'node_modules/.bin/kong-js-pluginserver');
// kong-pdk's own server registers ts-node, which needs a TypeScript with a JS API: kong-pdk's
// nested TypeScript 4, not this repository's TypeScript 7.
const TS_FOR_KONG_PDK = join(REPO, 'node_modules/kong-pdk/node_modules/typescript');

export type PluginServerKind = 'grip-pluginserver' | 'kong-js-pluginserver';

export interface PluginServerProcess {
  readonly kind: PluginServerKind;
  readonly socketPath: string;
  readonly pid: number;
  /** Lines the server wrote (stdout and stderr merged, as Kong logs them), ANSI codes removed. */
  readonly output: string[];
  /** Resolves once a line matching `pattern` has been written. */
  waitForOutput(pattern: RegExp): Promise<string>;
  stop(): Promise<void>;
}

/** The launcher as shipped (plugin/dist/grip-pluginserver.js and its package.json), built into `dir`. */
export async function buildLauncherInto(dir: string): Promise<string> {
  const file = join(dir, 'grip-pluginserver.js');
  await buildPluginServer(file);
  cpSync(join(REPO, 'plugin/dist/package.json'), join(dir, 'package.json'));
  return file;
}

/** A plugins directory for kong-pdk's plain server: the grip plugin bundled alone, CommonJS. */
export async function buildPlainPluginsInto(dir: string): Promise<void> {
  await build({
    entryPoints: [join(REPO, 'plugin/src/grip.ts')], outfile: join(dir, 'grip.js'),
    bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning',
  });
  cpSync(join(REPO, 'plugin/dist/package.json'), join(dir, 'package.json'));
}

/** Starts grip-pluginserver as Kong's worker 0 does (empty environment, absolute paths) and waits until it listens. */
export function startLauncher(launcherFile: string, prefix: string, nodeArgs: readonly string[] = []): Promise<PluginServerProcess> {
  const socketPath = join(prefix, 'grip.sock');
  return supervise('grip-pluginserver', spawn(process.execPath, [...nodeArgs, launcherFile, '--socket', socketPath], { env: {}, stdio: ['ignore', 'pipe', 'pipe'] }), socketPath);
}

/** Starts kong-pdk's kong-js-pluginserver on a plugins directory (it numbers instances from 0). */
export function startPlainPdkServer(pluginsDir: string, prefix: string, nodeArgs: readonly string[] = []): Promise<PluginServerProcess> {
  const socketPath = join(prefix, 'grip.sock');
  const child = spawn(process.execPath, [...nodeArgs, PLAIN_SERVER_BIN, '--plugins-directory', pluginsDir, '--kong-prefix', prefix, '--sock-name', 'grip.sock'], {
    cwd: pluginsDir, env: { TS_NODE_COMPILER: TS_FOR_KONG_PDK }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return supervise('kong-js-pluginserver', child, socketPath);
}

function supervise(kind: PluginServerKind, child: ChildProcess, socketPath: string): Promise<PluginServerProcess> {
  const output: string[] = [];
  let outputWaiters: Array<() => void> = [];
  const waitForOutput = async (pattern: RegExp): Promise<string> => {
    for (;;) {
      const found = output.find((line) => pattern.test(line));
      if (found !== undefined) return found;
      await new Promise<void>((resolve) => outputWaiters.push(resolve));
    }
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let ready = false;
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        // node-color-log (kong-pdk's logger) decorates lines with ANSI codes; keep the text.
        const text = line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trim();
        if (text !== '') {
          output.push(text);
          const waiters = outputWaiters;
          outputWaiters = [];
          for (const w of waiters) w();
        }
        if (!ready && text.includes(`server started at ${socketPath}`)) {
          ready = true;
          resolve({
            kind, socketPath, output, waitForOutput, pid: child.pid as number,
            async stop() {
              if (child.exitCode === null && child.signalCode === null) await stopProcess(child, 3000);
              await exited;
            },
          });
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`plugin server exited (${code ?? signal}) before listening: ${output.join('\n')}`));
    });
  });
}

const SECRET = 'bench-plugin-server-secret-0123456789abcdef';
const CONSUMER = { id: 'c0c0c0c0-0000-4000-8000-000000000001', username: 'web-app', custom_id: 'tenant-42', created_at: 1767225000, tags: null, type: 0 };

/** The config Kong sends to StartInstance for one grip route (user fields plus Kong's bookkeeping keys). */
function routeConfig(worker: number, forwardConsumer: boolean): Record<string, unknown> {
  return {
    secret: SECRET, origin: 'http://origin:8080', forward_consumer: forwardConsumer,
    route_id: 'aaaaaaaa-1111-4000-8000-00000000000a',
    __plugin_id: 'aaaaaaaa-0000-4000-8000-00000000000a', __ws_id: '0dc6f45b-8f8d-40d2-a504-473544ee190b',
    __key__: 'plugins:grip:aaaaaaaa-1111-4000-8000-00000000000a::::0dc6f45b-8f8d-40d2-a504-473544ee190b', __seq__: worker + 1,
  };
}

/** Kong's answers, at once: the consumer row, nil for set_headers; anything else ends the phase. */
function answerAtOnce(method: string): PdkAnswer {
  if (method === 'kong.client.get_consumer') return { kind: 'value', value: CONSUMER };
  if (method === 'kong.service.request.set_headers') return { kind: 'value', value: null };
  return { kind: 'ended' };
}

export interface AccessLoad {
  /** Access phases completed (each ended in "ret" after setting the token). */
  accesses: number;
  /** Phases that did not end that way (an exit, an unexpected PDK call): must be 0. */
  unexpected: number;
  /** RPC round trips per access phase. */
  roundTripsPerAccess: number;
  elapsedMs: number;
  /** CPU (user + system) the plugin-server process used meanwhile. */
  serverCpuMs: number;
}

/**
 * `workers` connections, each first starting its own instance (as each Kong worker does), then
 * running access phases back to back for `durationMs`.
 */
export async function runAccessLoad(server: PluginServerProcess, options: { workers: number; durationMs: number; forwardConsumer: boolean }): Promise<AccessLoad> {
  const conns = Array.from({ length: options.workers }, () => new KongRpcConnection(server.socketPath));
  try {
    const ids: number[] = [];
    for (const [i, conn] of conns.entries()) {
      const started = await conn.call('plugin.StartInstance', { Name: 'grip', Config: JSON.stringify(routeConfig(i, options.forwardConsumer)) }) as { Id: number };
      ids.push(started.Id);
    }
    // Warm-up: the first phases pay for JIT and lazy setup.
    for (const [i, conn] of conns.entries()) for (let k = 0; k < 200; k++) await runPhase(conn, ids[i] as number, 'access', answerAtOnce);
    let accesses = 0;
    let unexpected = 0;
    let roundTrips = 0;
    const cpuBefore = treeCpuMs(server.pid);
    const t0 = performance.now();
    const endAt = t0 + options.durationMs;
    await Promise.all(conns.map(async (conn, i) => {
      while (performance.now() < endAt) {
        let ended = false;
        const run = await runPhase(conn, ids[i] as number, 'access', (m) => {
          const a = answerAtOnce(m);
          if (a.kind === 'ended') ended = true;
          return a;
        });
        roundTrips += run.roundTrips;
        if (ended) unexpected++;
        else accesses++;
      }
    }));
    const elapsedMs = performance.now() - t0;
    const serverCpuMs = treeCpuMs(server.pid) - cpuBefore;
    return { accesses, unexpected, roundTripsPerAccess: roundTrips / Math.max(1, accesses + unexpected), elapsedMs, serverCpuMs };
  } finally {
    for (const c of conns) c.close();
  }
}

export interface PluginServerFigures {
  kind: PluginServerKind;
  forwardConsumer: boolean;
  load: AccessLoad;
  accessesPerSec: number;
  cpuUsPerAccess: number;
}

export interface MeasureOptions {
  workers?: number;
  durationMs?: number;
  kinds?: PluginServerKind[];
  forwardConsumer?: boolean;
  /** A launcher built earlier (e.g. from another commit, for a before/after) instead of this tree's. */
  launcherFile?: string;
  /** Arguments for node ahead of the server's script, e.g. --cpu-prof to profile it. */
  nodeArgs?: readonly string[];
}

/** Builds and starts each server in turn in a temp directory and measures it. */
export async function measurePluginServers(options: MeasureOptions = {}): Promise<PluginServerFigures[]> {
  const dir = mkdtempSync(join(tmpdir(), 'kgb-pluginserver-'));
  const workers = options.workers ?? 4;
  const durationMs = options.durationMs ?? 5000;
  const forwardConsumer = options.forwardConsumer ?? true;
  try {
    const launcher = options.launcherFile ?? await buildLauncherInto(dir);
    await buildPlainPluginsInto(dir);
    const out: PluginServerFigures[] = [];
    for (const kind of options.kinds ?? ['grip-pluginserver', 'kong-js-pluginserver']) {
      const server = await withDeadline(kind === 'grip-pluginserver' ? startLauncher(launcher, dir, options.nodeArgs) : startPlainPdkServer(dir, dir, options.nodeArgs), 30_000, `${kind} to listen`);
      try {
        const load = await withDeadline(runAccessLoad(server, { workers, durationMs, forwardConsumer }), durationMs + 60_000, `${kind} access load`);
        out.push({
          kind, forwardConsumer, load,
          accessesPerSec: (load.accesses * 1000) / load.elapsedMs,
          cpuUsPerAccess: (load.serverCpuMs * 1000) / Math.max(1, load.accesses),
        });
      } finally {
        await server.stop();
      }
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = process.env;
  const kinds = env['KINDS']?.split(',').map((k) => k.trim());
  for (const k of kinds ?? []) if (k !== 'grip-pluginserver' && k !== 'kong-js-pluginserver') throw new Error(`KINDS: unknown server ${k}`);
  const figures = await measurePluginServers({
    durationMs: Number(env['DURATION_MS'] ?? 5000),
    ...(kinds === undefined ? {} : { kinds: kinds as PluginServerKind[] }),
    ...(env['LAUNCHER'] === undefined ? {} : { launcherFile: env['LAUNCHER'] }),
    ...(env['NODE_ARGS'] === undefined ? {} : { nodeArgs: env['NODE_ARGS'].split(' ').filter((a) => a !== '') }),
  });
  for (const f of figures) {
    console.log(`${f.kind}: ${f.accessesPerSec.toFixed(0)} access phases/s over ${f.load.elapsedMs.toFixed(0)} ms, ${f.cpuUsPerAccess.toFixed(0)} µs server CPU per access, ${f.load.roundTripsPerAccess.toFixed(2)} round trips each, ${f.load.unexpected} unexpected`);
  }
}
