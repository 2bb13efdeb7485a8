import { randomBytes } from 'node:crypto';
import { LIMITS, ORIGIN_SHAPE, parseOriginUrl } from '../../sidecar/src/kong/handoff-format.js';
import { consumerFromKong, handoffHeaders, type HeaderTable } from './handoff.js';

// The `grip` Kong plugin, run by grip-pluginserver (kong-pdk's plugin server, plugin-server.ts).
// It makes a route realtime by handing each request to the kong-grip sidecars with a signed
// token saying which origin the request is for and who the caller is. Kong's own auth, ACL and rate-limiting plugins run
// first (Priority below theirs), so rejected requests never cost a plugin-server round trip.
//
// What it does NOT do, on purpose:
// - Redirect the request. The GRIP route's Service points at the sidecars (an Upstream) in
//   kong.yml. Kong treats almost every plugin-server failure as "skip the plugin" (fail open);
//   because the Service already is the sidecar, a skipped plugin means a request without a
//   token, which the sidecar refuses (fail closed). A plugin-driven set_upstream would instead
//   send that request straight to the origin, and would cost a round trip.
// - Define `response` (it switches Kong to buffered proxying, which breaks streaming), `rewrite`
//   (global plugins only) or `log` (extra round trips when a long-lived connection closes).
//
// PDK budget: every kong.* call is a Kong → Node → Kong round trip while Kong's request is
// parked. access makes one, or two with config.forward_consumer:
//   1. kong.client.get_consumer()                only if config.forward_consumer
//   2. kong.service.request.set_headers({...})   the token plus every cleared header, in one call
// No per-request instance check: grip-pluginserver numbers instances from a random start, so
// after a plugin-server restart a Kong worker's old instance number names no instance and Kong
// restarts it with the right config (plugin-server.ts says why). A failing get_consumer adds
// response.exit (500). An instance whose config is unusable (see configProblem) answers
// response.exit(500) naming the problem, one call (its first request also kong.log.err).
// (A failing set_headers would make three, but Kong never hands such a failure back: a Lua error
// in a PDK call ends the request on Kong's side, and Kong drops the error half of `nil, err`.)

export const Name = 'grip';
export const Version = '0.1.0';
/**
 * After key-auth (1250), basic-auth (1100), ip-restriction (990), request-size-limiting (951),
 * acl (950), rate-limiting (910) and response-ratelimiting (900): they see the request first and
 * their rejections never reach us. Before request-transformer (801).
 */
export const Priority = 850;

/** Kong versions this plugin runs on: __plugin_id (signed into every token) exists from 3.4. */
export const SUPPORTED_KONG = '3.4 to 3.9';
/** Shortest secret the plugin and the sidecars (kong.secret) accept, counted as Kong's len_min counts: bytes. */
export const SECRET_MIN_BYTES = 32;

/**
 * Kong schema DSL (becomes the plugin's config.fields). What the schema cannot express (and a
 * vault reference skips): configProblem. No `description` attributes: Kong < 3.4 refuses the
 * whole schema for them, and then could not even load the plugin to answer the clear 500 that
 * names the supported versions. The fields are documented in docs/kong.md:
 * - secret: HMAC-SHA256 key for the handoff token, the sidecars' kong.secret; use a vault
 *   reference such as {vault://env/grip-handoff-secret}. No default.
 * - origin: base URL of the GRIP origin this route serves (http://origin:8080,
 *   https://api.internal/app); no credentials, query or fragment; on the sidecars' allow-list.
 * - forward_consumer: sign the consumer Kong's auth plugins found (one PDK round trip).
 */
export const Schema = [
  {
    secret: {
      type: 'string',
      required: true,
      referenceable: true,
      encrypted: true,
      len_min: SECRET_MIN_BYTES,
      len_max: 1024,
    },
  },
  {
    origin: {
      type: 'string',
      required: true,
      len_min: 8,
      len_max: LIMITS.originChars,
      // parseOriginUrl's shape rules, the same patterns (ORIGIN_SHAPE); only host and port
      // syntax is left to the plugin's start (a broken instance answering 500).
      match_all: ORIGIN_SHAPE.mustMatch.map((r) => ({ pattern: r.lua, err: r.err })),
      match_none: ORIGIN_SHAPE.mustNotMatch.map((r) => ({ pattern: r.lua, err: r.err })),
    },
  },
  {
    forward_consumer: {
      type: 'boolean',
      required: true,
      default: true,
    },
  },
] as const;

/** The config Kong sends to StartInstance: our fields with defaults applied, plus Kong's bookkeeping keys. */
export interface GripConfig {
  secret: string;
  origin: string;
  forward_consumer: boolean;
  route_id?: string | null;
  service_id?: string | null;
  consumer_id?: string | null;
  __plugin_id?: string | null;
}

/** The part of the kong PDK proxy this plugin uses (method names as Kong spells them). */
export interface GripPdk {
  client: { get_consumer(): Promise<unknown> };
  service: { request: { set_headers(headers: HeaderTable): Promise<unknown> } };
  response: { exit(status: number, body?: unknown, headers?: Record<string, string>): Promise<unknown> };
  log: { err(...message: string[]): Promise<unknown> };
}

/** Clock and randomness, replaceable in tests (kong-pdk only ever passes the config). */
export interface PluginEnv {
  nowMs(): number;
  nonce(): string;
  log(line: string): void;
}

/**
 * 16-byte nonces cut from a pooled CSPRNG buffer: one randomBytes call per 256 nonces instead of
 * one per request (as crypto.randomUUID caches its entropy).
 */
function pooledNonces(): () => string {
  let pool = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at + 16 > pool.length) {
      pool = randomBytes(16 * 256);
      at = 0;
    }
    at += 16;
    return pool.toString('base64url', at - 16, at);
  };
}

const defaultEnv: PluginEnv = {
  nowMs: () => Date.now(),
  nonce: pooledNonces(),
  // The plugin server's stderr goes to Kong's error log; stdout must stay clean for the dump.
  log: (line) => { process.stderr.write(`[grip] ${line}\n`); },
};

const INTERNAL_ERROR = { message: 'An unexpected error occurred' };

/**
 * What makes a config unusable, or undefined when it is usable. Kong validated the fields
 * against Schema before StartInstance, but a vault reference skips the validators, an older
 * Kong sends no __plugin_id, and a config can come from elsewhere (tests, a future Kong).
 */
export function configProblem(config: unknown): string | undefined {
  if (typeof config !== 'object' || config === null) return 'the plugin configuration is not an object';
  const c = config as Record<string, unknown>;
  if (typeof c['__plugin_id'] !== 'string' || c['__plugin_id'] === '') {
    return `this Kong does not send __plugin_id; supported Kong versions are ${SUPPORTED_KONG}`;
  }
  const secret = c['secret'];
  if (typeof secret !== 'string' || Buffer.byteLength(secret, 'utf8') < SECRET_MIN_BYTES) {
    return `config.secret must be at least ${SECRET_MIN_BYTES} bytes (got ${typeof secret === 'string' ? `${Buffer.byteLength(secret, 'utf8')}` : typeof secret}); check the vault reference it comes from`;
  }
  try {
    parseOriginUrl('config.origin', c['origin']);
  } catch (err) {
    return (err as Error).message;
  }
  if (typeof c['forward_consumer'] !== 'boolean') return 'config.forward_consumer must be a boolean';
  return undefined;
}

export class Plugin {
  private readonly config: GripConfig;
  private readonly pluginId: string | null;
  private readonly env: PluginEnv;
  /** Set when the config is unusable: every request is answered 500 with this text. */
  private readonly broken: string | undefined;
  /** Whether the broken instance has written its problem to Kong's error log yet. */
  private reportedToKong = false;

  constructor(config: GripConfig, env: PluginEnv = defaultEnv) {
    // Never throws. kong-pdk turns a throw here into a failed StartInstance; Kong then fails the
    // request without a useful answer, never caches an instance, and retries (and logs) on every
    // request. Instead an unusable config makes a "broken" instance: one log line now, and a 500
    // naming the problem on each request.
    this.env = env;
    this.config = config;
    const id = (config as { __plugin_id?: unknown } | null)?.__plugin_id;
    this.pluginId = typeof id === 'string' && id !== '' ? id : null;
    let problem: string | undefined;
    try {
      problem = configProblem(config);
    } catch (err) {
      problem = `the plugin configuration could not be read: ${err instanceof Error ? err.message : String(err)}`;
    }
    this.broken = problem === undefined ? undefined : `kong-grip: ${problem}`;
    if (this.broken !== undefined) {
      try {
        env.log(`${this.broken}; this instance answers every request with 500`);
      } catch { /* logging must not fail the instance */ }
    }
  }

  async access(kong: GripPdk): Promise<void> {
    if (this.broken !== undefined) {
      await this.refuseBroken(kong);
      return;
    }
    try {
      // __plugin_id is signed so the sidecar can tell routes' tokens apart (and configProblem
      // has made sure it is there).
      const pluginId = this.pluginId as string;
      const consumer = this.config.forward_consumer ? consumerFromKong(await kong.client.get_consumer()) : null;
      const headers = handoffHeaders({
        iat: Math.floor(this.env.nowMs() / 1000),
        nonce: this.env.nonce(),
        origin: this.config.origin,
        routeId: this.config.route_id ?? null,
        serviceId: this.config.service_id ?? null,
        pluginId,
        consumer,
      }, this.config.secret);
      await kong.service.request.set_headers(headers);
    } catch (err) {
      // An exception escaping access is logged by the plugin server and the request is then
      // proxied as if we had not run (fail open). Answer 500 ourselves instead.
      this.env.log(`access failed: ${err instanceof Error ? err.message : String(err)}`);
      await kong.response.exit(500, INTERNAL_ERROR);
    }
  }

  /**
   * A broken instance: 500 naming the problem, one PDK call. The first request also writes the
   * problem to Kong's error log at level err: the plugin server's own output reaches that log
   * only at level info, which default Kong installs do not show.
   */
  private async refuseBroken(kong: GripPdk): Promise<void> {
    if (!this.reportedToKong) {
      this.reportedToKong = true;
      try {
        await kong.log.err(`${this.broken as string}; this instance answers every request with 500`);
      } catch { /* the 500 still names it */ }
    }
    await kong.response.exit(500, { message: this.broken });
  }
}
