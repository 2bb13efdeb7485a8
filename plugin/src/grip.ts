import { randomBytes } from 'node:crypto';
import { parseOriginUrl } from '../../sidecar/src/kong/handoff-format.js';
import { consumerFromKong, handoffHeaders, type HeaderTable } from './handoff.js';

// The `grip` Kong plugin, run by kong-js-pluginserver (kong-pdk). It makes a route realtime by
// handing each request to the kong-grip sidecars with a signed token saying which origin the
// request is for and who the caller is. Kong's own auth, ACL and rate-limiting plugins run
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
// parked. access makes at most three:
//   1. kong.plugin.get_id()                      the instance check below
//   2. kong.client.get_consumer()                only if config.forward_consumer
//   3. kong.service.request.set_headers({...})   the token plus every cleared header, in one call
// The refusal paths stay within three too: get_id, worker_events.post, response.exit for a
// stale instance; the calls made so far plus response.exit when get_id or get_consumer fails.
// (A failing set_headers would make four, but Kong never hands such a failure back: a Lua error
// in a PDK call ends the request on Kong's side, and Kong drops the error half of `nil, err`.)

export const Name = 'grip';
export const Version = '0.1.0';
/**
 * After key-auth (1250), basic-auth (1100), ip-restriction (990), request-size-limiting (951),
 * acl (950), rate-limiting (910) and response-ratelimiting (900): they see the request first and
 * their rejections never reach us. Before request-transformer (801).
 */
export const Priority = 850;

/** Kong schema DSL (becomes the plugin's config.fields). Cross-field rules: see the constructor. */
export const Schema = [
  {
    secret: {
      type: 'string',
      required: true,
      referenceable: true,
      encrypted: true,
      len_min: 32,
      len_max: 1024,
      description: 'Shared secret for the HMAC-SHA256 handoff token; the sidecars are configured with the same value (kong.secret). Use a vault reference such as {vault://env/grip-handoff-secret}. No default: it must be set.',
    },
  },
  {
    origin: {
      type: 'string',
      required: true,
      len_min: 8,
      len_max: 2048,
      match: '^https?://',
      description: 'Base URL of the GRIP origin this route serves, e.g. http://origin:8080 or https://api.internal/app. The sidecar forwards the request path under it and only accepts origins on its allow-list. No credentials, query or fragment. No default.',
    },
  },
  {
    forward_consumer: {
      type: 'boolean',
      required: true,
      default: true,
      description: 'Pass the consumer that Kong authentication plugins found (id, username, custom_id) to the origin in the signed token. Costs one PDK round trip per request; turn off on routes without authentication.',
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
  plugin: { get_id(): Promise<unknown> };
  client: { get_consumer(): Promise<unknown> };
  service: { request: { set_headers(headers: HeaderTable): Promise<unknown> } };
  response: { exit(status: number, body?: unknown, headers?: Record<string, string>): Promise<unknown> };
  worker_events: { post(source: string, event: string, data: unknown): Promise<unknown> };
}

/** Clock and randomness, replaceable in tests (kong-pdk only ever passes the config). */
export interface PluginEnv {
  nowMs(): number;
  nonce(): string;
  log(line: string): void;
}

const defaultEnv: PluginEnv = {
  nowMs: () => Date.now(),
  nonce: () => randomBytes(16).toString('base64url'),
  // The plugin server's stderr goes to Kong's error log; stdout must stay clean for the dump.
  log: (line) => { process.stderr.write(`[grip] ${line}\n`); },
};

const INTERNAL_ERROR = { message: 'An unexpected error occurred' };
const STALE_INSTANCE = { message: 'Service temporarily unavailable, retry' };

export class Plugin {
  private readonly config: GripConfig;
  private readonly pluginId: string;
  private readonly env: PluginEnv;

  constructor(config: GripConfig, env: PluginEnv = defaultEnv) {
    // Kong validated the fields against Schema; here only what a JS schema cannot express. A
    // throw fails StartInstance, so requests on this route get a 500 instead of a bad token.
    try {
      parseOriginUrl('origin', config.origin);
    } catch (err) {
      throw new Error(`grip plugin config: ${(err as Error).message}`);
    }
    if (typeof config.__plugin_id !== 'string' || config.__plugin_id === '') {
      throw new Error('grip plugin config: __plugin_id is missing; Kong 3.9 or later is required (it identifies this configuration)');
    }
    this.config = config;
    this.pluginId = config.__plugin_id;
    this.env = env;
  }

  async access(kong: GripPdk): Promise<void> {
    try {
      // Instance check (kong.md 1.5). kong-js-pluginserver numbers instances 0, 1, 2, ... per
      // process. After it restarts, a Kong worker may still hold instance id N for route A while
      // the new process has given N to route B's config; Kong would then run this instance,
      // built with B's config, for A's request, and nothing would report it. Kong knows which
      // plugin entity it meant to run (kong.plugin.get_id()); this instance knows which entity
      // its config came from (__plugin_id). They must match, or we refuse to sign anything.
      // Refusing alone would leave that worker stuck on the stale id, so we also post the
      // worker event Kong itself uses to drop cached instances of a plugin; the next request
      // starts a fresh instance with the right config.
      const runningFor = await kong.plugin.get_id();
      if (runningFor !== this.pluginId) {
        this.env.log(`instance config is for plugin ${this.pluginId} but Kong ran it for ${String(runningFor)}; resetting cached instances`);
        await kong.worker_events.post('plugin_server', 'reset_instances', { plugin_name: Name });
        await kong.response.exit(503, STALE_INSTANCE, { 'Retry-After': '1' });
        return;
      }
      const consumer = this.config.forward_consumer ? consumerFromKong(await kong.client.get_consumer()) : null;
      const headers = handoffHeaders({
        iat: Math.floor(this.env.nowMs() / 1000),
        nonce: this.env.nonce(),
        origin: this.config.origin,
        routeId: this.config.route_id ?? null,
        serviceId: this.config.service_id ?? null,
        pluginId: this.pluginId,
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
}
