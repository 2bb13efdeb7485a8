import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KongRpcConnection, RpcError, runPhase, type PdkAnswer, type PhaseRun } from '../../bench/kong-rpc.js';
import { buildLauncherInto, buildPlainPluginsInto, startLauncher, startPlainPdkServer, type PluginServerProcess } from '../../bench/pluginserver.js';

// Kong's side of the external-plugin protocol (kong.md 1.3-1.5), for tests: the query command,
// the plugin server process Kong supervises, and the MessagePack-RPC calls Kong makes over the
// Unix socket (StartInstance with a JSON config string, HandleEvent, then one typed Step per PDK
// call the plugin makes, answered from a fake Kong request). Mirrors
// kong/runloop/plugin_servers/{process,plugin}.lua and rpc/mp_rpc.lua of Kong 3.9.

/** The launcher as shipped: plugin/dist/grip-pluginserver.js and its package.json, built into a temp directory. */
export async function buildLauncher(): Promise<{ dir: string; file: string; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'kg-launcher-'));
  const file = await buildLauncherInto(dir);
  return { dir, file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A plugins directory for kong-pdk's plain kong-js-pluginserver (the grip plugin bundled alone,
 * CommonJS): used only to show what the launcher protects against.
 */
export async function buildPlainPluginsDir(): Promise<{ dir: string; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'kg-plugins-'));
  await buildPlainPluginsInto(dir);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface PluginInfo {
  Name: string;
  Version: string;
  Phases: string[];
  Priority: number;
  Schema: { name: string; fields: Array<{ config: { type: 'record'; fields: Array<Record<string, Record<string, unknown>>> } }> };
  [extra: string]: unknown;
}

/** Runs the query command as Kong does (io.popen with an empty environment, whole stdout, cjson.decode). Rejects unless stdout is one JSON array. */
export function queryPluginInfo(launcherFile: string): Promise<{ infos: PluginInfo[]; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [launcherFile, '--dump'], { env: {}, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`query command exited ${code}: ${stderr}`));
      let doc: unknown;
      try {
        doc = JSON.parse(stdout);
      } catch (err) {
        return reject(new Error(`query command stdout is not one JSON document (Kong would not start): ${JSON.stringify(stdout.slice(0, 200))}`, { cause: err }));
      }
      if (!Array.isArray(doc)) return reject(new Error('query command stdout is not a JSON array'));
      resolve({ infos: doc as PluginInfo[], stdout, stderr });
    });
  });
}

/** A plugin-server process as Kong's worker 0 supervises it (bench/pluginserver.ts). */
export type PluginServer = PluginServerProcess;

/** Starts the launcher as Kong's worker 0 does (empty environment, absolute paths) and waits until it listens. */
export const startPluginServer = startLauncher;
export { startPlainPdkServer };

/** A temporary Kong prefix directory. */
export function makePrefix(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'kg-prefix-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export { RpcError };

/**
 * One Kong worker's connection to the plugin server (bench/kong-rpc.ts) with the calls Kong
 * makes: StartInstance, CloseInstance, and a whole phase with its Steps.
 */
export class KongRpcDriver extends KongRpcConnection {
  /** plugin.StartInstance as Kong sends it: the config travels as a JSON string. */
  async startInstance(name: string, config: Record<string, unknown>): Promise<{ Name: string; Id: number; Config: unknown; StartTime: number }> {
    return await this.call('plugin.StartInstance', { Name: name, Config: JSON.stringify(config) }) as { Name: string; Id: number; Config: unknown; StartTime: number };
  }

  async closeInstance(id: number): Promise<unknown> {
    return this.call('plugin.CloseInstance', id);
  }

  /** One phase for one request, PDK calls answered from `request` (bench/kong-rpc.ts runPhase). */
  async runPhase(instanceId: number, phase: string, request: FakeKongRequest): Promise<PhaseRun> {
    return runPhase(this, instanceId, phase, (method, args) => request.answer(method, args));
  }
}

/**
 * One Kong worker's instance cache and its handle_event (plugin_servers/plugin.lua and
 * rpc/mp_rpc.lua): instances cached by plugin entity (__plugin_id), started on first use, and an
 * error containing "no plugin instance" answered by dropping the cached id, starting a new
 * instance with the same configuration and running the event again.
 */
export class KongWorker {
  private readonly instances = new Map<string, number>();
  /** Instances this worker (re)started because the server no longer knew its cached number. */
  restarts = 0;

  constructor(private readonly rpc: KongRpcDriver, private readonly pluginName = 'grip') {}

  /** The instance number this worker holds for a plugin entity, if any. */
  cached(pluginId: string): number | undefined {
    return this.instances.get(pluginId);
  }

  /** Seeds the cache, as a worker that started this instance before a restart holds it. */
  remember(pluginId: string, instanceId: number): void {
    this.instances.set(pluginId, instanceId);
  }

  async access(config: Record<string, unknown>, request: FakeKongRequest): Promise<PhaseRun & { instanceId: number }> {
    const key = String(config['__plugin_id']);
    for (let attempt = 0; ; attempt++) {
      let id = this.instances.get(key);
      if (id === undefined) {
        id = (await this.rpc.startInstance(this.pluginName, config)).Id;
        this.instances.set(key, id);
      }
      try {
        return { ...await this.rpc.runPhase(id, 'access', request), instanceId: id };
      } catch (err) {
        if (attempt > 0 || !(err instanceof RpcError) || !/no plugin instance/i.test(err.message)) throw err;
        this.instances.delete(key);
        this.restarts++;
      }
    }
  }
}

export type { PhaseRun };

export interface RecordedCall {
  method: string;
  args: unknown[];
}

type Answer = PdkAnswer;

/**
 * One proxied request as Kong holds it during access: the plugin entity being run, the
 * authenticated consumer, the upstream request headers. Answers the PDK calls the way the Kong
 * PDK would and records them. A call this fake does not implement is recorded in `unknown` and
 * answered with nil, as Kong answers a method it cannot find.
 */
export class FakeKongRequest {
  readonly calls: RecordedCall[] = [];
  readonly unknown: string[] = [];
  readonly workerEvents: unknown[][] = [];
  exit: { status: number; body?: unknown; headers?: Record<string, string> } | undefined;
  /** Set when a PDK call raised a Lua error: Kong answers the client 500 and drops the event. */
  luaError: string | undefined;
  /** Upstream request headers, lower-case names, every value a list (as ngx keeps them). */
  readonly headers: Map<string, string[]>;

  constructor(readonly scene: { pluginId: string; consumer?: Record<string, unknown> | null; credential?: Record<string, unknown> | null; headers?: Record<string, string | string[]> }) {
    this.headers = new Map(Object.entries(scene.headers ?? {}).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v : [v]]));
  }

  answer(method: string, args: unknown[]): Answer {
    this.calls.push({ method, args });
    switch (method) {
      case 'kong.plugin.get_id': return { kind: 'value', value: this.scene.pluginId };
      case 'kong.client.get_consumer': return { kind: 'value', value: this.scene.consumer ?? null };
      case 'kong.client.get_credential': return { kind: 'value', value: this.scene.credential ?? null };
      case 'kong.service.request.set_headers': return this.setHeaders(args[0]);
      case 'kong.response.exit': {
        const [status, body, headers] = args as [number, unknown, Record<string, string> | undefined];
        this.exit = { status, ...(body === undefined || body === null ? {} : { body }), ...(headers ? { headers } : {}) };
        return { kind: 'ended' };
      }
      case 'kong.worker_events.post':
        this.workerEvents.push(args);
        return { kind: 'value', value: true };
      default:
        if (method.startsWith('kong.log.')) return { kind: 'value', value: null };
        this.unknown.push(method);
        return { kind: 'value', value: null };
    }
  }

  /** kong.service.request.set_headers: validates like Kong (a Lua error ends the request) and applies. */
  private setHeaders(table: unknown): Answer {
    if (typeof table !== 'object' || table === null || Array.isArray(table)) {
      this.luaError = 'headers must be a table';
      return { kind: 'ended' };
    }
    for (const [name, value] of Object.entries(table as Record<string, unknown>)) {
      const ok = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
      if (!ok) {
        this.luaError = `invalid header value for "${name}"`;
        return { kind: 'ended' };
      }
    }
    for (const [name, value] of Object.entries(table as Record<string, unknown>)) {
      const values = Array.isArray(value) ? value as string[] : [String(value)];
      // ngx.req.set_header with an empty table removes the header.
      if (values.length === 0) this.headers.delete(name.toLowerCase());
      else this.headers.set(name.toLowerCase(), values);
    }
    return { kind: 'value', value: null };
  }

  methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  /** The upstream headers as a Node-style header object (repeated values joined), for sending. */
  upstreamHeaders(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.headers) out[k] = v.join(', ');
    return out;
  }
}

/** The user's fields with the schema's defaults applied; throws, as Kong's validation would, when a required field is missing. */
export function withSchemaDefaults(info: PluginInfo, user: Record<string, unknown>): Record<string, unknown> {
  const fields = info.Schema.fields[0]?.config.fields ?? [];
  const config: Record<string, unknown> = {};
  for (const entry of fields) {
    const [[name, def]] = Object.entries(entry) as [[string, Record<string, unknown>]];
    const value = name in user ? user[name] : def['default'];
    if (value === undefined) {
      if (def['required'] === true) throw new Error(`schema violation (${name}: required field missing)`);
      continue;
    }
    config[name] = value;
  }
  return config;
}

let seq = 0;

/**
 * The JSON config Kong passes to StartInstance (plugins_iterator.lua get_plugin_config): the
 * user's fields with the schema's defaults applied, plus Kong's bookkeeping keys. Scope ids are
 * absent, not null, when the plugin is not scoped that way. Throws, as Kong's schema validation
 * would, when a required field is missing.
 */
export function kongPluginConfig(
  info: PluginInfo,
  user: Record<string, unknown>,
  entity: { pluginId: string; routeId?: string; serviceId?: string; consumerId?: string },
): Record<string, unknown> {
  const config = withSchemaDefaults(info, user);
  if (entity.routeId) config['route_id'] = entity.routeId;
  if (entity.serviceId) config['service_id'] = entity.serviceId;
  if (entity.consumerId) config['consumer_id'] = entity.consumerId;
  config['__plugin_id'] = entity.pluginId;
  config['__ws_id'] = '0dc6f45b-8f8d-40d2-a504-473544ee190b';
  config['__key__'] = `plugins:grip:${entity.routeId ?? ''}:${entity.serviceId ?? ''}:${entity.consumerId ?? ''}::0dc6f45b-8f8d-40d2-a504-473544ee190b`;
  config['__seq__'] = ++seq;
  return config;
}

/**
 * One launcher for a test file, built and queried on first use and removed after the file's
 * tests: call at the top level of the file (it registers the after hook).
 */
export function useLauncher(): () => Promise<{ file: string; info: PluginInfo }> {
  let launcher: Promise<{ file: string; info: PluginInfo; remove(): void }> | undefined;
  test.after.always(async () => { if (launcher) (await launcher).remove(); });
  return () => (launcher ??= (async () => {
    const built = await buildLauncher();
    const { infos } = await queryPluginInfo(built.file);
    return { file: built.file, info: infos[0] as PluginInfo, remove: built.remove };
  })());
}
