import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitUntil } from '../../bench/proc.js';
import { buildPluginServer } from '../../plugin/build.js';

// A real Kong OSS 3.9.1 for end-to-end tests, from the relocatable runtime bundle developers keep
// next to the checkout (a user's clone has none: findKongBundle() is then undefined and the
// suite skips). The bundle is unpacked once into a folder under the temp directory keyed by the
// tarball's size and mtime (.ci/run unpacks into the same folder), then each RealKong gets its own
// prefix with DB-less kong.conf lines, and Kong itself starts and supervises the plugin server.
//
// When Kong runs as root its workers (and the plugin server they spawn) run as `nobody` (or
// `kong`, if that user exists): the
// prefix, the plugin server's files and the socket directory live in 0755 directories under the
// temp directory (the checkout may not be traversable by that user), and the socket directory
// belongs to that user so the plugin server can create its socket there.

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));

export const KONG_BUNDLE_NAME = 'kong-3.9.1-bundle.tar.gz';
/** The directory the tarball unpacks to. */
const BUNDLE_TOP = 'kong-3.9.1';

/** KONG_BUNDLE if set, else ../shared/kong-3.9.1/ beside the checkout, else /work/shared's; undefined if none exists. */
export function findKongBundle(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env['KONG_BUNDLE'];
  if (fromEnv !== undefined && fromEnv !== '') return existsSync(fromEnv) ? resolve(fromEnv) : undefined;
  const candidates = [join(REPO, '..', 'shared', 'kong-3.9.1', KONG_BUNDLE_NAME), join('/work/shared/kong-3.9.1', KONG_BUNDLE_NAME)];
  return candidates.find((c) => existsSync(c));
}

/**
 * Where a tarball is unpacked: <tmpdir>/kong-grip-kong-<size>-<mtime in s>. .ci/run computes the
 * same name (stat -c '%s-%Y'), so a CI run unpacks once for every test file.
 */
export function unpackDirFor(tarball: string, base: string = tmpdir()): string {
  const st = statSync(tarball);
  return join(base, `kong-grip-kong-${st.size}-${Math.floor(st.mtimeMs / 1000)}`);
}

/** Unpacks the bundle (once; a finished unpack has a `.unpacked` marker) and returns the bundle directory. */
export async function unpackKongBundle(tarball: string): Promise<string> {
  const dir = unpackDirFor(tarball);
  const bundle = join(dir, BUNDLE_TOP);
  if (existsSync(join(dir, '.unpacked'))) return bundle;
  // Unpack beside it and rename into place, so two test processes never see half a bundle.
  const partial = mkdtempSync(`${dir}.partial-`);
  try {
    await run('tar', ['-xzf', tarball, '-C', partial]);
    writeFileSync(join(partial, '.unpacked'), `${tarball}\n`);
    chmodSync(partial, 0o755);
    try {
      renameSync(partial, dir);
    } catch (err) {
      // Another process finished first: use its copy.
      if (!existsSync(join(dir, '.unpacked'))) throw err;
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return bundle;
}

/** A 0755 directory under the temp directory (mkdtemp makes 0700, which `nobody` cannot enter). */
export function openTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * uid and gid of the user nginx workers run as when Kong runs as root: Kong's default nginx_user
 * is `kong kong`, and without such a user nginx's own default, `nobody`.
 */
export function workerIds(): { uid: number; gid: number } {
  const users = new Map(readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).filter((f) => f.length >= 4).map((f) => [f[0] as string, f]));
  const fields = users.get('kong') ?? users.get('nobody');
  if (fields === undefined) throw new Error('neither a kong nor a nobody user in /etc/passwd: cannot give the plugin server a socket directory');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** A free TCP port below the ephemeral range (the README: ports there can be taken as client ports). */
export async function freeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((done) => {
      const server = createServer();
      server.once('error', () => done(false));
      server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

/**
 * Replaces each `from` in kong.yml's text by its `to`, in order of appearance; `to` may be a list
 * (one value per occurrence, e.g. two services' origins). Throws if a `from` appears a different
 * number of times than expected, so a changed kong.yml fails loudly rather than testing the old one.
 */
export function transformKongYml(text: string, replacements: Array<{ from: string; to: string | string[] }>): string {
  let out = text;
  for (const { from, to } of replacements) {
    const parts = out.split(from);
    const count = parts.length - 1;
    const values = Array.isArray(to) ? to : Array.from({ length: count }, () => to);
    if (count === 0 || count !== values.length) throw new Error(`kong.yml: expected ${values.length || 'some'} occurrence(s) of ${JSON.stringify(from)}, found ${count}`);
    out = parts.reduce((acc, part, i) => (i === 0 ? part : acc + (values[i - 1] as string) + part), '');
  }
  return out;
}

export interface PluginServerCommands {
  /** pluginserver_grip_start_cmd: absolute paths only (Kong runs it with an empty environment). */
  startCmd: string;
  /** pluginserver_grip_query_cmd. */
  queryCmd: string;
  socketPath: string;
  /** A path only this instance's plugin server has in its command line (to find its pid). */
  marker: string;
}

/**
 * The project's launcher (plugin/dist/grip-pluginserver.js, built from plugin/src) in a 0755
 * directory, with kong.conf's start and query commands for it: absolute paths, as Kong runs them
 * with an empty environment. The socket directory belongs to the workers' user.
 */
export async function preparePluginServer(dir: string): Promise<PluginServerCommands> {
  const sockDir = join(dir, 'sock');
  mkdirSync(sockDir, { mode: 0o755 });
  if (process.getuid?.() === 0) {
    const { uid, gid } = workerIds();
    chownSync(sockDir, uid, gid);
  }
  const socketPath = join(sockDir, 'grip.sock');
  const launcher = join(dir, 'grip-pluginserver.js');
  await buildPluginServer(launcher);
  return { startCmd: `${process.execPath} ${launcher} --socket ${socketPath}`, queryCmd: `${process.execPath} ${launcher} --dump`, socketPath, marker: launcher };
}

export interface RealKongOptions {
  bundle: string;
  /** The declarative configuration's text. */
  kongYml: string;
  pluginServer: PluginServerCommands;
  /** Environment for `kong start` (Kong's env vault reads it). */
  env?: Record<string, string>;
  /** Extra kong.conf lines. */
  conf?: string[];
}

export class RealKong {
  private constructor(
    readonly bundle: string,
    readonly dir: string,
    readonly prefix: string,
    readonly proxyPort: number,
    readonly adminPort: number,
    readonly pluginServer: PluginServerCommands,
    private readonly env: Record<string, string>,
  ) {}

  /** Writes kong.yml and kong.conf into a fresh 0755 directory and runs `kong start`. */
  static async start(options: RealKongOptions): Promise<RealKong> {
    const dir = openTempDir('kg-kong-');
    const prefix = join(dir, 'prefix');
    mkdirSync(prefix, { mode: 0o755 });
    const ymlPath = join(dir, 'kong.yml');
    writeFileSync(ymlPath, options.kongYml, { mode: 0o644 });
    const proxyPort = await freeLowPort();
    let adminPort = await freeLowPort();
    while (adminPort === proxyPort) adminPort = await freeLowPort();
    const ps = options.pluginServer;
    const conf = [
      `prefix = ${prefix}`,
      'database = off',
      `declarative_config = ${ymlPath}`,
      'router_flavor = traditional',
      'anonymous_reports = off',
      `proxy_listen = 127.0.0.1:${proxyPort}`,
      `admin_listen = 127.0.0.1:${adminPort}`,
      'status_listen = off',
      'admin_gui_listen = off',
      'plugins = bundled,grip',
      'pluginserver_names = grip',
      `pluginserver_grip_socket = ${ps.socketPath}`,
      `pluginserver_grip_start_cmd = ${ps.startCmd}`,
      `pluginserver_grip_query_cmd = ${ps.queryCmd}`,
      ...(options.conf ?? []),
    ];
    writeFileSync(join(dir, 'kong.conf'), `${conf.join('\n')}\n`);
    const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir, ...options.env };
    const kong = new RealKong(options.bundle, dir, prefix, proxyPort, adminPort, ps, env);
    try {
      await kong.cli(['start', '-c', join(dir, 'kong.conf')]);
      // Kong is up once `kong start` returns; the plugin server (spawned by worker 0) once its socket answers.
      await waitUntil('the plugin server Kong started to listen', () => kong.socketAnswers(), 20_000);
    } catch (err) {
      const log = kong.errorLog().slice(-4000);
      await kong.stop();
      throw new Error(`${(err as Error).message}\nerror.log:\n${log}`, { cause: err });
    }
    return kong;
  }

  private async cli(args: string[]): Promise<string> {
    const { stdout } = await run(join(this.bundle, 'bin/kong'), args, { env: this.env, timeout: 60_000 });
    return stdout;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.proxyPort}${path}`;
  }

  adminUrl(path: string): string {
    return `http://127.0.0.1:${this.adminPort}${path}`;
  }

  /** Kong's error.log so far ('' before the first start). */
  errorLog(): string {
    const file = join(this.prefix, 'logs/error.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Whether the plugin server's socket accepts a connection. */
  socketAnswers(): Promise<boolean> {
    return new Promise((done) => {
      const socket = connect(this.pluginServer.socketPath);
      socket.once('connect', () => { socket.destroy(); done(true); });
      socket.once('error', () => done(false));
    });
  }

  /** Pids of the plugin server processes Kong runs for this instance (by their command line). */
  pluginServerPids(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // The query command (--dump / -dump) also names the marker, but has exited by now.
      if (cmdline.includes(this.pluginServer.marker) && !/\0-?-dump/.test(cmdline)) pids.push(Number(entry));
    }
    return pids;
  }

  /** `kong stop`, then any plugin server still running is killed; the directory is removed. */
  async stop(): Promise<void> {
    if (existsSync(join(this.prefix, 'pids/nginx.pid'))) {
      await this.cli(['stop', '-p', this.prefix]).catch(() => undefined);
    }
    await waitUntil('the plugin server to exit with Kong', () => this.pluginServerPids().length === 0, 5_000).catch(() => {
      for (const pid of this.pluginServerPids()) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

