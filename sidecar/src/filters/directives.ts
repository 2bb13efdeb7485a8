// Pushpin's `%` directives (docs/grip.md, "Meta and filters"), the one syntax behind build-id's `%I` / `%(id)I`, the
// id_format's `%(channel)s` and var-subst's `%(key)s`:
//
//   %%          a literal %
//   %X          directive X (an ASCII letter) without argument
//   %(arg)X     directive X with an argument; inside the parentheses `\c` is a literal c
//
// Pure byte work on Buffers (content may be any bytes); the meaning of each directive is the
// caller's. Partial mode is for bodies that arrive in pieces: a directive cut off at the end
// is left unconsumed for the next piece instead of being an error.

/** A directive could not be expanded, or the syntax is wrong; the message is Pushpin's wording. */
export class DirectiveError extends Error {}

/** Expands one directive: `type` is its letter, `arg` the text in parentheses, if any. Throws DirectiveError. */
export type DirectiveHandler = (type: string, arg: Buffer | undefined) => Buffer;

const PERCENT = 0x25;
const OPEN = 0x28;
const CLOSE = 0x29;
const BACKSLASH = 0x5c;

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

export interface Expanded {
  out: Buffer;
  /** Bytes of the input consumed; less than its length only in partial mode (an unfinished directive). */
  consumed: number;
}

/**
 * Expands every directive in `input`. With `partial`, an unfinished directive at the end is not
 * an error: it and what follows stay unconsumed. Throws DirectiveError.
 */
export function expandDirectives(input: Buffer, handle: DirectiveHandler, partial = false): Expanded {
  // Most content has no directive at all: returned as it is, no copy.
  if (input.indexOf(PERCENT) === -1) return { out: input, consumed: input.length };
  const parts: Buffer[] = [];
  let literalStart = 0;
  const cut = (markerPos: number, message: string): Expanded => {
    if (!partial) throw new DirectiveError(message);
    parts.push(input.subarray(literalStart, markerPos));
    return { out: Buffer.concat(parts), consumed: markerPos };
  };
  for (let n = 0; n < input.length; n++) {
    if (input[n] !== PERCENT) continue;
    const markerPos = n;
    parts.push(input.subarray(literalStart, markerPos));
    literalStart = markerPos; // until the directive is complete, for a partial cut
    if (n + 1 >= input.length) return cut(markerPos, `Expected directive after '%' at position ${n}`);
    n++;
    let c = input[n]!;
    if (c === PERCENT) {
      parts.push(input.subarray(n, n + 1));
      literalStart = n + 1;
      continue;
    }
    if (c === OPEN) {
      const fieldStart = n;
      if (n + 1 >= input.length) return cut(markerPos, `Expected character after '(' at position ${n}`);
      n++;
      const arg: number[] = [];
      let isClosed = false;
      for (; n < input.length; n++) {
        c = input[n]!;
        if (c === BACKSLASH) {
          if (n + 1 >= input.length) return cut(markerPos, `Expected character after '\\' at position ${n}`);
          n++;
          arg.push(input[n]!);
        } else if (c === CLOSE) {
          isClosed = true;
          break;
        } else {
          arg.push(c);
        }
      }
      if (!isClosed) return cut(markerPos, `Unterminated field starting at position ${fieldStart}`);
      if (n + 1 >= input.length) return cut(markerPos, `Expected directive after ')' at position ${n}`);
      n++;
      parts.push(expandOne(handle, String.fromCharCode(input[n]!), Buffer.from(arg), n));
      literalStart = n + 1;
      continue;
    }
    if (isAsciiLetter(c)) {
      parts.push(expandOne(handle, String.fromCharCode(c), undefined, n));
      literalStart = n + 1;
      continue;
    }
    throw new DirectiveError(`Unknown directive '${String.fromCharCode(c)}' at position ${n}`);
  }
  parts.push(input.subarray(literalStart));
  return { out: Buffer.concat(parts), consumed: input.length };
}

function expandOne(handle: DirectiveHandler, type: string, arg: Buffer | undefined, pos: number): Buffer {
  try {
    return handle(type, arg);
  } catch (err) {
    if (err instanceof DirectiveError) throw new DirectiveError(`${err.message} at position ${pos}`);
    throw err;
  }
}
