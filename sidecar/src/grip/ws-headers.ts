import { MAX_TIMER_SEC, type HeaderList } from './types.js';

// Header rules of WebSocket-over-HTTP (docs/websocket.md). Pure.
//
// Every POST to the origin replays the client's handshake headers, minus hop-by-hop and GRIP
// headers (docs/grip.md, "Requests to the origin") and minus the headers this protocol owns; it adds Connection-Id, the
// websocket-events content type, Sec-WebSocket-Extensions: grip and one Meta-<Name> per bound
// meta field. The origin's replies bind meta (Set-Meta-*), set keep-alives (Keep-Alive-Interval)
// and, for the first reply, supply the headers of the client's 101.

export const WS_EVENTS_CONTENT_TYPE = 'application/websocket-events';

// Dropped from the replayed handshake: hop-by-hop and encoding headers (docs/grip.md, "Requests to the origin"), the
// upgrade itself, and everything this protocol sets per request. Meta-* and Grip-* are dropped
// by prefix below (anti-spoofing).
const NOT_REPLAYED = new Set([
  'connection', 'keep-alive', 'accept-encoding', 'content-encoding', 'transfer-encoding', 'expect', 'te',
  'trailer', 'proxy-connection', 'upgrade', 'accept', 'connection-id', 'content-length', 'content-type',
  'sec-websocket-extensions', 'content-bytes-replayed',
]);

// Never relayed into the client's 101: framing headers of the origin's POST reply, protocol
// headers of WebSocket-over-HTTP, and headers the WebSocket handshake itself owns.
const NOT_IN_101 = new Set([
  'content-type', 'content-length', 'keep-alive-interval', 'sec-websocket-extensions', 'sec-websocket-accept',
  'sec-websocket-protocol', 'connection', 'upgrade', 'transfer-encoding', 'keep-alive', 'content-encoding',
  'content-bytes-accepted',
]);

// A rejection is relayed as a plain response with our own framing.
const NOT_IN_REJECTION = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'content-encoding']);

const lower = (s: string): string => s.toLowerCase();

/** Node's flat rawHeaders array as a HeaderList (case and order kept). */
export function headerListFromRaw(raw: readonly string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

export function headerValues(headers: HeaderList, name: string): string[] {
  const n = lower(name);
  const out: string[] = [];
  for (const [k, v] of headers) if (lower(k) === n) out.push(v);
  return out;
}

export function firstHeader(headers: HeaderList, name: string): string | undefined {
  const n = lower(name);
  for (const [k, v] of headers) if (lower(k) === n) return v;
  return undefined;
}

/** The client's handshake headers as they are replayed on every POST. */
export function replayedHandshakeHeaders(handshake: HeaderList): HeaderList {
  return handshake.filter(([name]) => {
    const n = lower(name);
    return !NOT_REPLAYED.has(n) && !n.startsWith('meta-') && !n.startsWith('grip-');
  });
}

/** Meta bound by the origin, keyed by lower-case name; the value keeps the origin's spelling. */
export type WsMeta = Map<string, { name: string; value: string }>;

/** Headers of one POST (Grip-Sig is the transport's job: it is minted per request). */
export function wsRequestHeaders(replayed: HeaderList, connectionId: string, meta: WsMeta, bodyLength: number): HeaderList {
  const out: HeaderList = replayed.slice();
  out.push(
    ['Sec-WebSocket-Extensions', 'grip'],
    ['Accept', WS_EVENTS_CONTENT_TYPE],
    ['Connection-Id', connectionId],
    ['Content-Type', WS_EVENTS_CONTENT_TYPE],
    ['Content-Length', String(bodyLength)],
  );
  for (const { name, value } of meta.values()) out.push([`Meta-${name}`, value]);
  return out;
}

/** Whether a reply declares a websocket-events body (parameters such as charset allowed). */
export function isWsEventsContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const semi = value.indexOf(';');
  return lower((semi === -1 ? value : value.slice(0, semi)).trim()) === WS_EVENTS_CONTENT_TYPE;
}

/**
 * Keep-Alive-Interval from a reply: undefined when absent (keep the current setting), 'off' when
 * not a positive integer (as Pushpin), else seconds raised to `minSec` (Pushpin: 20) and lowered
 * to 24 h (MAX_TIMER_SEC: more overflows Node's timer). Capped, not refused: Pushpin accepts it,
 * and a reply header cannot be ignored the way a control message is.
 */
export function parseKeepAliveInterval(headers: HeaderList, minSec: number): number | 'off' | undefined {
  const v = firstHeader(headers, 'Keep-Alive-Interval');
  if (v === undefined) return undefined;
  const t = v.trim();
  if (!/^\d{1,9}$/.test(t)) return 'off';
  const n = Number(t);
  if (n <= 0) return 'off';
  return Math.min(Math.max(n, minSec), MAX_TIMER_SEC);
}

/**
 * Applies Set-Meta-<Name> headers to `meta`: a value binds, an empty value deletes. Returns the
 * meta, made when `meta` is undefined and a Set-Meta header comes (else still undefined).
 */
export function applySetMeta(headers: HeaderList, meta: WsMeta | undefined): WsMeta | undefined {
  let out = meta;
  for (const [k, v] of headers) {
    if (k.length <= 9 || lower(k.slice(0, 9)) !== 'set-meta-') continue;
    const name = k.slice(9);
    // Made with the first Set-Meta-* header: most sessions never get one.
    out ??= new Map();
    if (v === '') out.delete(lower(name));
    else out.set(lower(name), { name, value: v });
  }
  return out;
}

/** Origin headers of the OPEN reply that go into the client's 101 Switching Protocols. */
export function handshakeResponseHeaders(headers: HeaderList): HeaderList {
  return headers.filter(([name]) => {
    const n = lower(name);
    return !NOT_IN_101.has(n) && !n.startsWith('set-meta-') && !n.startsWith('grip-');
  });
}

/** Origin headers relayed with a rejected handshake (we set Content-Length and close). */
export function rejectionResponseHeaders(headers: HeaderList): HeaderList {
  return headers.filter(([name]) => {
    const n = lower(name);
    return !NOT_IN_REJECTION.has(n) && !n.startsWith('set-meta-') && !n.startsWith('grip-');
  });
}

const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * What is wrong with a client's upgrade request, checked before the origin is asked anything
 * (RFC 6455 4.2.1); undefined when it is a valid WebSocket handshake.
 */
export function upgradeRequestProblem(method: string | undefined, headers: HeaderList): string | undefined {
  if (method !== 'GET') return `WebSocket handshake must use GET, got ${JSON.stringify(method)}`;
  const upgrade = firstHeader(headers, 'Upgrade');
  if (upgrade === undefined || lower(upgrade.trim()) !== 'websocket') return `Upgrade must be "websocket", got ${JSON.stringify(upgrade)}`;
  const key = firstHeader(headers, 'Sec-WebSocket-Key');
  if (key === undefined || !WS_KEY.test(key.trim())) return 'Sec-WebSocket-Key must be 16 bytes in base64';
  const version = firstHeader(headers, 'Sec-WebSocket-Version')?.trim();
  if (version !== '13' && version !== '8') return `Sec-WebSocket-Version must be 13, got ${JSON.stringify(version)}`;
  return undefined;
}

/** Subprotocols the client offered (Sec-WebSocket-Protocol, comma-separated, possibly repeated). */
export function offeredSubprotocols(headers: HeaderList): string[] {
  return headerValues(headers, 'Sec-WebSocket-Protocol').flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}
