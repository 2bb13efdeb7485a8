import type { IncomingHttpHeaders } from 'node:http';
import { KgError } from '../errors.js';
import { headerNameStartsWith } from '../grip/headers.js';
import type { HeaderList } from '../grip/types.js';
import {
  HANDOFF_HEADER, HandoffError, ORIGIN_IDENTITY_HEADERS, OWNED_HEADER_PREFIX,
  openHandoff, parseOriginUrl, type HandoffConsumer,
} from './handoff-format.js';

// Kong mode's gate: every client request must carry a handoff token from the grip plugin
// (format in handoff-format.ts). Missing, forged, expired, replayed, or for an origin not on the
// allow-list: refused. So the sidecar is never an open proxy, and a request that reached it
// without passing through the plugin (plugin server down, Kong misconfigured, direct access) is
// refused too.

/** How far a token's iat may be ahead of this host's clock (Kong node and sidecar clocks differ). */
export const CLOCK_SKEW_SEC = 5;

export interface HandoffIdentity {
  consumer: HandoffConsumer | null;
  routeId: string | null;
  serviceId: string | null;
  pluginId: string;
}

export interface VerifiedHandoff {
  /** The origin base URL from the token, already checked against the allow-list. */
  origin: URL;
  identity: HandoffIdentity;
  /** The identity as headers for the origin (ORIGIN_IDENTITY_HEADERS). */
  headersForOrigin: HeaderList;
}

export interface HandoffOptions {
  /** The shared secret; several are accepted during a key rotation. */
  secret: string | readonly string[];
  /** Origin base URLs tokens may name: same scheme, host and port, and a path under the entry's. */
  allowedOrigins: readonly string[];
  maxAgeSec: number;
  /** Current time, ms since the epoch. */
  now: number;
  /** Omit only where replays are checked elsewhere (unit tests of the pure checks). */
  replayCache?: ReplayCache;
}

/**
 * Nonces accepted recently, so a captured token cannot be used twice. Two generations of
 * `windowSec` each: a nonce is remembered for at least one window after it was accepted, which
 * covers every moment its token is still valid. Bounded: when full, new tokens are refused
 * (fail closed) rather than accepted unchecked.
 *
 * The cache is per process: a sidecar running several worker processes, or several sidecars,
 * each keep their own, so a token replayed to a different process within its short lifetime is
 * not caught. The tokens only travel on the network between Kong and the sidecars.
 */
export class ReplayCache {
  private current = new Set<string>();
  private previous = new Set<string>();
  private generationStartSec = -Infinity;

  constructor(readonly windowSec: number, readonly capacity: number) {
    if (!(windowSec > 0) || !Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ReplayCache needs windowSec > 0 and an integer capacity >= 1, got ${windowSec}, ${capacity}`);
    }
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  /** Forgets a nonce claimed here whose fleet-wide claim could not be made (store unavailable). */
  release(nonce: string): void {
    this.current.delete(nonce);
  }

  /** Remembers `nonce`. Throws HandoffError replayed / replay_cache_full. */
  claim(nonce: string, nowSec: number): void {
    if (nowSec >= this.generationStartSec + this.windowSec) {
      // A gap of two windows or more: everything held is too old to matter.
      this.previous = nowSec >= this.generationStartSec + 2 * this.windowSec ? new Set() : this.current;
      this.current = new Set();
      this.generationStartSec = nowSec;
    }
    if (this.current.has(nonce) || this.previous.has(nonce)) {
      throw new HandoffError('replayed', `${HANDOFF_HEADER} nonce was already used`);
    }
    if (this.size >= this.capacity) {
      throw new HandoffError('replay_cache_full', `replay cache holds ${this.capacity} nonces; refusing rather than accepting unchecked`);
    }
    this.current.add(nonce);
  }
}

/** A compiled kong.allowedOrigins entry. */
export interface AllowedOrigin {
  origin: string;
  /** Path prefix ending in "/". */
  pathPrefix: string;
}

/** Parses allow-list entries (http(s) base URLs). Throws HandoffError(malformed) naming the entry. */
export function compileAllowedOrigins(entries: readonly string[]): AllowedOrigin[] {
  return entries.map((entry, i) => {
    const url = parseOriginUrl(`allowedOrigins[${i}]`, entry);
    return { origin: url.origin, pathPrefix: url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/` };
  });
}

/**
 * True when `url` is under one of the allow-list entries: same scheme, host and port, and a path
 * under the entry's on a segment boundary. The one matcher for kong.allowedOrigins (handoff
 * origins, and outbound URLs in origin/outbound-policy.ts).
 */
export function isAllowedOrigin(url: URL, allowed: readonly AllowedOrigin[]): boolean {
  const path = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  return allowed.some((a) => a.origin === url.origin && path.startsWith(a.pathPrefix));
}

/**
 * Name prefixes of the identity headers Kong's auth plugins set upstream (X-Consumer-ID,
 * X-Credential-Identifier, X-Authenticated-Userid / -Scope / -Groups, X-Anonymous-Consumer…;
 * KONG_IDENTITY_HEADERS are all among them). A client can send any of them itself on a route
 * where no auth plugin runs, so none is passed on.
 */
export const KONG_IDENTITY_PREFIXES = ['x-consumer-', 'x-credential-', 'x-authenticated-', 'x-anonymous-'] as const;

/**
 * True for headers a client must never get through to the origin (either mode): every
 * Kong-Grip-* name and Kong's identity headers, in any case and with "_" for "-" (CGI, WSGI and
 * PHP origins read Kong_Grip_Consumer_Id as Kong-Grip-Consumer-Id).
 */
export function isHandoffOwnedHeader(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20; // lower case for letters
  if (first === 0x6b /* k */) return headerNameStartsWith(name, OWNED_HEADER_PREFIX);
  if (first !== 0x78 /* x */) return false;
  for (const prefix of KONG_IDENTITY_PREFIXES) if (headerNameStartsWith(name, prefix)) return true;
  return false;
}

/** Checks a request's handoff once; for many requests use HandoffVerifier (parses the allow-list once). */
export function verifyHandoff(headers: IncomingHttpHeaders, options: HandoffOptions): VerifiedHandoff {
  return checkHandoff(headers, options, compileAllowedOrigins(options.allowedOrigins));
}

/**
 * The fleet-wide half of the replay check: claims a nonce for every process of every sidecar
 * (kong/nonce-store.ts on NATS JetStream KV). Resolves true when the nonce was free, false when
 * it was already claimed; rejects when the store cannot answer (the request is then refused).
 */
export interface NonceStore {
  claimNonce(nonce: string): Promise<boolean>;
}

/**
 * The sidecar's long-lived verifier: options parsed once, one local replay cache and, in
 * production, the fleet-wide nonce store. The local checks (signature, age, origin, local replay
 * cache) come first, so a forged or locally replayed token costs no round trip.
 */
export class HandoffVerifier {
  private readonly allowed: AllowedOrigin[];
  readonly replayCache: ReplayCache;

  constructor(
    private readonly options: { secret: string | readonly string[]; allowedOrigins: readonly string[]; maxAgeSec: number; replayCacheSize: number },
    private readonly store?: NonceStore,
  ) {
    this.allowed = compileAllowedOrigins(options.allowedOrigins);
    this.replayCache = new ReplayCache(options.maxAgeSec + CLOCK_SKEW_SEC, options.replayCacheSize);
  }

  /** Rejects with a KgError: KG_ERR_HANDOFF_INVALID, KG_ERR_HANDOFF_CAPACITY (a full replay cache) or KG_ERR_HANDOFF_STORE (the nonce store does not answer). */
  async verify(headers: IncomingHttpHeaders, nowMs: number): Promise<VerifiedHandoff> {
    let nonce = '';
    const verified = checkHandoff(headers, { ...this.options, now: nowMs, replayCache: this.replayCache }, this.allowed, (n) => { nonce = n; });
    if (this.store === undefined) return verified;
    let isFree: boolean;
    try {
      isFree = await this.store.claimNonce(nonce);
    } catch (err) {
      this.replayCache.release(nonce); // not accepted: the same token may be retried here
      throw handoffKgError(new HandoffError('store_unavailable', `the fleet-wide nonce store is unavailable: ${err instanceof Error ? err.message : String(err)}`));
    }
    if (!isFree) throw handoffKgError(new HandoffError('replayed', `${HANDOFF_HEADER} nonce was already used (by another process of the fleet)`));
    return verified;
  }
}

function handoffKgError(err: HandoffError): KgError {
  const code = err.reason === 'replay_cache_full' ? 'KG_ERR_HANDOFF_CAPACITY'
    : err.reason === 'store_unavailable' ? 'KG_ERR_HANDOFF_STORE' : 'KG_ERR_HANDOFF_INVALID';
  return new KgError(code, err.message, { cause: err });
}

function checkHandoff(headers: IncomingHttpHeaders, options: HandoffOptions, allowed: readonly AllowedOrigin[], onNonce?: (nonce: string) => void): VerifiedHandoff {
  try {
    const raw = headers[HANDOFF_HEADER.toLowerCase()];
    if (raw === undefined || raw === '') throw new HandoffError('missing', `request has no ${HANDOFF_HEADER} header`);
    if (typeof raw !== 'string') throw new HandoffError('malformed', `${HANDOFF_HEADER} must appear once`);
    // Node joins repeated unknown headers with ", ", which the token grammar never contains.
    if (raw.includes(',')) throw new HandoffError('malformed', `${HANDOFF_HEADER} must appear once`);
    const secrets = typeof options.secret === 'string' ? [options.secret] : options.secret;
    const claims = openHandoff(raw.trim(), secrets);

    const nowSec = Math.floor(options.now / 1000);
    if (nowSec - claims.iat > options.maxAgeSec) {
      throw new HandoffError('expired', `${HANDOFF_HEADER} was issued ${nowSec - claims.iat} s ago, at most ${options.maxAgeSec} s are allowed`);
    }
    if (claims.iat - nowSec > CLOCK_SKEW_SEC) {
      throw new HandoffError('from_future', `${HANDOFF_HEADER} was issued ${claims.iat - nowSec} s in the future, at most ${CLOCK_SKEW_SEC} s of clock skew are allowed`);
    }
    const origin = new URL(claims.origin);
    if (!isAllowedOrigin(origin, allowed)) {
      throw new HandoffError('origin_not_allowed', `${HANDOFF_HEADER} names origin ${origin.href}, which is not on the sidecar's kong.allowedOrigins`);
    }
    // Last, so a token refused for another reason does not use up its nonce.
    options.replayCache?.claim(claims.nonce, nowSec);
    onNonce?.(claims.nonce);

    const identity: HandoffIdentity = {
      consumer: claims.consumer, routeId: claims.routeId, serviceId: claims.serviceId, pluginId: claims.pluginId,
    };
    return { origin, identity, headersForOrigin: identityHeaders(identity) };
  } catch (err) {
    if (err instanceof HandoffError) throw handoffKgError(err);
    throw err;
  }
}

function identityHeaders(identity: HandoffIdentity): HeaderList {
  const out: HeaderList = [];
  const h = ORIGIN_IDENTITY_HEADERS;
  if (identity.routeId !== null) out.push([h.routeId, identity.routeId]);
  if (identity.serviceId !== null) out.push([h.serviceId, identity.serviceId]);
  const c = identity.consumer;
  if (c !== null) {
    out.push([h.consumerId, c.id]);
    if (c.username !== null) out.push([h.consumerUsername, encodeURIComponent(c.username)]);
    if (c.customId !== null) out.push([h.consumerCustomId, encodeURIComponent(c.customId)]);
  }
  return out;
}

/** The bounded failure label of a handoff refusal (for metrics), or undefined for other errors. */
export function handoffFailureReason(err: unknown): HandoffError['reason'] | undefined {
  return err instanceof KgError && err.cause instanceof HandoffError ? err.cause.reason : undefined;
}
