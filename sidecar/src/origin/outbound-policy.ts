import { isIPv4 } from 'node:net';
import { compileAllowedOrigins, isAllowedOrigin, type AllowedOrigin } from '../kong/handoff-verifier.js';

// Which URLs an origin may make the sidecar fetch (a Grip-Link rel=next, later rel=gone): the
// sidecar fetches them with its own network position, so an origin, or whoever controls an
// origin's response, must not point it at anything else (SSRF). Pure: no DNS, no I/O.
//
// A URL may be fetched when it is http or https, carries no credentials, does not name one of
// the sidecar's own listeners, and is
//   - on the same origin (scheme, host, port) as the URL the client request was forwarded to, or
//   - in Kong mode, under an entry of kong.allowedOrigins (the matcher handoffs use).
//
// Own listeners: a URL naming this machine (a loopback name or address: localhost, *.localhost,
// 127.0.0.0/8, ::1, 0.0.0.0, ::, IPv4-mapped forms; a listener's own host; or one of `ownHosts`,
// e.g. the hostname and interface addresses) on the port of the client or control listener is
// refused, whichever host that listener is bound to. Host names are compared as written: a name
// that resolves to this machine is caught only if it is in ownHosts, which is why the
// same-origin / allow-list rule comes first and is the main guard.

export interface ListenerAddress {
  host: string;
  /** The bound port (the real one when configured as 0). */
  port: number;
}

export interface OutboundPolicyOptions {
  /** Kong mode's kong.allowedOrigins; absent (or empty) when standalone. */
  allowedOrigins?: readonly string[];
  /** The sidecar's listeners: client and control port. */
  listeners: readonly ListenerAddress[];
  /** More names and addresses of this machine (os.hostname(), interface addresses). */
  ownHosts?: readonly string[];
}

export const OutboundRefusal = {
  Invalid: 'invalid',
  Scheme: 'scheme',
  Credentials: 'credentials',
  OwnListener: 'own_listener',
  OtherOrigin: 'other_origin',
} as const;
export type OutboundRefusal = (typeof OutboundRefusal)[keyof typeof OutboundRefusal];

export type OutboundDecision =
  | { allowed: true; url: URL }
  /** `reason` is a bounded label (logs, metrics); `message` names the URL, for logs only. */
  | { allowed: false; reason: OutboundRefusal; message: string };

/**
 * Decides whether `target` (absolute, or relative to `requestUrl`) may be fetched for a client
 * request that was forwarded to `requestUrl`. Pass the original request's URL for every link of
 * a chain, not the previous link's.
 */
export type OutboundCheck = (target: string | URL, requestUrl: URL) => OutboundDecision;

/** The sidecar's policy: allow-list and listeners compiled once. */
export function createOutboundPolicy(options: OutboundPolicyOptions): OutboundCheck {
  const allowed: readonly AllowedOrigin[] = compileAllowedOrigins(options.allowedOrigins ?? []);
  const listenerPorts = new Set(options.listeners.map((l) => l.port));
  const ownHosts = new Set([...(options.ownHosts ?? []), ...options.listeners.map((l) => l.host)]
    .map(canonicalHost).filter((h) => h !== WILDCARD));
  return (target, requestUrl) => {
    let url: URL;
    try {
      url = new URL(target, requestUrl);
    } catch {
      return refuse('invalid', `${String(target)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse('scheme', `${url.href} is not http or https`);
    if (url.username !== '' || url.password !== '') return refuse('credentials', `${url.origin} URL carries credentials`);
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    if (listenerPorts.has(port)) {
      const host = canonicalHost(url.hostname);
      if (isLoopback(host) || ownHosts.has(host)) return refuse('own_listener', `${url.href} names one of the sidecar's own listeners`);
    }
    if (url.origin === requestUrl.origin || (allowed.length > 0 && isAllowedOrigin(url, allowed))) return { allowed: true, url };
    return refuse('other_origin', `${url.href} is neither on the request's origin ${requestUrl.origin}${allowed.length > 0 ? ' nor under kong.allowedOrigins' : ''}`);
  };
}

/** One decision without keeping the policy (tests, one-off checks). */
export function checkOutboundUrl(target: string | URL, requestUrl: URL, options: OutboundPolicyOptions): OutboundDecision {
  return createOutboundPolicy(options)(target, requestUrl);
}

function refuse(reason: OutboundRefusal, message: string): OutboundDecision {
  return { allowed: false, reason, message };
}

const WILDCARD = '0.0.0.0';

/**
 * A host as compared here: as the URL parser writes it (lower case, IPv4 in dotted decimal, IPv6
 * compressed), without brackets or a trailing dot; an IPv4-mapped IPv6 address as its IPv4
 * address; "::" and "" (like "0.0.0.0") as 0.0.0.0.
 */
export function canonicalHost(host: string): string {
  let h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  try {
    h = new URL(`http://${h.includes(':') ? `[${h}]` : h}/`).hostname;
  } catch {
    h = h.toLowerCase();
  }
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h === '' || h === '::') return WILDCARD;
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  if (mapped) {
    const hi = parseInt(mapped[1] as string, 16);
    const lo = parseInt(mapped[2] as string, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return h;
}

/** A canonical host that always means this machine. */
function isLoopback(host: string): boolean {
  return host === WILDCARD || host === '::1' || host === 'localhost' || host.endsWith('.localhost')
    || (isIPv4(host) && host.startsWith('127.'));
}
