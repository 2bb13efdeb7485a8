import { KongRpcConnection, STEP_BY_METHOD } from '../../bench/kong-rpc.js';
import { FakeKongRequest, RpcError, withSchemaDefaults, type PluginInfo } from './kong-rpc-driver.js';

// How each Kong version drives an external (MessagePack) plugin server, as data read from that
// version's source in Kong/kong, plus a model of one Kong node's workers built from that data, so
// tests can drive the real grip-pluginserver exactly as each version would.
//
// Files read per tag (3.4 to 3.8: plugin_servers/{init,mp_rpc,process}.lua; 3.9:
// plugin_servers/{init,plugin,process}.lua and rpc/mp_rpc.lua):
//   kong/runloop/plugin_servers/*     StartInstance, HandleEvent, Step methods, instance cache,
//                                     "no plugin instance" handling, reset_instances event,
//                                     serverPid notification, query/start commands, socket
//   kong/runloop/plugins_iterator.lua get_plugin_config: the bookkeeping keys in the config
//   kong/db/schema/metaschema.lua     field attributes a schema may use
//   kong/db/schema/init.lua           Schema.valid_types
//   kong/pdk/{client,response}.lua, kong/pdk/service/request.lua, kong/pdk/private/checks.lua
//                                     the three PDK functions the plugin calls
//   kong/init.lua                     ctx.plugin_id = conf.__plugin_id (kong.plugin.get_id)
// Kong 3.9.1's tree was also compared with /tmp/kongb/kong-3.9.1 (the Kong that runs here): same files.

export type KongVersionName = '2.8' | '3.4' | '3.5' | '3.6' | '3.7' | '3.8' | '3.9';

/** What a worker does when HandleEvent (or a Step) answers an error containing "no plugin instance". */
export type NoInstanceHandling =
  /** 2.8, 3.4: forget this entity's cached instance (reset_instance), log, run the event again. */
  | 'reset-entry-and-retry'
  /** 3.5, 3.6: post the reset_instances worker event, log, run the event again; nothing reset locally. */
  | 'post-event-and-retry'
  /** 3.7 to 3.9: forget every cached instance of the plugin in this worker, post reset_instances, run again. */
  | 'reset-plugin-post-event-and-retry';

/** Who handles the plugin_server/reset_instances worker event, and what the handler does. */
export type ResetEventHandler =
  | 'none'
  /**
   * 3.5: worker 0 only, reset_instance(plugin_name, conf) keyed by kong.plugin.get_id(), which is
   * nil in the event handler (no request): with any cached instance it indexes nil and fails.
   */
  | 'worker-0-fails'
  /** 3.6 to 3.8: worker 0 only (registered after `if worker_id() ~= 0 then return end`): reset_instances_for_plugin. */
  | 'worker-0'
  /** 3.9: every worker (plugin_servers/init.lua start()): reset_instances_for_plugin. */
  | 'every-worker';

/**
 * Which workers recover from a plugin-server restart by Kong's own "no plugin instance" handling,
 * i.e. from a server that sends no serverPid notification (checked against the model).
 */
export type RestartRecovery = 'every-worker' | 'worker-0-only' | 'none';

export interface KongVersion {
  readonly name: KongVersionName;
  /** The tag read, and its commit in Kong/kong. */
  readonly tag: string;
  readonly commit: string;
  /** Within the supported matrix (plugin/src/grip.ts SUPPORTED_KONG). */
  readonly supported: boolean;
  /** Where the plugin server RPC code lives in this tag. */
  readonly rpcFile: string;
  /**
   * Bookkeeping keys get_plugin_config adds to the plugin's config before StartInstance (nil
   * ones are absent from the JSON: plugins are read without nulls).
   */
  readonly configKeys: readonly string[];
  /** __seq__ comes from a shared-dict counter (one sequence for all workers) or a per-worker counter. */
  readonly seqScope: 'per-worker' | 'node';
  /** The worker's instance cache key: 2.8 conf.__key__, 3.x kong.plugin.get_id() (= conf.__plugin_id). */
  readonly cacheKey: '__key__' | '__plugin_id';
  /** What a cached instance must match to be reused: 3.6 drops the __seq__ check (config edits never reach a cached instance). */
  readonly cacheMatch: readonly ('seq' | 'plugin_id')[];
  /** StartInstance failing: 2.8 hands the error string on as the instance (its id is nil); 3.x raises a Lua error (Kong answers 500). */
  readonly startFailure: 'error-string-as-instance' | 'lua-error';
  readonly noInstance: NoInstanceHandling;
  readonly resetEvent: ResetEventHandler;
  /** Kong handles a [2, "serverPid", pid] notification: a changed pid forgets every instance of that server in the worker. */
  readonly serverPidNotification: boolean;
  /** 3.4 only: a worker runs no plugin-server event until the socket accepted a connection (20 s, then never). */
  readonly readinessCheck: boolean;
  /** Expected from reading the source, for a server without the serverPid notification; the model must agree. */
  readonly restartRecovery: RestartRecovery;
  /** A worker that runs a plugin's instance picks up an edit of that plugin's config (expected; the model must agree). */
  readonly configEditApplies: boolean;
  /** Every plugin.* RPC method this version's mp_rpc.lua can send. */
  readonly rpcMethods: readonly string[];
  /** get_step_method's by_pdk_method table (Step variant per PDK method; anything else: plugin.Step). */
  readonly stepMethods: Readonly<Record<string, string>>;
  /** The PDK functions the grip plugin may call, and the file that defines each in this tag. */
  readonly pdk: Readonly<Record<string, string>>;
  /** Field attributes metaschema.lua's field_schema accepts (attributes, validators, recursive ones). */
  readonly fieldAttributes: ReadonlySet<string>;
  /** Schema.valid_types. */
  readonly fieldTypes: ReadonlySet<string>;
  /** kong.conf keys for a plugin server named NAME, and the defaults Kong uses when they are unset. */
  readonly pluginServerConf: {
    readonly keys: readonly string[];
    readonly socketDefault: string;
    readonly startDefault: string;
    readonly queryDefault: string;
    /** 3.9 refuses to start without a query command; older versions skip the server. */
    readonly queryRequired: boolean;
    /** Plugins registered from the query command's JSON array: all of them, or the first only (3.9). */
    readonly pluginsPerServer: 'all' | 'first';
  };
  /** Source files read for this version (paths in Kong/kong at `commit`). */
  readonly files: readonly string[];
  /** What the grip plugin with grip-pluginserver cannot do on this version, found in its source (empty when nothing). */
  readonly limitations: readonly string[];
  /** Kong behaviour worth knowing that does not stop the plugin working. */
  readonly notes: readonly string[];
}

// Identical in every tag from 2.8.5 to 3.9.3 (same by_pdk_method table text in mp_rpc.lua).
const STEP_METHODS: Readonly<Record<string, string>> = STEP_BY_METHOD;

// The "plugin.X" strings in mp_rpc.lua: the same set in every tag read.
const RPC_METHODS = [
  'plugin.StartInstance', 'plugin.CloseInstance', 'plugin.HandleEvent', 'plugin.Step', 'plugin.StepError', 'plugin.StepConsumer',
  'plugin.StepCredential', 'plugin.StepMemoryStats', 'plugin.StepMultiMap', 'plugin.StepRoute', 'plugin.StepService',
];

// _CLIENT.get_consumer (check_phase AUTH_AND_LATER), request.set_headers (validate_headers: string,
// number, boolean or array of strings; an empty array clears the header), _RESPONSE.exit, and
// kong.log.err (one of log.lua's _LEVELS; a broken instance's first request): present with the
// same contract in every tag read.
const PDK: Readonly<Record<string, string>> = {
  'kong.client.get_consumer': 'kong/pdk/client.lua',
  'kong.service.request.set_headers': 'kong/pdk/service/request.lua',
  'kong.response.exit': 'kong/pdk/response.lua',
  'kong.log.err': 'kong/pdk/log.lua',
};

// metaschema.lua field_schema + validators + the recursive attributes inserted after them.
const ATTRIBUTES_3_4 = [
  'type', 'required', 'reference', 'description', 'auto', 'unique', 'unique_across_ws', 'on_delete', 'default',
  'abstract', 'generate_admin_api', 'immutable', 'err', 'encrypted', 'referenceable',
  'between', 'eq', 'ne', 'gt', 'len_eq', 'len_min', 'len_max', 'match', 'not_match', 'match_all', 'match_none',
  'match_any', 'starts_with', 'one_of', 'not_one_of', 'contains', 'is_regex', 'timestamp', 'uuid',
  'custom_validator', 'mutually_exclusive_subsets', 'elements', 'keys', 'values', 'fields', 'entity_checks',
  'shorthand_fields',
];
const ATTRIBUTES_2_8 = [...ATTRIBUTES_3_4.filter((a) => a !== 'description'), 'legacy', 'shorthands'];
const ATTRIBUTES_3_5 = [...ATTRIBUTES_3_4, 'json_schema'];
const ATTRIBUTES_3_6 = [...ATTRIBUTES_3_5, 'examples'];
const ATTRIBUTES_3_7 = [...ATTRIBUTES_3_6, 'deprecation'];
const ATTRIBUTES_3_8 = [...ATTRIBUTES_3_7, 'transient'];

const TYPES_3_4 = ['array', 'set', 'string', 'number', 'boolean', 'integer', 'foreign', 'map', 'record'];
const TYPES_3_5 = [...TYPES_3_4, 'json'];

const CONF_KEYS = ['pluginserver_names', 'pluginserver_NAME_socket', 'pluginserver_NAME_start_cmd', 'pluginserver_NAME_query_cmd'];
const CONF_3_4_TO_3_8 = {
  keys: CONF_KEYS,
  socketDefault: '/usr/local/kong/NAME.socket',
  startDefault: '/usr/local/bin/NAME (if it exists)',
  queryDefault: '/usr/local/bin/query_NAME (if it exists)',
  queryRequired: false,
  pluginsPerServer: 'all',
} as const;

const KEYS_3_4 = ['route_id', 'service_id', 'consumer_id', 'plugin_instance_name', '__plugin_id', '__key__', '__seq__'];

const FILES_3_4_TO_3_8 = [
  'kong/runloop/plugin_servers/init.lua', 'kong/runloop/plugin_servers/mp_rpc.lua', 'kong/runloop/plugin_servers/process.lua',
  'kong/runloop/plugins_iterator.lua', 'kong/db/schema/metaschema.lua', 'kong/db/schema/init.lua', 'kong/init.lua',
  'kong/pdk/client.lua', 'kong/pdk/service/request.lua', 'kong/pdk/response.lua', 'kong/pdk/private/checks.lua', 'kong/pdk/plugin.lua',
  'kong/pdk/log.lua',
];

const RESTART_3_5_3_6 = 'Kong\'s own handling of a plugin-server restart is broken: a worker whose reset_instances handler does not '
  + 'run keeps its cached instance number and answers "no plugin instance" by running the event again with the same number, forever '
  + '(a tail call: the request never completes; each turn posts a worker event and logs a warning) until kong reload; Kong bug '
  + 'from 3.5.0 (920daf1b72, 32528da4f0), fixed in 3.7.0 (069da055c3, Kong/kong#12364). grip-pluginserver\'s serverPid notification '
  + '(first on every connection) clears the stale numbers instead';

export const KONG_VERSIONS: readonly KongVersion[] = [
  {
    name: '2.8', tag: '2.8.5', commit: 'a69e46c41e9e9e6096b8ffd6bd24e649c1d461d3', supported: false,
    rpcFile: 'kong/runloop/plugin_servers/mp_rpc.lua',
    configKeys: ['__key__', '__seq__', 'route_id', 'service_id', 'consumer_id'],
    seqScope: 'per-worker', cacheKey: '__key__', cacheMatch: ['seq'], startFailure: 'error-string-as-instance',
    noInstance: 'reset-entry-and-retry', resetEvent: 'none', serverPidNotification: true, readinessCheck: false,
    restartRecovery: 'every-worker', configEditApplies: true, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_2_8), fieldTypes: new Set(TYPES_3_4), pluginServerConf: CONF_3_4_TO_3_8,
    // 2.8's plugins_iterator.lua sets the keys in load_configuration, not get_plugin_config.
    files: FILES_3_4_TO_3_8,
    limitations: ['no __plugin_id in the config (kong.plugin.get_id exists from 3.x): the plugin answers 500 naming the supported versions'],
    notes: ['a failed StartInstance hands the error string on as the instance (id nil): HandleEvent with no id, "no plugin instance", retry, forever'],
  },
  {
    name: '3.4', tag: '3.4.2', commit: 'f9f4111ffcfca0797d1379ba0651147ab1cdb165', supported: true,
    rpcFile: 'kong/runloop/plugin_servers/mp_rpc.lua',
    configKeys: KEYS_3_4, seqScope: 'per-worker', cacheKey: '__plugin_id', cacheMatch: ['seq'], startFailure: 'lua-error',
    noInstance: 'reset-entry-and-retry', resetEvent: 'none', serverPidNotification: true, readinessCheck: true,
    restartRecovery: 'every-worker', configEditApplies: true, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_3_4), fieldTypes: new Set(TYPES_3_4), pluginServerConf: CONF_3_4_TO_3_8,
    files: FILES_3_4_TO_3_8,
    limitations: [],
    notes: ['a worker runs no plugin-server event until the socket accepted a connection, and gives up for good after 20 s (connection_check_timer)'],
  },
  {
    name: '3.5', tag: '3.5.0', commit: '5c1606953c846f58c8441803ef76b63f384b5af6', supported: true,
    rpcFile: 'kong/runloop/plugin_servers/mp_rpc.lua',
    configKeys: KEYS_3_4, seqScope: 'per-worker', cacheKey: '__plugin_id', cacheMatch: ['seq'], startFailure: 'lua-error',
    noInstance: 'post-event-and-retry', resetEvent: 'worker-0-fails', serverPidNotification: true, readinessCheck: false,
    restartRecovery: 'none', configEditApplies: true, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_3_5), fieldTypes: new Set(TYPES_3_5), pluginServerConf: CONF_3_4_TO_3_8,
    files: FILES_3_4_TO_3_8,
    limitations: [],
    notes: [
      `${RESTART_3_5_3_6}; on 3.5 no worker resets by itself (worker 0's handler fails)`,
      'every RPC error (also "no plugin instance" and connection refused) posts reset_instances, whose handler on worker 0 then fails '
        + 'with "attempt to index local \'current_instance\' (a nil value)" in Kong\'s error log when worker 0 has cached instances',
    ],
  },
  {
    name: '3.6', tag: '3.6.1', commit: '4e006aa85d7de34668ad40d601e275b575f0d2aa', supported: true,
    rpcFile: 'kong/runloop/plugin_servers/mp_rpc.lua',
    configKeys: KEYS_3_4, seqScope: 'node', cacheKey: '__plugin_id', cacheMatch: ['plugin_id'], startFailure: 'lua-error',
    noInstance: 'post-event-and-retry', resetEvent: 'worker-0', serverPidNotification: true, readinessCheck: false,
    restartRecovery: 'worker-0-only', configEditApplies: false, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_3_6), fieldTypes: new Set(TYPES_3_5), pluginServerConf: CONF_3_4_TO_3_8,
    files: FILES_3_4_TO_3_8,
    limitations: [
      'a change to a grip plugin\'s config (origin, secret, forward_consumer) never reaches a worker that already runs its instance: '
        + 'the cache matches on __plugin_id only, not __seq__; Kong bug fixed in 3.7.0 (97c2651769, Kong/kong#12718); needs kong reload '
        + '(or a plugin-server restart, whose serverPid notification clears the cache)',
    ],
    notes: [
      `${RESTART_3_5_3_6}; on 3.6 only worker 0 resets by itself`,
      'every RPC error (connection refused during an outage too) posts reset_instances: worker 0 forgets its instances, and its next '
        + 'requests during the outage fail StartInstance (500) instead of skipping the plugin (401 from the sidecar)',
    ],
  },
  {
    name: '3.7', tag: '3.7.1', commit: 'e89feb5b85286394330968054c02ac851fd2b781', supported: true,
    rpcFile: 'kong/runloop/plugin_servers/mp_rpc.lua',
    configKeys: KEYS_3_4, seqScope: 'node', cacheKey: '__plugin_id', cacheMatch: ['seq', 'plugin_id'], startFailure: 'lua-error',
    noInstance: 'reset-plugin-post-event-and-retry', resetEvent: 'worker-0', serverPidNotification: true, readinessCheck: false,
    restartRecovery: 'every-worker', configEditApplies: true, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_3_7), fieldTypes: new Set(TYPES_3_5), pluginServerConf: CONF_3_4_TO_3_8,
    files: FILES_3_4_TO_3_8,
    limitations: [],
    notes: [],
  },
  {
    name: '3.8', tag: '3.8.1', commit: '91d7603be4764f7c40d96832b6178d6db60b2f46', supported: true,
    rpcFile: 'kong/runloop/plugin_servers/mp_rpc.lua',
    configKeys: KEYS_3_4, seqScope: 'node', cacheKey: '__plugin_id', cacheMatch: ['seq', 'plugin_id'], startFailure: 'lua-error',
    noInstance: 'reset-plugin-post-event-and-retry', resetEvent: 'worker-0', serverPidNotification: true, readinessCheck: false,
    restartRecovery: 'every-worker', configEditApplies: true, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_3_8), fieldTypes: new Set(TYPES_3_5), pluginServerConf: CONF_3_4_TO_3_8,
    files: FILES_3_4_TO_3_8,
    limitations: [],
    notes: [],
  },
  {
    name: '3.9', tag: '3.9.1', commit: 'b724fc7154de3a9971e33490097d5ea2c1bae93b', supported: true,
    rpcFile: 'kong/runloop/plugin_servers/rpc/mp_rpc.lua',
    configKeys: [...KEYS_3_4.slice(0, 5), '__ws_id', '__key__', '__seq__'],
    seqScope: 'node', cacheKey: '__plugin_id', cacheMatch: ['seq', 'plugin_id'], startFailure: 'lua-error',
    noInstance: 'reset-plugin-post-event-and-retry', resetEvent: 'every-worker', serverPidNotification: true, readinessCheck: false,
    restartRecovery: 'every-worker', configEditApplies: true, rpcMethods: RPC_METHODS, stepMethods: STEP_METHODS, pdk: PDK,
    fieldAttributes: new Set(ATTRIBUTES_3_8), fieldTypes: new Set(TYPES_3_5),
    pluginServerConf: {
      keys: CONF_KEYS,
      socketDefault: '<prefix>/NAME.socket',
      startDefault: '/usr/local/bin/NAME (if it exists)',
      queryDefault: '/usr/local/bin/NAME -dump (if it exists)',
      queryRequired: true,
      pluginsPerServer: 'first',
    },
    files: [
      'kong/runloop/plugin_servers/init.lua', 'kong/runloop/plugin_servers/plugin.lua', 'kong/runloop/plugin_servers/process.lua',
      'kong/runloop/plugin_servers/rpc/init.lua', 'kong/runloop/plugin_servers/rpc/mp_rpc.lua', 'kong/conf_loader/init.lua',
      ...FILES_3_4_TO_3_8.slice(3),
    ],
    limitations: [],
    notes: [],
  },
];

export function kongVersion(name: KongVersionName): KongVersion {
  const v = KONG_VERSIONS.find((k) => k.name === name);
  if (v === undefined) throw new Error(`no facts for Kong ${name}`);
  return v;
}

/** "3.6" as [3, 6], for kong-schema's per-version checks. */
export function versionPair(v: KongVersion): [number, number] {
  const [major, minor] = v.name.split('.').map(Number) as [number, number];
  return [major, minor];
}

const WS_ID = '0dc6f45b-8f8d-40d2-a504-473544ee190b';

export interface PluginEntity {
  pluginId: string;
  routeId?: string;
  serviceId?: string;
  consumerId?: string;
  instanceName?: string;
}

/**
 * The config `v` hands to StartInstance (JSON-encoded) for one plugin entity: the user's fields
 * with the schema defaults applied, plus exactly the bookkeeping keys that version's
 * get_plugin_config sets. `seq` is the __seq__ value.
 */
export function versionConfig(v: KongVersion, info: PluginInfo, user: Record<string, unknown>, entity: PluginEntity, seq: number): Record<string, unknown> {
  const config = withSchemaDefaults(info, user);
  const cacheKeyText = `plugins:grip:${entity.routeId ?? ''}:${entity.serviceId ?? ''}:${entity.consumerId ?? ''}::${WS_ID}`;
  const values: Record<string, unknown> = {
    route_id: entity.routeId,
    service_id: entity.serviceId,
    consumer_id: entity.consumerId,
    plugin_instance_name: entity.instanceName,
    __plugin_id: entity.pluginId,
    __ws_id: WS_ID,
    __key__: cacheKeyText,
    __seq__: seq,
  };
  for (const key of v.configKeys) {
    // Lua nil: the key is absent from the JSON.
    if (values[key] !== undefined) config[key] = values[key];
  }
  return config;
}

/** What the model needs of a worker's connection to the plugin server (KongRpcDriver has it). */
export interface WorkerRpc {
  call(method: string, ...args: unknown[]): Promise<unknown>;
}

export interface VersionedPhaseRun {
  /** The RPC methods Kong sent for this phase, in order (HandleEvent, then one Step per PDK call). */
  rpcs: string[];
  /** An RPC error that ended the phase (bridge_loop's `nil, err`), if any. */
  error?: string;
}

/**
 * bridge_loop as `v` runs it: HandleEvent, then each PDK call answered from `request` with the
 * Step variant get_step_method picks in that version. Never throws on an RPC error: returns it,
 * as bridge_loop returns `nil, err` to handle_event.
 */
export async function runPhaseAs(v: KongVersion, rpc: WorkerRpc, instanceId: number | undefined, phase: string, request: FakeKongRequest): Promise<VersionedPhaseRun> {
  const rpcs: string[] = [];
  const call = async (method: string, params: unknown): Promise<{ EventId: number; Data: unknown }> => {
    rpcs.push(method);
    return await rpc.call(method, params) as { EventId: number; Data: unknown };
  };
  try {
    // A nil InstanceId (2.8 after a failed StartInstance) is absent from the Lua table.
    let step = await call('plugin.HandleEvent', instanceId === undefined ? { EventName: phase } : { InstanceId: instanceId, EventName: phase });
    const eventId = step.EventId;
    while (step.Data !== 'ret') {
      const data = step.Data as { Method: string; Args?: unknown[] };
      const answer = request.answer(data.Method, data.Args ?? []);
      // kong.response.exit ends the request (ngx.exit), a Lua error in a PDK call ends it too.
      if (answer.kind === 'ended') break;
      const stepMethod = v.stepMethods[data.Method] ?? 'plugin.Step';
      const params = answer.value === undefined || answer.value === null ? { EventId: eventId } : { EventId: eventId, Data: answer.value };
      step = await call(stepMethod, params);
    }
    return { rpcs };
  } catch (err) {
    if (err instanceof RpcError) return { rpcs, error: err.message };
    throw err;
  }
}

interface CachedInstance {
  /** Unset while a start is in flight (or, on 2.8, after a failed start). */
  id: number | undefined;
  seq: unknown;
  conf: Record<string, unknown>;
  pluginName: string | undefined;
}

export type AccessOutcome =
  /** The phase ran to its end on `instanceId`; `attempts` handle_event turns were needed. */
  | { kind: 'ran'; instanceId: number | undefined; attempts: number; rpcs: string[] }
  /** A Lua error escaped handle_event (StartInstance failed on 3.x): Kong answers the client 500. */
  | { kind: 'lua-error'; message: string; attempts: number }
  /** handle_event logged the error and returned: the plugin is skipped for this request (fail open). */
  | { kind: 'skipped'; error: string; attempts: number }
  /**
   * Still retrying after `limit` turns on the same instance number: the real Kong never stops
   * (the retry is a tail call), the request hangs.
   */
  | { kind: 'spinning'; attempts: number; instanceIds: Array<number | undefined> };

const PLUGIN_NAME = 'grip';

/** One Kong node's shared state: its version, its workers and the worker events in flight. */
export class KongNodeModel {
  readonly workers: VersionedKongWorker[] = [];
  private pending: Array<{ pluginName: string }> = [];
  /** Errors raised by worker-event handlers (logged by Kong's event library). */
  readonly handlerErrors: string[] = [];
  /** Worker events posted (plugin_server/reset_instances). */
  posted = 0;
  private seq = 0;

  constructor(readonly version: KongVersion) {}

  /** A new __seq__ for a config object (3.6+: one counter in a shared dict for the whole node). */
  nextSeq(): number {
    return ++this.seq;
  }

  addWorker(rpc: WorkerRpc): VersionedKongWorker {
    const w = new VersionedKongWorker(this, this.workers.length, rpc);
    if (rpc instanceof NotifyingRpc) rpc.onNotification = (label, args) => w.notification(label, args);
    this.workers.push(w);
    return w;
  }

  post(pluginName: string): void {
    this.posted++;
    this.pending.push({ pluginName });
  }

  /**
   * Delivers the posted events to each worker's registered handler. Kong delivers them
   * asynchronously while the posting request is waiting on its next RPC; the model delivers
   * them at the start of each handle_event turn, which is that wait.
   */
  deliverEvents(): void {
    const events = this.pending;
    this.pending = [];
    for (const ev of events) {
      for (const w of this.workers) {
        const handler = this.version.resetEvent;
        if (handler === 'none') continue;
        if ((handler === 'worker-0' || handler === 'worker-0-fails') && w.workerId !== 0) continue;
        if (handler === 'worker-0-fails') {
          // reset_instance(plugin_name, conf): key = kong.plugin.get_id() is nil outside a request,
          // running_instances[nil] is nil, and the loop indexes it for the first cached instance.
          if (w.cacheSize() > 0) this.handlerErrors.push(`worker ${w.workerId}: attempt to index local 'current_instance' (a nil value)`);
          continue;
        }
        w.resetPlugin(ev.pluginName);
      }
    }
  }
}

/** One Kong worker's plugin_servers module for the grip plugin, per its version's source. */
export class VersionedKongWorker {
  private readonly cache = new Map<string, CachedInstance>();
  /** Lines this worker's handle_event logged (warn / err), as Kong would. */
  readonly log: string[] = [];
  /** The last pid a serverPid notification carried (rpc_notifications:serverPid). */
  private serverPid: number | undefined;

  constructor(readonly node: KongNodeModel, readonly workerId: number, readonly rpc: WorkerRpc) {}

  cacheSize(): number {
    return this.cache.size;
  }

  /** The instance number cached for a plugin entity (keyed as this version keys it). */
  cached(conf: Record<string, unknown>): number | undefined {
    return this.cache.get(this.keyOf(conf))?.id;
  }

  /** reset_instances_for_plugin: forget every cached instance of a plugin. */
  resetPlugin(pluginName: string): void {
    for (const [k, inst] of this.cache) if (inst.pluginName === pluginName) this.cache.delete(k);
  }

  /**
   * Rpc:notification: serverPid is the only handler (rpc_notifications); a pid other than the
   * last one this worker saw forgets every instance it runs on that server.
   */
  notification(label: unknown, args: unknown): void {
    if (label !== 'serverPid' || !this.node.version.serverPidNotification) return;
    const pid = Number(args);
    if (this.serverPid !== undefined && pid !== this.serverPid) this.cache.clear();
    this.serverPid = pid;
  }

  private keyOf(conf: Record<string, unknown>): string {
    // 2.8: conf.__key__; 3.x: kong.plugin.get_id(), which is ctx.plugin_id = conf.__plugin_id.
    return String(conf[this.node.version.cacheKey]);
  }

  /** get_instance_id. Throws (a Lua error) when StartInstance fails on 3.x. */
  private async instanceId(conf: Record<string, unknown>): Promise<number | undefined> {
    const v = this.node.version;
    const key = this.keyOf(conf);
    const info = this.cache.get(key);
    const matches = info !== undefined && info.id !== undefined
      && (!v.cacheMatch.includes('seq') || info.seq === conf['__seq__'])
      && (!v.cacheMatch.includes('plugin_id') || info.conf['__plugin_id'] === key);
    if (matches) return info.id;
    const oldId = info?.id;
    if (info === undefined) this.cache.set(key, { id: undefined, seq: conf['__seq__'], conf, pluginName: undefined });
    else info.id = undefined;
    let started: { Id: number };
    try {
      // Rpc:call_start_instance: the config travels JSON-encoded (cjson.encode).
      started = await this.rpc.call('plugin.StartInstance', { Name: PLUGIN_NAME, Config: JSON.stringify(conf) }) as { Id: number };
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      if (v.startFailure === 'error-string-as-instance') {
        // 2.8: call_start_instance returns the error string; ("...").id is nil.
        this.log.push(`err: ${err.message}`);
        const claimed = this.cache.get(key) as CachedInstance;
        claimed.id = undefined;
        return undefined;
      }
      this.log.push(`err: starting instance: ${err.message}`);
      this.cache.delete(key);
      throw new LuaError(err.message);
    }
    this.cache.set(key, { id: started.Id, seq: conf['__seq__'], conf, pluginName: PLUGIN_NAME });
    if (oldId !== undefined) {
      try { await this.rpc.call('plugin.CloseInstance', oldId); } catch { /* Kong ignores it: another thread may have closed it */ }
    }
    return started.Id;
  }

  /**
   * Rpc:handle_event for the access phase, with this version's error handling. `limit` bounds the
   * turns the model takes on the same instance number before reporting 'spinning'.
   */
  async access(conf: Record<string, unknown>, request: FakeKongRequest, limit = 6): Promise<AccessOutcome> {
    const v = this.node.version;
    const ids: Array<number | undefined> = [];
    for (let attempt = 1; ; attempt++) {
      this.node.deliverEvents();
      let id: number | undefined;
      try {
        id = await this.instanceId(conf);
      } catch (err) {
        if (err instanceof LuaError) return { kind: 'lua-error', message: err.message, attempts: attempt };
        throw err;
      }
      ids.push(id);
      const run = await runPhaseAs(v, this.rpc, id, 'access', request);
      if (run.error === undefined) return { kind: 'ran', instanceId: id, attempts: attempt, rpcs: run.rpcs };
      const err = run.error;
      const noInstance = err.toLowerCase().includes('no plugin instance');
      switch (v.noInstance) {
        case 'reset-entry-and-retry':
          this.log.push(noInstance ? `warn: ${err}` : `err: ${err}`);
          if (noInstance) this.cache.delete(this.keyOf(conf));
          break;
        case 'post-event-and-retry':
          this.node.post(PLUGIN_NAME);
          this.log.push(noInstance ? `warn: ${err}` : `err: ${err}`);
          break;
        case 'reset-plugin-post-event-and-retry':
          if (noInstance) {
            this.resetPlugin(PLUGIN_NAME);
            this.node.post(PLUGIN_NAME);
          }
          this.log.push(noInstance ? `warn: ${err}` : `err: ${err}`);
          break;
      }
      if (!noInstance) return { kind: 'skipped', error: err, attempts: attempt };
      // The retry is a tail call in Lua: it only ends when an instance runs the event.
      if (attempt >= limit) return { kind: 'spinning', attempts: attempt, instanceIds: ids };
    }
  }
}

class LuaError extends Error {}

/**
 * Rpc:call of mp_rpc.lua with notifications: a `[2, label, args]` message read while waiting for
 * an answer goes to `onNotification` (Kong's rpc_notifications, of which serverPid is the only
 * one), then reading goes on. One connection, reopened when the server closed it (Kong's pool).
 */
export class NotifyingRpc extends KongRpcConnection implements WorkerRpc {}
