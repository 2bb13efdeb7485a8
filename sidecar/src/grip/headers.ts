import type { IncomingHttpHeaders } from 'node:http';
import { SUPPORTED_FILTERS } from '../filters/filters.js';
import type { HeaderList } from './types.js';

// Header rules for requests forwarded to the origin (docs/grip.md, "Requests to the origin") and responses relayed to the
// client. Pure: raw header lists in, header lists out.

/**
 * The optional GRIP capabilities this sidecar implements, advertised in Grip-Feature in Pushpin's
 * order: the one list to change when a feature comes or goes. Pushpin's `session` (GRIP session
 * ids kept by an external state service, docs/grip.md "What kong-grip does not do") is not part of kong-grip, so it is not claimed.
 */
export const GRIP_FEATURES: readonly string[] = [
  'status', 'link:next', 'link:gone',
  ...SUPPORTED_FILTERS.map((name) => `filter:${name}`),
];

// Hop-by-hop, plus the encoding headers Pushpin drops so bodies stay identity-encoded.
const REQUEST_DROP = new Set([
  'connection', 'keep-alive', 'accept-encoding', 'content-encoding', 'transfer-encoding', 'expect', 'te', 'trailer',
  'upgrade', 'proxy-connection', 'proxy-authorization', 'content-length',
]);

const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export function isGripHeader(name: string): boolean {
  return name.length >= 5 && name.slice(0, 5).toLowerCase() === 'grip-';
}

/**
 * True when `name` begins with `prefix` (given in lower case with "-"), compared without regard
 * to case and with "_" read as "-": CGI, WSGI and PHP origins see `Grip_Sig` as `Grip-Sig`
 * (both become HTTP_GRIP_SIG), so a header stripped for the origin is stripped in every such
 * spelling. A char-code scan: it runs for every header of every request.
 */
export function headerNameStartsWith(name: string, prefix: string): boolean {
  if (name.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    let c = name.charCodeAt(i);
    if (c === 95) c = 45; // "_" → "-"
    else if (c >= 65 && c <= 90) c += 32; // A-Z → a-z
    if (c !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

const NO_NAMES: ReadonlySet<string> = new Set();

/** Header names listed in Connection are hop-by-hop too (RFC 9110 7.6.1). */
function connectionTokens(raw: readonly string[]): ReadonlySet<string> {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      tokens ??= new Set();
      for (const t of (raw[i + 1] as string).split(',')) tokens.add(t.trim().toLowerCase());
    }
  }
  return tokens ?? NO_NAMES;
}

/**
 * Client request headers as the origin should see them: hop-by-hop and encoding headers and
 * every client `Grip-*` header removed, `Grip_*` too (a client must not forge Grip-Sig or GRIP
 * state).
 * `extraDrop` names further headers to remove (e.g. Kong handoff headers).
 */
export function forwardRequestHeaders(rawHeaders: readonly string[], extraDrop: ReadonlySet<string> = NO_NAMES): HeaderList {
  const hop = connectionTokens(rawHeaders);
  const out: HeaderList = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (REQUEST_DROP.has(lower) || hop.has(lower) || headerNameStartsWith(name, 'grip-') || extraDrop.has(lower)) continue;
    out.push([name, rawHeaders[i + 1] as string]);
  }
  return out;
}

/** Origin response headers for a relayed (non-GRIP) response. Content-Length is kept: the body is relayed byte for byte. */
export function relayResponseHeaders(rawHeaders: readonly string[]): HeaderList {
  const hop = connectionTokens(rawHeaders);
  const out: HeaderList = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (RESPONSE_DROP.has(lower) || hop.has(lower)) continue;
    out.push([name, rawHeaders[i + 1] as string]);
  }
  return out;
}

export function rawToList(rawHeaders: readonly string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < rawHeaders.length; i += 2) out.push([rawHeaders[i] as string, rawHeaders[i + 1] as string]);
  return out;
}

export function flatten(headers: HeaderList): string[] {
  const out: string[] = [];
  for (const [k, v] of headers) out.push(k, v);
  return out;
}

/** Headers of `base` with every name present in `overlay` replaced by the overlay's values. */
export function overlayHeaders(base: HeaderList, overlay: HeaderList): HeaderList {
  if (overlay.length === 0) return base;
  const replaced = new Set(overlay.map(([k]) => k.toLowerCase()));
  return [...base.filter(([k]) => !replaced.has(k.toLowerCase())), ...overlay];
}

export function withoutHeaders(headers: HeaderList, names: readonly string[]): HeaderList {
  const drop = new Set(names.map((n) => n.toLowerCase()));
  return headers.filter(([k]) => !drop.has(k.toLowerCase()));
}

export function headerValue(headers: IncomingHttpHeaders | HeaderList, name: string): string | undefined {
  if (Array.isArray(headers)) {
    const lower = name.toLowerCase();
    const found = headers.find(([k]) => k.toLowerCase() === lower);
    return found?.[1];
  }
  const v = (headers as IncomingHttpHeaders)[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}
