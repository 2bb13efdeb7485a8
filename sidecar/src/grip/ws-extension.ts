// The `grip` WebSocket extension and message prefixes (docs/websocket.md). Pure.
//
// The origin turns GRIP on by naming `grip` in the Sec-WebSocket-Extensions header of its OPEN
// reply, optionally with `message-prefix` (default `m:`, may be empty). With GRIP on, every text
// message from the origin is either a control message (`c:` + JSON), a data message (prefix
// stripped) or dropped; binary messages are relayed only when they start with the prefix bytes.
// With GRIP off, everything passes through untouched.

export const DEFAULT_MESSAGE_PREFIX = 'm:';
const CONTROL_PREFIX = Buffer.from('c:');
/**
 * Pushpin splits origin messages into 16,384-byte frames and ignores a `c:` message that spans
 * more than one frame; we keep messages whole but ignore over-long control messages the same way.
 */
export const MAX_CONTROL_MESSAGE_BYTES = 16_384;

export interface GripExtension {
  /** Prefix bytes that mark a data message; may be empty (everything is data). */
  messagePrefix: Buffer;
}

interface ExtensionOffer {
  name: string;
  params: Map<string, string>;
}

/**
 * Parses Sec-WebSocket-Extensions values (RFC 6455 9.1: comma-separated extensions, each with
 * `;`-separated params whose values are tokens or quoted strings). Malformed parts are skipped:
 * an origin that garbles the header simply does not get GRIP.
 */
export function parseExtensions(values: readonly string[]): ExtensionOffer[] {
  const out: ExtensionOffer[] = [];
  for (const value of values) {
    for (const part of splitOutsideQuotes(value, ',')) {
      const [head, ...rawParams] = splitOutsideQuotes(part, ';');
      const name = head?.trim().toLowerCase() ?? '';
      if (name === '') continue;
      const params = new Map<string, string>();
      for (const p of rawParams) {
        const eq = p.indexOf('=');
        const key = (eq === -1 ? p : p.slice(0, eq)).trim().toLowerCase();
        if (key === '') continue;
        params.set(key, eq === -1 ? '' : unquote(p.slice(eq + 1).trim()));
      }
      out.push({ name, params });
    }
  }
  return out;
}

/** The grip extension from the origin's OPEN reply headers, or undefined when GRIP is off. */
export function gripExtensionFrom(values: readonly string[]): GripExtension | undefined {
  const grip = parseExtensions(values).find((e) => e.name === 'grip');
  if (grip === undefined) return undefined;
  return { messagePrefix: Buffer.from(grip.params.get('message-prefix') ?? DEFAULT_MESSAGE_PREFIX, 'utf8') };
}

export type OriginMessageRoute =
  | { kind: 'control'; json: string }
  | { kind: 'message'; content: Buffer }
  | { kind: 'drop'; why: 'no-prefix' | 'control-too-long' };

/** What to do with one text/binary message from the origin. `content` slices share memory. */
export function routeOriginMessage(grip: GripExtension | undefined, isText: boolean, content: Buffer): OriginMessageRoute {
  if (grip === undefined) return { kind: 'message', content };
  if (isText && startsWith(content, CONTROL_PREFIX)) {
    if (content.length - CONTROL_PREFIX.length > MAX_CONTROL_MESSAGE_BYTES) return { kind: 'drop', why: 'control-too-long' };
    return { kind: 'control', json: content.toString('utf8', CONTROL_PREFIX.length) };
  }
  if (!startsWith(content, grip.messagePrefix)) return { kind: 'drop', why: 'no-prefix' };
  return { kind: 'message', content: content.subarray(grip.messagePrefix.length) };
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quoted && c === '\\' && i + 1 < s.length) {
      cur += c + (s[i + 1] as string);
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  return v;
}
