import { createHmac, timingSafeEqual } from 'node:crypto';

// The Kong handoff token: how the `grip` plugin tells a sidecar "Kong let this request through,
// it is for this origin, and this is who the caller is". Shared by the plugin (which signs) and
// the sidecar (which verifies), so the two can never disagree on the format.
//
// Shared means: this file is bundled into the plugin's single CommonJS file as well as compiled
// with the sidecar. It must import nothing but Node built-ins (a unit test enforces that) and do
// no I/O; randomness and the clock come in as arguments.
//
// Token: `v1.<payload>.<mac>` or `v2.<payload>.<mac>`
//   payload = base64url(UTF-8 canonical JSON of the claims, keys in the fixed order below)
//   mac     = base64url(HMAC-SHA256(secret, "<version>." + payload))
// Versioning rule: a new field makes a new version, and every earlier version stays readable
// (a sidecar upgraded first still accepts tokens from a plugin not yet upgraded). v2 adds
// `limits` (the realtime limits of the plugin config); v1 reads as limits all 0 (unlimited).
// The signer writes v1 when every limit is 0, so configs without limits keep their exact bytes.
// The MAC covers the transmitted bytes, so a verifier never re-encodes; the canonical order only
// makes signing deterministic (test vectors). The version is inside the MAC'd text, so a token
// cannot be re-labelled as another version.

/** Request header carrying the token from Kong to the sidecar. Stripped before the origin. */
export const HANDOFF_HEADER = 'Kong-Grip-Handoff';
export const HANDOFF_VERSION = 'v1';
/** The version with `limits`; signed only when a limit is set. */
export const HANDOFF_VERSION_LIMITS = 'v2';

/**
 * Headers the sidecar sets on requests to the origin from a verified token, and nothing else
 * may set: both the plugin and the sidecar remove client copies (every `Kong-Grip-*` header).
 * Username and custom id are percent-encoded UTF-8 (encodeURIComponent), since Kong allows
 * characters in them that are not valid in a header value; ids are sent as they are.
 */
export const ORIGIN_IDENTITY_HEADERS = {
  consumerId: 'Kong-Grip-Consumer-Id',
  consumerUsername: 'Kong-Grip-Consumer-Username',
  consumerCustomId: 'Kong-Grip-Consumer-Custom-Id',
  routeId: 'Kong-Grip-Route-Id',
  serviceId: 'Kong-Grip-Service-Id',
} as const;

/** Prefix of every header kong-grip owns on the Kong → sidecar → origin path. */
export const OWNED_HEADER_PREFIX = 'kong-grip-';

/**
 * Identity headers Kong's auth and ACL plugins set upstream. A client can send them itself on a
 * route where no such plugin runs (ACL never clears X-Consumer-Groups), so they are never passed
 * on: identity reaches the origin only through ORIGIN_IDENTITY_HEADERS.
 */
export const KONG_IDENTITY_HEADERS = [
  'X-Consumer-ID', 'X-Consumer-Custom-ID', 'X-Consumer-Username', 'X-Credential-Identifier',
  'X-Anonymous-Consumer', 'X-Consumer-Groups', 'X-Authenticated-Groups',
] as const;

/**
 * Request-side GRIP headers by name. The plugin can only clear names it knows (reading the
 * request's header names would cost a PDK round trip); the sidecar removes every `Grip-*`.
 */
export const CLIENT_GRIP_HEADERS = [
  'Grip-Sig', 'Grip-Feature', 'Grip-Last', 'Grip-Hold', 'Grip-Channel', 'Grip-Timeout', 'Grip-Keep-Alive',
  'Grip-Set-Meta', 'Grip-Link', 'Grip-Status', 'Grip-Expose-Headers', 'Grip-Session-Id',
  'Grip-Session-Detect', 'Grip-Previous-Id',
] as const;

export interface HandoffConsumer {
  id: string;
  username: string | null;
  customId: string | null;
}

/**
 * The realtime limits of the plugin config the token was signed with (0 = unlimited): the
 * fleet-wide concurrent connections per consumer, and the client → origin WebSocket message
 * rate and burst per connection.
 */
export interface HandoffLimits {
  maxConnectionsPerConsumer: number;
  wsMessagesPerSecond: number;
  wsBurst: number;
}

export const NO_LIMITS: HandoffLimits = Object.freeze({ maxConnectionsPerConsumer: 0, wsMessagesPerSecond: 0, wsBurst: 0 });

export interface HandoffClaims {
  /** Issued-at, whole seconds since the epoch (Kong node clock). */
  iat: number;
  /** Random, unique per request; the sidecar refuses a nonce it has seen (replay). */
  nonce: string;
  /** Base URL of the origin the request is for (plugin config `origin`). */
  origin: string;
  /** Kong ids of the route, service and plugin entity whose config signed; null when unscoped. */
  routeId: string | null;
  serviceId: string | null;
  pluginId: string;
  /** The consumer Kong's auth plugins authenticated, or null. */
  consumer: HandoffConsumer | null;
  /** Absent or all 0: no limits (a v1 token). */
  limits?: HandoffLimits;
}

export const HandoffFailure = {
  Missing: 'missing',
  Malformed: 'malformed',
  BadSignature: 'bad_signature',
  Expired: 'expired',
  FromFuture: 'from_future',
  Replayed: 'replayed',
  OriginNotAllowed: 'origin_not_allowed',
  ReplayCacheFull: 'replay_cache_full',
  /** The fleet-wide nonce store (NATS JetStream KV) could not answer: refused, fail closed. */
  StoreUnavailable: 'store_unavailable',
} as const;
export type HandoffFailure = (typeof HandoffFailure)[keyof typeof HandoffFailure];

/** A token that cannot be accepted; `reason` is a bounded label (logs, metrics). */
export class HandoffError extends Error {
  constructor(readonly reason: HandoffFailure, message: string) {
    super(message);
    this.name = 'HandoffError';
  }
}

export const LIMITS = {
  tokenChars: 8192,
  originChars: 2048,
  idChars: 128,
  nameChars: 1024,
  nonceMinChars: 16,
  nonceMaxChars: 64,
  /** Largest value of each limit (the plugin schema's `between`). */
  maxConnectionsPerConsumer: 1_000_000,
  wsMessagesPerSecond: 100_000,
  wsBurst: 1_000_000,
} as const;

const ID_RE = /^[A-Za-z0-9._:-]+$/;
const NONCE_RE = /^[A-Za-z0-9_-]+$/;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;

/** True when some limit is set: the token needs v2. */
export function hasLimits(limits: HandoffLimits | undefined): limits is HandoffLimits {
  return limits !== undefined && (limits.maxConnectionsPerConsumer !== 0 || limits.wsMessagesPerSecond !== 0 || limits.wsBurst !== 0);
}

/** The version a token of these claims is signed as. */
export function handoffVersionFor(claims: HandoffClaims): string {
  return hasLimits(claims.limits) ? HANDOFF_VERSION_LIMITS : HANDOFF_VERSION;
}

/** The claims as canonical JSON: fixed key order, nulls explicit, no whitespace; `limits` last, only in v2. */
export function encodeHandoffPayload(claims: HandoffClaims): string {
  const c = claims.consumer;
  const doc: Record<string, unknown> = {
    iat: claims.iat,
    nonce: claims.nonce,
    origin: claims.origin,
    route: claims.routeId,
    service: claims.serviceId,
    plugin: claims.pluginId,
    consumer: c === null ? null : { id: c.id, username: c.username, custom_id: c.customId },
  };
  const l = claims.limits;
  if (hasLimits(l)) doc['limits'] = { max_connections: l.maxConnectionsPerConsumer, ws_mps: l.wsMessagesPerSecond, ws_burst: l.wsBurst };
  return JSON.stringify(doc);
}

function mac(secret: string, signedText: string): Buffer {
  return createHmac('sha256', secret).update(signedText, 'utf8').digest();
}

/** Builds the token. Throws HandoffError(malformed) if the claims break the format's rules. */
export function signHandoff(claims: HandoffClaims, secret: string): string {
  const json = encodeHandoffPayload(claims);
  const version = handoffVersionFor(claims);
  // Sign only what a verifier would accept: a bad value is a bug on the signing side.
  validateClaims(JSON.parse(json) as unknown, version);
  const signedText = `${version}.${Buffer.from(json, 'utf8').toString('base64url')}`;
  const token = `${signedText}.${mac(secret, signedText).toString('base64url')}`;
  if (token.length > LIMITS.tokenChars) {
    throw new HandoffError('malformed', `handoff token would be ${token.length} characters, at most ${LIMITS.tokenChars} are allowed`);
  }
  return token;
}

/**
 * Checks the MAC (against any of `secrets`, for key rotation) and the claims' shape. Time,
 * origin allow-list and replay are the caller's checks. Throws HandoffError.
 */
export function openHandoff(token: string, secrets: readonly string[]): HandoffClaims {
  if (token.length > LIMITS.tokenChars) {
    throw new HandoffError('malformed', `${HANDOFF_HEADER} is ${token.length} characters, at most ${LIMITS.tokenChars} are allowed`);
  }
  const parts = token.split('.');
  if (parts.length !== 3 || (parts[0] !== HANDOFF_VERSION && parts[0] !== HANDOFF_VERSION_LIMITS)) {
    throw new HandoffError('malformed', `${HANDOFF_HEADER} must be "${HANDOFF_VERSION}.<payload>.<mac>" or "${HANDOFF_VERSION_LIMITS}.<payload>.<mac>"`);
  }
  const [version, payload, macText] = parts as [string, string, string];
  if (!B64URL_RE.test(payload) || !B64URL_RE.test(macText)) {
    throw new HandoffError('malformed', `${HANDOFF_HEADER} payload and mac must be base64url`);
  }
  const given = Buffer.from(macText, 'base64url');
  const signedText = `${version}.${payload}`;
  let matched = false;
  for (const secret of secrets) {
    const expected = mac(secret, signedText);
    // Constant time per secret; the length check first, as timingSafeEqual requires it.
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  if (!matched) throw new HandoffError('bad_signature', `${HANDOFF_HEADER} signature does not match`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw new HandoffError('malformed', `${HANDOFF_HEADER} payload is not JSON`);
  }
  return validateClaims(doc, version);
}

const CLAIM_KEYS = ['iat', 'nonce', 'origin', 'route', 'service', 'plugin', 'consumer'];
const CLAIM_KEYS_V2 = [...CLAIM_KEYS, 'limits'];
const LIMIT_KEYS = ['max_connections', 'ws_mps', 'ws_burst'];
const CONSUMER_KEYS = ['id', 'username', 'custom_id'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function exactKeys(where: string, obj: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k)) throw new HandoffError('malformed', `${where} has unknown field "${k}"`);
  }
  for (const k of keys) {
    if (!(k in obj)) throw new HandoffError('malformed', `${where} lacks field "${k}"`);
  }
}

function id(where: string, v: unknown, nullable: boolean): string | null {
  if (v === null && nullable) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > LIMITS.idChars || !ID_RE.test(v)) {
    throw new HandoffError('malformed', `${where} must be an id of 1-${LIMITS.idChars} characters [A-Za-z0-9._:-]${nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function name(where: string, v: unknown): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > LIMITS.nameChars) {
    throw new HandoffError('malformed', `${where} must be a string of 1-${LIMITS.nameChars} characters or null, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * The shape of an origin URL, the part of parseOriginUrl's rules a pattern can say. Each rule is
 * written twice, as the same pattern: `lua` for the grip plugin's Kong schema (match_all /
 * match_none: Kong refuses the config at load time) and `re` for parseOriginUrl (the plugin at
 * start, the sidecar's allow-list and tokens). A unit test checks the two agree, and that the
 * schema refuses whatever parseOriginUrl refuses except host and port syntax (the URL parse),
 * which no pattern states. Printable ASCII only, so Kong's byte length is the string length.
 */
export const ORIGIN_SHAPE = {
  mustMatch: [
    { lua: '^https?://[^/]', re: /^https?:\/\/[^/]/, err: 'must start with http:// or https:// (lower case) and a host' },
  ],
  mustNotMatch: [
    { lua: '@', re: /@/, err: 'must not contain credentials (user:pass@)' },
    { lua: '%?', re: /\?/, err: 'must not contain a query (?)' },
    { lua: '#', re: /#/, err: 'must not contain a fragment (#)' },
    { lua: '\\', re: /\\/, err: 'must not contain a backslash' },
    { lua: '[^!-~]', re: /[^!-~]/, err: 'must be printable ASCII without spaces (an international host name in punycode)' },
  ],
} as const;

/** Parses a base URL the format accepts: http(s), no credentials, query or fragment, and ORIGIN_SHAPE. */
export function parseOriginUrl(where: string, v: unknown): URL {
  if (typeof v !== 'string' || v.length > LIMITS.originChars) {
    throw new HandoffError('malformed', `${where} must be a URL of at most ${LIMITS.originChars} characters, got ${JSON.stringify(v)}`);
  }
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new HandoffError('malformed', `${where} must be an absolute http:// or https:// URL, got ${JSON.stringify(v)}`);
  }
  const broken = ORIGIN_SHAPE.mustMatch.find((r) => !r.re.test(v)) ?? ORIGIN_SHAPE.mustNotMatch.find((r) => r.re.test(v));
  if (broken !== undefined) {
    throw new HandoffError('malformed', `${where} must be an http:// or https:// URL without credentials, query or fragment (it ${broken.err}), got ${JSON.stringify(v)}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== ''
    || url.search !== '' || url.hash !== '' || v.includes('?') || v.includes('#')) {
    throw new HandoffError('malformed', `${where} must be an http:// or https:// URL without credentials, query or fragment, got ${JSON.stringify(v)}`);
  }
  return url;
}

function limit(where: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new HandoffError('malformed', `${where} must be an integer 0-${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function validateLimits(v: unknown): HandoffLimits {
  const where = `${HANDOFF_HEADER} limits`;
  if (!isRecord(v)) throw new HandoffError('malformed', `${where} must be an object`);
  exactKeys(where, v, LIMIT_KEYS);
  const limits = {
    maxConnectionsPerConsumer: limit(`${where}.max_connections`, v['max_connections'], LIMITS.maxConnectionsPerConsumer),
    wsMessagesPerSecond: limit(`${where}.ws_mps`, v['ws_mps'], LIMITS.wsMessagesPerSecond),
    wsBurst: limit(`${where}.ws_burst`, v['ws_burst'], LIMITS.wsBurst),
  };
  // v2 exists to carry limits: all 0 is signed as v1, so a v2 without any is not a token we make.
  if (!hasLimits(limits)) throw new HandoffError('malformed', `${where} are all 0; such a token is signed as ${HANDOFF_VERSION}`);
  return limits;
}

function validateClaims(doc: unknown, version: string): HandoffClaims {
  if (!isRecord(doc)) throw new HandoffError('malformed', `${HANDOFF_HEADER} payload must be a JSON object`);
  const isV2 = version === HANDOFF_VERSION_LIMITS;
  exactKeys(`${HANDOFF_HEADER} payload`, doc, isV2 ? CLAIM_KEYS_V2 : CLAIM_KEYS);
  const iat = doc['iat'];
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat) || iat < 0) {
    throw new HandoffError('malformed', `${HANDOFF_HEADER} iat must be a non-negative integer (seconds), got ${JSON.stringify(iat)}`);
  }
  const nonce = doc['nonce'];
  if (typeof nonce !== 'string' || nonce.length < LIMITS.nonceMinChars || nonce.length > LIMITS.nonceMaxChars || !NONCE_RE.test(nonce)) {
    throw new HandoffError('malformed', `${HANDOFF_HEADER} nonce must be ${LIMITS.nonceMinChars}-${LIMITS.nonceMaxChars} base64url characters, got ${JSON.stringify(nonce)}`);
  }
  const origin = doc['origin'];
  parseOriginUrl(`${HANDOFF_HEADER} origin`, origin);
  let consumer: HandoffConsumer | null = null;
  const c = doc['consumer'];
  if (c !== null) {
    if (!isRecord(c)) throw new HandoffError('malformed', `${HANDOFF_HEADER} consumer must be an object or null`);
    exactKeys(`${HANDOFF_HEADER} consumer`, c, CONSUMER_KEYS);
    consumer = {
      id: id(`${HANDOFF_HEADER} consumer.id`, c['id'], false) as string,
      username: name(`${HANDOFF_HEADER} consumer.username`, c['username']),
      customId: name(`${HANDOFF_HEADER} consumer.custom_id`, c['custom_id']),
    };
  }
  const claims: HandoffClaims = {
    iat,
    nonce,
    origin: origin as string,
    routeId: id(`${HANDOFF_HEADER} route`, doc['route'], true),
    serviceId: id(`${HANDOFF_HEADER} service`, doc['service'], true),
    pluginId: id(`${HANDOFF_HEADER} plugin`, doc['plugin'], false) as string,
    consumer,
  };
  if (isV2) claims.limits = validateLimits(doc['limits']);
  return claims;
}
