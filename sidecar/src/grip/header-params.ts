// HTTP list/parameter syntax as the Grip-* headers use it (docs/grip.md, "Instructions in the origin's response"):
//   element[, element]...         element = first[; name[=value | ="quoted \" value"]]...
// Repeated headers are concatenated as one list. `first` is kept raw (Grip-Channel names,
// keep-alive data and link targets are not quoted strings); parameter values are unquoted.
// Errors are HeaderSyntaxError without the header name: the caller knows which header it read
// and wraps the message into its own error.

export class HeaderSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeaderSyntaxError';
  }
}

export interface HeaderParam {
  /** As written; compare case-insensitively (see findParam). */
  name: string;
  /** Undefined when the parameter has no `=` at all (`; flag`), '' for `name=`. */
  value: string | undefined;
}

export interface HeaderElement {
  /** Text before the first `;`, trimmed, quotes left in place. */
  first: string;
  params: HeaderParam[];
}

export interface ListOptions {
  /** Treat `<...>` as opaque, so link targets may contain `,` and `;` (RFC 8288 style). */
  angleBrackets?: boolean;
}

const isOws = (c: string | undefined): boolean => c === ' ' || c === '\t';

function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isOws(s[start])) start++;
  while (end > start && isOws(s[end - 1])) end--;
  return s.slice(start, end);
}

/**
 * Index of the first `stop` character outside quoted strings (and `<...>` when asked), or
 * text.length when there is none. Quoted strings honour backslash escapes.
 */
function findUnquoted(text: string, stop: string, from: number, options: ListOptions): number {
  let inQuote = false;
  let inAngle = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (inQuote) {
      if (c === '\\') {
        i++;
        if (i >= text.length) throw new HeaderSyntaxError('ends inside a quoted string (dangling backslash)');
      } else if (c === '"') {
        inQuote = false;
      }
    } else if (inAngle) {
      if (c === '>') inAngle = false;
    } else if (c === '"') {
      inQuote = true;
    } else if (c === '<' && options.angleBrackets === true) {
      inAngle = true;
    } else if (c === stop) {
      return i;
    }
  }
  if (inQuote) throw new HeaderSyntaxError('has an unterminated quoted string');
  if (inAngle) throw new HeaderSyntaxError('has an unterminated <...>');
  return text.length;
}

/**
 * Splits one header value at top-level commas. Elements are trimmed; empty elements are kept
 * (as '') so callers can reject them where the spec says so.
 */
export function splitHeaderList(value: string, options: ListOptions = {}): string[] {
  const parts: string[] = [];
  let pos = 0;
  for (;;) {
    const end = findUnquoted(value, ',', pos, options);
    parts.push(trimOws(value.slice(pos, end)));
    if (end >= value.length) return parts;
    pos = end + 1;
  }
}

/**
 * Parses `name[=value|="quoted"]` parameters separated by `;`. Empty segments (`a;;b`, a
 * trailing `;`) are skipped; a value without a name is an error.
 */
export function parseParams(text: string): HeaderParam[] {
  const params: HeaderParam[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nameEnd = nextOf(text, pos, '=;');
    const name = trimOws(text.slice(pos, nameEnd));
    if (nameEnd >= text.length || text[nameEnd] === ';') {
      if (name !== '') params.push({ name, value: undefined });
      pos = nameEnd + 1;
      continue;
    }
    // text[nameEnd] === '='
    if (name === '') throw new HeaderSyntaxError(`has a parameter value without a name near ${JSON.stringify(text.slice(pos))}`);
    let i = nameEnd + 1;
    while (isOws(text[i])) i++;
    if (text[i] === '"') {
      const { value, next } = readQuoted(text, i);
      let j = next;
      while (isOws(text[j])) j++;
      if (j < text.length && text[j] !== ';') {
        throw new HeaderSyntaxError(`has unexpected text after the quoted value of parameter ${JSON.stringify(name)}`);
      }
      params.push({ name, value });
      pos = j + 1;
    } else {
      const end = nextOf(text, i, ';');
      params.push({ name, value: trimOws(text.slice(i, end)) });
      pos = end + 1;
    }
  }
  return params;
}

function nextOf(text: string, from: number, chars: string): number {
  for (let i = from; i < text.length; i++) {
    if (chars.includes(text[i] as string)) return i;
  }
  return text.length;
}

/** Reads a quoted string starting at the opening quote; backslash escapes any character. */
function readQuoted(text: string, openAt: number): { value: string; next: number } {
  let value = '';
  for (let i = openAt + 1; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      i++;
      if (i >= text.length) break;
      value += text[i];
    } else if (c === '"') {
      return { value, next: i + 1 };
    } else {
      value += c;
    }
  }
  throw new HeaderSyntaxError('has an unterminated quoted string');
}

/** One list element: raw text up to the first top-level `;`, then its parameters. */
export function parseElement(text: string, options: ListOptions = {}): HeaderElement {
  const semi = findUnquoted(text, ';', 0, options);
  return { first: trimOws(text.slice(0, semi)), params: parseParams(text.slice(semi + 1)) };
}

/** All elements of a (possibly repeated) header, in order. */
export function parseHeaderList(values: readonly string[], options: ListOptions = {}): HeaderElement[] {
  const out: HeaderElement[] = [];
  for (const value of values) {
    for (const part of splitHeaderList(value, options)) out.push(parseElement(part, options));
  }
  return out;
}

/** First parameter with that name (case-insensitive). */
export function findParam(params: readonly HeaderParam[], name: string): HeaderParam | undefined {
  const lower = name.toLowerCase();
  return params.find((p) => p.name.toLowerCase() === lower);
}

/** Every parameter with that name (case-insensitive), in order; `filter` may repeat. */
export function findAllParams(params: readonly HeaderParam[], name: string): HeaderParam[] {
  const lower = name.toLowerCase();
  return params.filter((p) => p.name.toLowerCase() === lower);
}

/** The URL inside a link target `<...>`; throws when the brackets are missing or empty. */
export function unwrapLinkTarget(first: string): string {
  if (first.length <= 2 || !first.startsWith('<') || !first.endsWith('>')) {
    throw new HeaderSyntaxError(`target must be written as <URL>, got ${JSON.stringify(first)}`);
  }
  return first.slice(1, -1);
}

// Node's HTTP parser hands header values over as latin1 strings (one char per byte). GRIP names
// (channels, ids, meta) are UTF-8, as Pushpin reads them, so they are decoded here. A value that
// already holds chars above U+00FF was decoded by someone else; one that is not valid UTF-8 is
// left as its latin1 reading rather than mangled into U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeHeaderText(s: string): string {
  if (!/[^\x00-\x7f]/.test(s) || /[^\x00-\xff]/.test(s)) return s;
  try {
    return utf8.decode(Buffer.from(s, 'latin1'));
  } catch {
    return s;
  }
}

/** The bytes a header value stood for (latin1 reading), or UTF-8 when it holds wider chars. */
export function headerBytes(s: string): Buffer {
  return Buffer.from(s, /[^\x00-\xff]/.test(s) ? 'utf8' : 'latin1');
}
