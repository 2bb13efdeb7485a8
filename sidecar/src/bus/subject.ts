// Channel name <-> NATS subject. A channel is carried as ONE subject token after a prefix:
//
//   channel "news"         -> grip.ch.news
//   channel "user.42"      -> grip.ch.user%2E42
//   channel "a b>c"        -> grip.ch.a%20b%3Ec
//   channel "café ☕"      -> grip.ch.caf%C3%A9%20%E2%98%95
//
// Escaping rule (percent-encoding of the channel's UTF-8 bytes):
//   a byte is written as itself when it is printable ASCII (0x21-0x7E) other than
//   `.` (token separator), `*` and `>` (wildcards) and `%` (the escape character);
//   every other byte (space, tab, control characters, DEL, every byte of a non-ASCII
//   character) is written as `%` followed by two UPPERCASE hex digits.
// The result is printable ASCII only, which is what NATS's naming rules recommend for subjects
// (servers accept more, but tooling and other clients may not). The encoding is canonical: one
// channel has exactly one subject, so a publisher and a subscriber always agree; the decoder
// rejects anything the encoder would not produce (lowercase hex, needless escapes, bad UTF-8).

export const DEFAULT_SUBJECT_PREFIX = 'grip.ch.';

const ESCAPE = 0x25; // '%'
const HEX = '0123456789ABCDEF';

function isKeptByte(b: number): boolean {
  return b >= 0x21 && b <= 0x7e && b !== 0x2e /* . */ && b !== 0x2a /* * */ && b !== 0x3e /* > */ && b !== ESCAPE;
}

/** The subject token for a channel. Throws RangeError for the empty channel (edges reject it). */
export function encodeChannelToken(channel: string): string {
  if (channel === '') throw new RangeError('channel must not be empty');
  // Fast path: most channel names need no escaping.
  let plain = true;
  for (let i = 0; i < channel.length; i++) {
    if (!isKeptByte(channel.charCodeAt(i))) {
      plain = false;
      break;
    }
  }
  if (plain) return channel;
  let out = '';
  for (const b of Buffer.from(channel, 'utf8')) {
    out += isKeptByte(b) ? String.fromCharCode(b) : '%' + HEX[b >> 4] + HEX[b & 0x0f];
  }
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1; // lowercase is not canonical
}

/** Inverse of encodeChannelToken; undefined when the token is not one the encoder produces. */
export function decodeChannelToken(token: string): string | undefined {
  if (token === '') return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c === ESCAPE) {
      const hi = hexValue(token.charCodeAt(i + 1));
      const lo = hexValue(token.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      const b = hi * 16 + lo;
      if (isKeptByte(b)) return undefined; // needless escape: two subjects for one channel
      bytes.push(b);
      i += 2;
    } else if (isKeptByte(c)) {
      bytes.push(c);
    } else {
      return undefined;
    }
  }
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

/**
 * Checks a configured prefix: dot-separated tokens of printable ASCII without wildcards, ending
 * in `.` (one is added when missing). Returns the normalised prefix or an error text.
 */
export function normalizeSubjectPrefix(prefix: string): { prefix: string } | { error: string } {
  const withDot = prefix.endsWith('.') ? prefix : prefix + '.';
  const tokens = withDot.slice(0, -1).split('.');
  for (const token of tokens) {
    if (token === '') return { error: `subject prefix ${JSON.stringify(prefix)} has an empty token` };
    if (!/^[\x21-\x7e]+$/.test(token) || token.includes('*') || token.includes('>')) {
      return {
        error: `subject prefix ${JSON.stringify(prefix)} must be dot-separated tokens of printable ASCII without '*' or '>'`,
      };
    }
  }
  return { prefix: withDot };
}

/** `prefix` must already be normalised (ends in `.`). */
export function channelToSubject(prefix: string, channel: string): string {
  return prefix + encodeChannelToken(channel);
}

/** The channel a subject carries, or undefined when the subject is not under `prefix` or not canonical. */
export function subjectToChannel(prefix: string, subject: string): string | undefined {
  if (!subject.startsWith(prefix)) return undefined;
  return decodeChannelToken(subject.slice(prefix.length));
}
