import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { redact } from './bus/nats-log.js';
import { normalizeSubjectPrefix } from './bus/subject.js';
import { KgError } from './errors.js';
import { didYouMean, suggest } from './suggest.js';
import { parseOriginUrl } from './kong/handoff-format.js';

// The sidecar's configuration, typed once and frozen. Layers, lowest first: defaults, the YAML
// file (--config), environment variables (GRIP_*, NATS_URL), command-line flags. Every problem
// is collected and reported together in one KG_ERR_CONFIG_INVALID. Only this module reads
// process.env.

export interface HostPort { host: string; port: number }

export interface Limits {
  maxConnections: number;
  /** Published items waiting for one slow connection before it is dropped. */
  maxQueueItems: number;
  /** Bytes waiting in one connection's socket before it is dropped as a slow consumer. */
  maxQueueBytes: number;
  maxChannelsPerConnection: number;
  /** Client body kept for GRIP holds/retries (Pushpin: 100,000). */
  maxRequestBodyBytes: number;
  /** Buffered origin body for response holds and JSON instructs (Pushpin: 100,000). */
  maxInstructBodyBytes: number;
  maxPublishBodyBytes: number;
  /** Time allowed for the origin to send response headers. */
  originTimeoutMs: number;
  /** Time the origin may go without sending body bytes the sidecar waits for (instruct, timeout or relayed body). */
  originBodyTimeoutMs: number;
  /** Client connections with no complete request yet (idle kept-alive or still sending headers). */
  maxIdleConnections: number;
  /** Time a client has to send a complete request head, on a new or an idle kept-alive connection. */
  headerTimeoutMs: number;
  /** Time a client has to send its whole request body. */
  requestBodyTimeoutMs: number;
  /** Largest body a published body-patch may produce for one long-poll. */
  maxPatchedBodyBytes: number;
  /** Subscription meta keys one connection may hold (Grip-Set-Meta, hold.meta, WS set-meta). */
  maxMetaKeys: number;
  /** Bytes of subscription meta (keys and values, UTF-8) one connection may hold. */
  maxMetaBytes: number;
}

export interface KongConfig {
  /** Shared with the grip plugin's `secret` (at least 32 bytes, as the plugin's schema counts). */
  secret: string;
  /** Origin base URLs a handoff may name (scheme, host, port, path prefix). At least one. */
  allowedOrigins: string[];
  /** Oldest handoff token accepted, in seconds. */
  maxAgeSec: number;
  /** Nonces remembered against replay; when full, new requests get 503 (see docs/errors.md). */
  replayCacheSize: number;
  /** max_connections_per_consumer: how long a process's connection counts last unrenewed (a dead process's slots return within it). */
  connectionLeaseSec: number;
}

/** Usage metering on NATS (docs/kong.md, "Usage metering"); on by default in Kong mode. */
export interface UsageConfig {
  /** Length of a period: its records are published when it ends. */
  intervalSec: number;
  /** NATS subject of the records. */
  subject: string;
}

export interface HoldDefaults {
  /** Whether a channel's first local subscriber triggers Pushpin's refresh (docs/grip.md, "Reliability"). */
  refreshOnFirstSubscription: boolean;
  firstSubscriptionRefreshMs: number;
  /**
   * How long a channel stays subscribed on the bus after its last local subscriber leaves, so a
   * long-poll that re-polls at once is not a first subscription again (and NATS interest does not churn).
   */
  channelLingerMs: number;
}

export interface NatsConfig {
  servers: string[];
  /** Ends in `.`; a channel's subject is this plus the escaped channel (bus/subject.ts). */
  subjectPrefix: string;
  reconnectWaitMs: number;
  connectTimeoutMs: number;
  pingIntervalMs: number;
  /** Announce a channel's first and last local subscriber on NATS (docs/nats.md). */
  subscriptionEvents: boolean;
  /** Ends in `.`; events go to this plus the escaped channel. */
  subscriptionEventPrefix: string;
  /** History in JetStream; absent = core NATS only (the default). */
  jetstream?: JetStreamConfig;
}

/** The JetStream stream that keeps recent items of every channel (docs/nats.md, "History"). */
export interface JetStreamConfig {
  /** Stream name; created (or brought in line) by the sidecar. */
  stream: string;
  /** Items older than this are dropped (0 = no age limit). */
  maxAgeSec: number;
  /** Items kept over all channels (oldest dropped first). */
  maxMessages: number;
  /** Items kept per channel; also bounds a history scan for a client's last id. */
  maxMessagesPerChannel: number;
  /** Bytes kept over all channels (-1 = no limit). */
  maxBytes: number;
  storage: 'file' | 'memory';
  replicas: number;
  /**
   * Ends in `.`; the server republishes each stored item here with its stream sequence, and
   * sidecars subscribe here instead of the channel subject, so they know what they delivered.
   */
  republishPrefix: string;
  /** Request path prefixes where an SSE client's Last-Event-ID is taken as the prev-id of its channels. */
  lastEventIdPaths: string[];
  /** Items each channel keeps in memory as handed out, to catch a client up without stream reads (0 = none). */
  recentItemsPerChannel: number;
  /** Bytes (stored payload sizes) those items may take over all channels of a process. */
  recentBytes: number;
}

export const DEFAULT_JETSTREAM: JetStreamConfig = {
  stream: 'GRIP',
  maxAgeSec: 3600,
  maxMessages: 1_000_000,
  maxMessagesPerChannel: 1000,
  maxBytes: -1,
  storage: 'file',
  replicas: 1,
  republishPrefix: 'grip.js.',
  lastEventIdPaths: [],
  recentItemsPerChannel: 256,
  recentBytes: 64 * 1024 * 1024,
};

/** Per-channel ordering of items by id / prev-id (docs/grip.md, "Reliability"); Pushpin's values are the defaults. */
export interface SequencingConfig {
  /** How long an out-of-order item waits for its predecessor. */
  waitMs: number;
  /** Items waiting per channel; beyond it new out-of-order items go out at once. */
  maxPending: number;
  /** How long an item id is remembered to drop repeats (0 = no de-duplication). */
  idTtlMs: number;
}

export const DEFAULT_SEQUENCING: SequencingConfig = { waitMs: 5000, maxPending: 100, idTtlMs: 60_000 };

export interface Config {
  listen: HostPort;
  control: HostPort;
  /** Standalone mode: the origin every client request goes to. */
  origin?: string;
  sigKey?: string;
  sigIss: string;
  /** Bearer token required on the publish API; none = open (like Pushpin). */
  publishToken?: string;
  nats?: NatsConfig;
  /** Kong mode: every client request must carry a valid handoff token from the grip plugin. */
  kong?: KongConfig;
  workers: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  limits: Limits;
  hold: HoldDefaults;
  ws: WsSettings;
  sequencing: SequencingConfig;
  shutdown: ShutdownConfig;
  /** Absent: usage is not metered. */
  usage?: UsageConfig;
}

/** SIGTERM handling: stop accepting, end held connections, then exit. */
export interface ShutdownConfig {
  /** Longest wait for clients to go and publishes in flight to finish before connections are cut. */
  drainMs: number;
}

/** WebSocket-over-HTTP sessions (docs/websocket.md); Pushpin's values are the defaults. */
export interface WsSettings {
  /** Largest client message; a larger one closes the connection with 1009. */
  maxMessageBytes: number;
  /** Client messages waiting for the origin before the sidecar stops reading from the client. */
  maxPendingBytes: number;
  /** Largest websocket-events reply body from the origin; larger fails the connection. */
  maxResponseBytes: number;
  /** Floor for the origin's Keep-Alive-Interval. */
  keepAliveMinSec: number;
  /** Retries of a POST that never reached the origin, after retryBaseMs·2^n plus up to retryBaseMs. */
  retries: number;
  retryBaseMs: number;
  /** Answer client pings in the sidecar instead of forwarding PING to the origin (Pushpin forwards). */
  answerPings: boolean;
}

export const DEFAULT_WS: WsSettings = {
  maxMessageBytes: 200_000,
  maxPendingBytes: 200_000,
  maxResponseBytes: 1_000_000,
  keepAliveMinSec: 20,
  retries: 5,
  retryBaseMs: 1000,
  answerPings: false,
};

export const DEFAULT_LIMITS: Limits = {
  maxConnections: 50_000,
  maxQueueItems: 100,
  maxQueueBytes: 1_048_576,
  maxChannelsPerConnection: 20,
  maxRequestBodyBytes: 100_000,
  maxInstructBodyBytes: 100_000,
  maxPublishBodyBytes: 1_000_000,
  originTimeoutMs: 30_000,
  originBodyTimeoutMs: 30_000,
  /** Resolved to maxConnections when not set (see loadConfig). */
  maxIdleConnections: 50_000,
  headerTimeoutMs: 10_000,
  requestBodyTimeoutMs: 30_000,
  maxPatchedBodyBytes: 1_048_576,
  maxMetaKeys: 32,
  maxMetaBytes: 8_192,
};

/** Limits where 0 would refuse everything or spin: at least 1. */
const MIN_ONE_LIMITS = new Set<keyof Limits>(['maxQueueItems', 'maxChannelsPerConnection', 'maxIdleConnections', 'headerTimeoutMs', 'requestBodyTimeoutMs', 'originBodyTimeoutMs']);

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Every command-line option: its flag, environment variable and config key (the file's key
 * where it differs), and its --help text, limits included. FLAGS, ENV and USAGE come from here,
 * so a new option cannot be missing from any of them.
 */
interface OptionSpec {
  flag: string;
  arg: string;
  env: string;
  key: string;
  /** The key in the --config file where it differs from `key`; '' for none. */
  fileKey?: string;
  help: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { flag: '--listen', arg: 'HOST:PORT', env: 'GRIP_LISTEN', key: 'listen',
    help: 'client-facing HTTP and WebSocket; default 127.0.0.1:7999; port 0-65535 (0 = any free port)' },
  { flag: '--control', arg: 'HOST:PORT', env: 'GRIP_CONTROL', key: 'control',
    help: 'control port: POST /publish/, GET /metrics, GET /healthz (200 while the process runs), GET /readyz (200 when the bus is connected, 503 while it is not or while draining); default 127.0.0.1:5561; port 0-65535' },
  { flag: '--origin', arg: 'URL', env: 'GRIP_ORIGIN', key: 'origin',
    help: 'standalone mode: the origin every client request is forwarded to; an http:// or https:// URL; required unless --kong-secret is set' },
  { flag: '--sig-key', arg: 'SECRET', env: 'GRIP_SIG_KEY', key: 'sigKey',
    help: 'HS256 key of the Grip-Sig JWT sent to the origin, at least 1 byte ("base64:" prefix for a binary key); default: no Grip-Sig' },
  { flag: '--sig-iss', arg: 'ISSUER', env: 'GRIP_SIG_ISS', key: 'sigIss',
    help: 'Grip-Sig issuer, at least 1 character; default pushpin' },
  { flag: '--publish-token', arg: 'TOKEN', env: 'GRIP_PUBLISH_TOKEN', key: 'publishToken',
    help: 'require "Authorization: Bearer TOKEN" on the publish API and /metrics; at least 8 bytes; default: open' },
  { flag: '--nats', arg: 'URL[,URL...]', env: 'NATS_URL', key: 'nats', fileKey: 'nats.servers',
    help: 'NATS servers (nats://, tls://, ws://, wss:// URLs or HOST:PORT) to use as the bus; needed for several sidecars or workers; default: the in-process bus' },
  { flag: '--nats-prefix', arg: 'PREFIX', env: 'GRIP_NATS_PREFIX', key: 'natsPrefix', fileKey: 'nats.subjectPrefix',
    help: 'NATS subject prefix of channels; needs --nats; default grip.ch.' },
  { flag: '--kong-secret', arg: 'SECRET', env: 'GRIP_KONG_SECRET', key: 'kongSecret', fileKey: 'kong.secret',
    help: 'Kong mode: serve only requests handed off by the grip plugin; the plugin\'s secret, at least 32 bytes; needs --nats (with JetStream) and --kong-allowed-origins; excludes --origin' },
  { flag: '--kong-allowed-origins', arg: 'URL[,URL...]', env: 'GRIP_KONG_ALLOWED_ORIGINS', key: 'kongAllowedOrigins', fileKey: 'kong.allowedOrigins',
    help: 'Kong mode: origin base URLs a handoff may name, at least one, without credentials, query or fragment' },
  { flag: '--workers', arg: 'N', env: 'GRIP_WORKERS', key: 'workers',
    help: 'worker processes sharing the listen port, 1-256; more than 1 needs --nats; default: the number of cores with NATS, else 1' },
  { flag: '--log-level', arg: 'LEVEL', env: 'GRIP_LOG_LEVEL', key: 'logLevel',
    help: `${LOG_LEVELS.join('|')}; default info` },
  { flag: '--config', arg: 'FILE', env: 'GRIP_CONFIG', key: 'config', fileKey: '',
    help: 'YAML file with the keys named here and the sections limits:, hold:, ws:, sequencing:, shutdown:, nats:, kong: (docs/security.md and docs/nats.md list them with defaults and limits)' },
];

/** Flags the CLI accepts, with the config key each one sets. */
export const FLAGS: Readonly<Record<string, string>> = Object.fromEntries(OPTIONS.map((o) => [o.flag, o.key]));

const ENV: Readonly<Record<string, string>> = Object.fromEntries(OPTIONS.map((o) => [o.env, o.key]));

type RawConfig = Record<string, unknown>;

/** Breaks `text` into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

function usage(): string {
  const indent = ' '.repeat(28);
  const out = [
    'Usage: grip-sidecar [options]',
    '',
    'Each option can also be set by the environment variable or config file key shown under it.',
    'Flags win over the environment, which wins over the --config file, which wins over defaults.',
    '',
  ];
  for (const o of OPTIONS) {
    const head = `  ${o.flag} ${o.arg}`;
    const text = wrap(o.help, 100 - indent.length);
    if (head.length < indent.length - 1) out.push(head.padEnd(indent.length) + text[0]);
    else out.push(head, indent + text[0]);
    for (const line of text.slice(1)) out.push(indent + line);
    const fileKey = o.fileKey ?? o.key;
    out.push(`${indent}env ${o.env}${fileKey === '' ? '' : `, file ${fileKey}:`}`);
  }
  out.push(
    `  --help, -h${' '.repeat(indent.length - 12)}show this help and exit`,
    '',
    'Exit status: 0 after a clean stop (SIGTERM, SIGINT); 1 when a port cannot be bound or start-up',
    'fails (the message names the option that sets the port); 2 when the configuration is invalid.',
    '',
  );
  return out.join('\n');
}

export const USAGE = usage();

/**
 * Splits argv into config keys. Throws KG_ERR_CONFIG_INVALID listing every unknown flag (with the
 * nearest known one) and every flag without a value.
 */
export function parseArgs(argv: readonly string[]): { values: RawConfig; help: boolean } {
  const { values, help, problems } = readArgs(argv);
  if (problems.length > 0 && !help) throw invalid(problems);
  return { values, help };
}

/** parseArgs without throwing: loadConfig reports these problems with all the others. */
export function readArgs(argv: readonly string[]): { values: RawConfig; help: boolean; problems: string[]; named: Set<string> } {
  const values: RawConfig = {};
  /** Keys whose flag was given, with or without a valid value. */
  const named = new Set<string>();
  const problems: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const key = FLAGS[flag];
    if (key === undefined) {
      // An unknown flag's value (if any) is skipped too, so it is not reported as a second problem.
      if (eq < 0 && argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith('-')) i++;
      problems.push(flag.startsWith('-')
        ? `unknown option ${JSON.stringify(flag)}${didYouMean(flag, Object.keys(FLAGS))} (see --help)`
        : `unexpected argument ${JSON.stringify(flag)}: options start with -- (see --help)`);
      continue;
    }
    named.add(key);
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value !== undefined && !value.startsWith('--')) i++;
    }
    if (value === undefined || (eq < 0 && value.startsWith('--'))) {
      problems.push(`option ${flag} needs a value (${flag} ${OPTIONS.find((o) => o.flag === flag)?.arg ?? 'VALUE'})`);
      continue;
    }
    values[key] = value;
  }
  return { values, help, problems, named };
}

function invalid(problems: readonly string[]): KgError {
  return new KgError('KG_ERR_CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
}

function envValues(env: NodeJS.ProcessEnv): RawConfig {
  const values: RawConfig = {};
  for (const [name, key] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') values[key] = v;
  }
  return values;
}

function readFileValues(path: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KgError('KG_ERR_CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new KgError('KG_ERR_CONFIG_INVALID', `config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new KgError('KG_ERR_CONFIG_INVALID', `config file ${path} must hold a mapping`);
  return doc as RawConfig;
}

const FILE_KEYS = new Set(['listen', 'control', 'origin', 'sigKey', 'sigIss', 'publishToken', 'nats', 'kong', 'kongSecret', 'kongAllowedOrigins',
  'workers', 'logLevel', 'limits', 'hold', 'ws', 'sequencing', 'shutdown', 'usage']);

class Problems {
  readonly list: string[] = [];
  add(key: string, problem: string, got: unknown): void {
    this.list.push(`${key} ${problem}, got ${JSON.stringify(got)}`);
  }
}

function hostPort(key: string, v: unknown, fallback: HostPort, problems: Problems): HostPort {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return port(key, v, problems) === undefined ? fallback : { host: fallback.host, port: v };
  if (typeof v !== 'string') { problems.add(key, 'must be HOST:PORT', v); return fallback; }
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v) ?? /^()()(\d+)$/.exec(v);
  if (!m) { problems.add(key, 'must be HOST:PORT', v); return fallback; }
  const p = port(key, Number(m[3]), problems);
  return { host: m[1] || m[2] || fallback.host, port: p ?? fallback.port };
}

function port(key: string, n: number, problems: Problems): number | undefined {
  if (!Number.isInteger(n) || n < 0 || n > 65535) { problems.add(key, 'port must be 0-65535', n); return undefined; }
  return n;
}

/** A URL as it may be shown: any `user:password@` replaced by `***@`. */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, '$1***@');
}

function httpUrl(key: string, v: unknown, problems: Problems): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') {
    try {
      const u = new URL(v);
      if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
    } catch { /* reported below */ }
  }
  problems.add(key, 'must be an http:// or https:// URL', typeof v === 'string' ? withoutCredentials(v) : v);
  return undefined;
}

/**
 * A secret (key, token): at least `minBytes` bytes of UTF-8, as Kong's schema and the grip plugin
 * count them. A refused value is described by its length only, never shown.
 */
function secret(key: string, v: unknown, problems: Problems, minBytes: number): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || Buffer.byteLength(v) < minBytes) {
    problems.list.push(`${key} must be a string of at least ${minBytes} bytes, got ${typeof v === 'string' ? `${Buffer.byteLength(v)} bytes` : typeof v}`);
    return undefined;
  }
  return v;
}

function str(key: string, v: unknown, problems: Problems, minLength = 1): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length < minLength) { problems.add(key, `must be a string of at least ${minLength} characters`, v); return undefined; }
  return v;
}

function int(key: string, v: unknown, min: number, max: number, fallback: number, problems: Problems): number {
  if (v === undefined) return fallback;
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    problems.add(key, `must be an integer ${min}-${max}`, v);
    return fallback;
  }
  return n;
}

function bool(key: string, v: unknown, fallback: boolean, problems: Problems): boolean {
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  problems.add(key, 'must be true or false', v);
  return fallback;
}

function section(key: string, v: unknown, problems: Problems): RawConfig {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) { problems.add(key, 'must be a mapping', v); return {}; }
  return v as RawConfig;
}

function unknownKeys(prefix: string, obj: RawConfig, known: readonly string[], problems: Problems): void {
  for (const k of Object.keys(obj)) {
    if (known.includes(k)) continue;
    const near = suggest(k, known);
    problems.list.push(`${prefix}${k} is not a known setting${near === undefined ? '' : ` (did you mean ${prefix}${near}?)`}`);
  }
}

export interface LoadOptions {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Values set programmatically (tests, embedding); highest precedence. */
  overrides?: RawConfig;
}

/** Builds the frozen Config. Throws KgError KG_ERR_CONFIG_INVALID listing every problem. */
export function loadConfig(options: LoadOptions = {}): Readonly<Config> {
  const args = readArgs(options.argv ?? []);
  const flagValues = args.values;
  const env = envValues(options.env ?? process.env);
  const configPath = (options.overrides?.['config'] ?? flagValues['config'] ?? env['config']) as string | undefined;
  const file = configPath === undefined ? {} : readFileValues(configPath);
  const problems = new Problems();
  problems.list.push(...args.problems);
  for (const k of Object.keys(file)) {
    if (!FILE_KEYS.has(k)) problems.list.push(`${k} is not a known setting${didYouMean(k, [...FILE_KEYS])} (in ${configPath})`);
  }
  const raw: RawConfig = { ...file, ...env, ...flagValues, ...options.overrides };

  const limitsRaw = section('limits', raw['limits'], problems);
  unknownKeys('limits.', limitsRaw, Object.keys(DEFAULT_LIMITS), problems);
  const limits = {} as Limits;
  for (const [k, d] of Object.entries(DEFAULT_LIMITS) as Array<[keyof Limits, number]>) {
    limits[k] = int(`limits.${k}`, limitsRaw[k], MIN_ONE_LIMITS.has(k) ? 1 : 0, 2 ** 31 - 1, d, problems);
  }
  // Idle sockets get as many places as connections unless told otherwise.
  if (limitsRaw['maxIdleConnections'] === undefined) limits.maxIdleConnections = limits.maxConnections;
  const holdRaw = section('hold', raw['hold'], problems);
  unknownKeys('hold.', holdRaw, ['refreshOnFirstSubscription', 'firstSubscriptionRefreshMs', 'channelLingerMs'], problems);
  const hold: HoldDefaults = {
    refreshOnFirstSubscription: bool('hold.refreshOnFirstSubscription', holdRaw['refreshOnFirstSubscription'], true, problems),
    firstSubscriptionRefreshMs: int('hold.firstSubscriptionRefreshMs', holdRaw['firstSubscriptionRefreshMs'], 0, 60_000, 1000, problems),
    channelLingerMs: int('hold.channelLingerMs', holdRaw['channelLingerMs'], 0, 600_000, 5000, problems),
  };
  const wsRaw = section('ws', raw['ws'], problems);
  unknownKeys('ws.', wsRaw, Object.keys(DEFAULT_WS), problems);
  const ws: WsSettings = {
    maxMessageBytes: int('ws.maxMessageBytes', wsRaw['maxMessageBytes'], 1, 2 ** 31 - 1, DEFAULT_WS.maxMessageBytes, problems),
    maxPendingBytes: int('ws.maxPendingBytes', wsRaw['maxPendingBytes'], 1, 2 ** 31 - 1, DEFAULT_WS.maxPendingBytes, problems),
    maxResponseBytes: int('ws.maxResponseBytes', wsRaw['maxResponseBytes'], 1, 2 ** 31 - 1, DEFAULT_WS.maxResponseBytes, problems),
    keepAliveMinSec: int('ws.keepAliveMinSec', wsRaw['keepAliveMinSec'], 1, 3600, DEFAULT_WS.keepAliveMinSec, problems),
    retries: int('ws.retries', wsRaw['retries'], 0, 20, DEFAULT_WS.retries, problems),
    retryBaseMs: int('ws.retryBaseMs', wsRaw['retryBaseMs'], 1, 60_000, DEFAULT_WS.retryBaseMs, problems),
    answerPings: bool('ws.answerPings', wsRaw['answerPings'], DEFAULT_WS.answerPings, problems),
  };

  const seqRaw = section('sequencing', raw['sequencing'], problems);
  unknownKeys('sequencing.', seqRaw, Object.keys(DEFAULT_SEQUENCING), problems);
  const sequencing: SequencingConfig = {
    waitMs: int('sequencing.waitMs', seqRaw['waitMs'], 0, 600_000, DEFAULT_SEQUENCING.waitMs, problems),
    maxPending: int('sequencing.maxPending', seqRaw['maxPending'], 0, 100_000, DEFAULT_SEQUENCING.maxPending, problems),
    idTtlMs: int('sequencing.idTtlMs', seqRaw['idTtlMs'], 0, 3_600_000, DEFAULT_SEQUENCING.idTtlMs, problems),
  };
  const shutdownRaw = section('shutdown', raw['shutdown'], problems);
  unknownKeys('shutdown.', shutdownRaw, ['drainMs'], problems);
  const shutdown: ShutdownConfig = { drainMs: int('shutdown.drainMs', shutdownRaw['drainMs'], 0, 600_000, 10_000, problems) };

  const logLevel = raw['logLevel'] ?? 'info';
  if (!(LOG_LEVELS as readonly unknown[]).includes(logLevel)) problems.add('logLevel', `must be one of ${LOG_LEVELS.join('|')}`, logLevel);

  const config: Config = {
    listen: hostPort('listen', raw['listen'], { host: '127.0.0.1', port: 7999 }, problems),
    control: hostPort('control', raw['control'], { host: '127.0.0.1', port: 5561 }, problems),
    sigIss: str('sigIss', raw['sigIss'], problems) ?? 'pushpin',
    // Several processes only share publishes through NATS; the in-process bus needs one.
    workers: int('workers', raw['workers'], 1, 256, raw['nats'] === undefined ? 1 : availableParallelism(), problems),
    logLevel: logLevel as Config['logLevel'],
    limits,
    hold,
    ws,
    sequencing,
    shutdown,
  };
  const origin = httpUrl('origin', raw['origin'], problems);
  if (origin !== undefined) config.origin = origin;
  const sigKey = secret('sigKey', raw['sigKey'], problems, 1);
  if (sigKey !== undefined) config.sigKey = sigKey;
  const publishToken = secret('publishToken', raw['publishToken'], problems, 8);
  if (publishToken !== undefined) config.publishToken = publishToken;

  const nats = raw['nats'];
  if (nats !== undefined) {
    // --nats / NATS_URL give the servers; the file's nats section still supplies the rest.
    const fileNats = file['nats'];
    const natsRaw: RawConfig = typeof nats === 'string'
      ? { ...(typeof fileNats === 'object' && fileNats !== null && !Array.isArray(fileNats) ? fileNats as RawConfig : {}), servers: nats }
      : section('nats', nats, problems);
    unknownKeys('nats.', natsRaw, ['servers', 'subjectPrefix', 'reconnectWaitMs', 'connectTimeoutMs', 'pingIntervalMs',
      'subscriptionEvents', 'subscriptionEventPrefix', 'jetstream'], problems);
    const servers = typeof natsRaw['servers'] === 'string' ? natsRaw['servers'].split(',').map((s) => s.trim()).filter(Boolean) : natsRaw['servers'];
    const prefix = normalizeSubjectPrefix(String(raw['natsPrefix'] ?? natsRaw['subjectPrefix'] ?? 'grip.ch.'));
    if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === 'string' && /^(nats|tls|ws|wss):\/\/|^[^:/]+:\d+$/.test(s))) {
      // Shown without credentials: a server URL may carry user:password@.
      const shown = Array.isArray(servers) ? redact(servers.map(String)) : typeof natsRaw['servers'] === 'string' ? redact([natsRaw['servers']])[0] : natsRaw['servers'];
      problems.add('nats.servers', 'must be nats://HOST:PORT URLs, comma-separated', shown);
    } else if ('error' in prefix) {
      problems.list.push(`nats.subjectPrefix: ${prefix.error}`);
    } else {
      config.nats = {
        servers: servers as string[],
        subjectPrefix: prefix.prefix,
        reconnectWaitMs: int('nats.reconnectWaitMs', natsRaw['reconnectWaitMs'], 10, 600_000, 1000, problems),
        connectTimeoutMs: int('nats.connectTimeoutMs', natsRaw['connectTimeoutMs'], 100, 600_000, 5000, problems),
        pingIntervalMs: int('nats.pingIntervalMs', natsRaw['pingIntervalMs'], 100, 3_600_000, 10_000, problems),
        subscriptionEvents: bool('nats.subscriptionEvents', natsRaw['subscriptionEvents'], true, problems),
        subscriptionEventPrefix: subjectPrefix('nats.subscriptionEventPrefix', natsRaw['subscriptionEventPrefix'], 'grip.sub.', problems),
      };
      const jetstream = jetStreamConfig(natsRaw['jetstream'], problems);
      if (jetstream !== undefined) config.nats.jetstream = jetstream;
      checkPrefixesApart(config.nats, problems);
    }
  } else if (raw['natsPrefix'] !== undefined) {
    problems.list.push('natsPrefix needs nats (--nats URL)');
  }
  if (config.nats === undefined && config.workers > 1 && raw['nats'] === undefined) {
    problems.add('workers', 'must be 1 without NATS (the in-process bus cannot reach other processes)', config.workers);
  }

  const kongRaw = typeof raw['kong'] === 'object' ? section('kong', raw['kong'], problems) : {};
  unknownKeys('kong.', kongRaw, ['secret', 'allowedOrigins', 'maxAgeSec', 'replayCacheSize', 'connectionLeaseSec'], problems);
  const kongSecret = secret('kong.secret', raw['kongSecret'] ?? kongRaw['secret'], problems, 32);
  if (kongSecret !== undefined) {
    const fromFlag = raw['kongAllowedOrigins'];
    const allowed = typeof fromFlag === 'string'
      ? fromFlag.split(',').map((o) => o.trim()).filter(Boolean)
      : kongRaw['allowedOrigins'] ?? [];
    if (!Array.isArray(allowed) || allowed.length === 0 || !allowed.every((o) => typeof o === 'string')) {
      problems.add('kong.allowedOrigins', 'must list at least one origin URL the grip plugin may name (Kong mode refuses every other origin)', allowed);
    } else {
      allowed.forEach((o, i) => {
        if (withoutCredentials(o) !== o) {
          problems.list.push(`kong.allowedOrigins[${i}] must not carry credentials (user:password@), got ${JSON.stringify(withoutCredentials(o))}`);
          return;
        }
        try {
          parseOriginUrl(`kong.allowedOrigins[${i}]`, o);
        } catch (err) {
          problems.list.push((err as Error).message);
        }
      });
    }
    config.kong = {
      secret: kongSecret,
      allowedOrigins: Array.isArray(allowed) ? allowed.map(String) : [],
      maxAgeSec: int('kong.maxAgeSec', kongRaw['maxAgeSec'], 1, 3600, 30, problems),
      replayCacheSize: int('kong.replayCacheSize', kongRaw['replayCacheSize'], 1000, 100_000_000, 500_000, problems),
      connectionLeaseSec: int('kong.connectionLeaseSec', kongRaw['connectionLeaseSec'], 2, 3600, 15, problems),
    };
    if (config.origin !== undefined) {
      problems.list.push('origin (standalone mode) and kong.secret (Kong mode) exclude each other: in Kong mode each request names its origin in the handoff');
    }
    if (raw['nats'] === undefined) {
      problems.list.push('kong.secret (Kong mode) needs nats (--nats URL, a nats-server with JetStream, nats-server -js): every handoff nonce is claimed once for the whole fleet in a JetStream key-value bucket (docs/kong.md, "Replays")');
    }
  }
  // Only when neither was given at all: a bad --origin or --kong-secret is already reported.
  if (raw['origin'] === undefined && raw['kongSecret'] === undefined && kongRaw['secret'] === undefined
    && !args.named.has('origin') && !args.named.has('kongSecret')) {
    problems.list.push('origin is required (--origin URL) unless Kong mode is on (--kong-secret)');
  }
  const usage = usageConfig(raw['usage'], config, problems);
  if (usage !== undefined) config.usage = usage;

  if (problems.list.length > 0) throw invalid(problems.list);
  return deepFreeze(config);
}

/** `usage`: { enabled (default: on in Kong mode), intervalSec (60), subject (grip.usage) }; needs NATS. */
function usageConfig(v: unknown, config: Config, problems: Problems): UsageConfig | undefined {
  const raw = section('usage', v, problems);
  unknownKeys('usage.', raw, ['enabled', 'intervalSec', 'subject'], problems);
  const enabled = bool('usage.enabled', raw['enabled'], config.kong !== undefined, problems);
  const intervalSec = int('usage.intervalSec', raw['intervalSec'], 1, 86_400, 60, problems);
  const subject = raw['subject'] ?? 'grip.usage';
  if (typeof subject !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subject)) {
    problems.add('usage.subject', 'must be a NATS subject without wildcards, such as "grip.usage"', subject);
  }
  if (!enabled) return undefined;
  if (config.nats === undefined) {
    if (raw['enabled'] !== undefined) problems.list.push('usage.enabled needs nats (--nats URL): usage records are published on NATS');
    return undefined;
  }
  // Under a channel or event prefix, the records would be read as publishes or events.
  for (const prefix of [config.nats.subjectPrefix, config.nats.subscriptionEventPrefix, config.nats.jetstream?.republishPrefix]) {
    if (prefix !== undefined && `${String(subject)}.`.startsWith(prefix)) problems.add('usage.subject', `must not be under the NATS prefix ${prefix}`, subject);
  }
  return { intervalSec, subject: String(subject) };
}

/** A subject prefix setting, normalised (final `.`), or the fallback with a problem noted. */
function subjectPrefix(key: string, v: unknown, fallback: string, problems: Problems): string {
  if (v === undefined) return fallback;
  if (typeof v !== 'string') { problems.add(key, 'must be a NATS subject prefix such as "grip.sub."', v); return fallback; }
  const p = normalizeSubjectPrefix(v);
  if ('error' in p) { problems.list.push(`${key}: ${p.error}`); return fallback; }
  return p.prefix;
}

/** `nats.jetstream`: absent or false = off; true = defaults; a mapping = settings. */
function jetStreamConfig(v: unknown, problems: Problems): JetStreamConfig | undefined {
  if (v === undefined || v === false || v === 'false') return undefined;
  const raw = v === true || v === 'true' ? {} : section('nats.jetstream', v, problems);
  unknownKeys('nats.jetstream.', raw, Object.keys(DEFAULT_JETSTREAM), problems);
  const d = DEFAULT_JETSTREAM;
  const stream = raw['stream'] ?? d.stream;
  if (typeof stream !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(stream)) {
    problems.add('nats.jetstream.stream', 'must be 1-64 letters, digits, "_" or "-" (a JetStream stream name)', stream);
  }
  const storage = raw['storage'] ?? d.storage;
  if (storage !== 'file' && storage !== 'memory') problems.add('nats.jetstream.storage', 'must be file or memory', storage);
  const paths = raw['lastEventIdPaths'] ?? d.lastEventIdPaths;
  if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string' && p.startsWith('/'))) {
    problems.add('nats.jetstream.lastEventIdPaths', 'must be a list of request path prefixes starting with "/"', paths);
  }
  return {
    stream: String(stream),
    maxAgeSec: int('nats.jetstream.maxAgeSec', raw['maxAgeSec'], 0, 10 * 365 * 86_400, d.maxAgeSec, problems),
    maxMessages: int('nats.jetstream.maxMessages', raw['maxMessages'], 1, Number.MAX_SAFE_INTEGER, d.maxMessages, problems),
    maxMessagesPerChannel: int('nats.jetstream.maxMessagesPerChannel', raw['maxMessagesPerChannel'], 1, 1_000_000, d.maxMessagesPerChannel, problems),
    maxBytes: int('nats.jetstream.maxBytes', raw['maxBytes'], -1, Number.MAX_SAFE_INTEGER, d.maxBytes, problems),
    storage: storage === 'memory' ? 'memory' : 'file',
    replicas: int('nats.jetstream.replicas', raw['replicas'], 1, 5, d.replicas, problems),
    republishPrefix: subjectPrefix('nats.jetstream.republishPrefix', raw['republishPrefix'], d.republishPrefix, problems),
    lastEventIdPaths: Array.isArray(paths) ? paths.map(String) : [],
    recentItemsPerChannel: int('nats.jetstream.recentItemsPerChannel', raw['recentItemsPerChannel'], 0, 100_000, d.recentItemsPerChannel, problems),
    recentBytes: int('nats.jetstream.recentBytes', raw['recentBytes'], 0, Number.MAX_SAFE_INTEGER, d.recentBytes, problems),
  };
}

/**
 * With history, the stream takes every subject under the channel prefix and republishes it
 * under its own: channel subjects, republished subjects and events must not overlap, or the
 * stream would store (or loop on) the others. Without it, each channel is one token, so no
 * event subject can be taken for a channel.
 */
function checkPrefixesApart(nats: NatsConfig, problems: Problems): void {
  if (nats.jetstream === undefined) return;
  const named: Array<[string, string]> = [['nats.subjectPrefix', nats.subjectPrefix]];
  if (nats.subscriptionEvents) named.push(['nats.subscriptionEventPrefix', nats.subscriptionEventPrefix]);
  if (nats.jetstream !== undefined) named.push(['nats.jetstream.republishPrefix', nats.jetstream.republishPrefix]);
  for (let i = 0; i < named.length; i++) {
    for (let j = i + 1; j < named.length; j++) {
      const [ka, a] = named[i]!;
      const [kb, b] = named[j]!;
      if (a.startsWith(b) || b.startsWith(a)) problems.list.push(`${ka} (${a}) and ${kb} (${b}) must not overlap: one would receive the other's messages`);
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
