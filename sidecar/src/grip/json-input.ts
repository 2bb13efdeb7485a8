// JSON from outside (publish bodies, NATS payloads, JSON instructs, WebSocket control messages)
// kept within what the code after the parser can handle. V8's JSON.parse takes any depth, but
// JSON.stringify, structuredClone and recursive checks overflow the stack somewhere past a few
// thousand levels, and the RangeError then surfaces far from the input (a 503 from the bus, an
// "origin unreachable"). Parsers refuse deeper input up front with their own error code. Both
// checks are loops, never recursion, so they work at any depth.

/** Deepest nesting of arrays and objects accepted; Qt's JSON parser, which Pushpin uses, has the same limit. */
export const MAX_JSON_DEPTH = 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** Whether JSON text nests arrays/objects deeper than `max` (a scan of the raw text, strings skipped). */
export function textNestingExceeds(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** Whether a parsed JSON value nests arrays/objects deeper than `max`. */
export function valueNestingExceeds(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = (depths.pop() as number) + 1;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) {
        values.push(child);
        depths.push(depth);
      }
    }
  }
  return false;
}

const MAX_SHOWN_CHARS = 100;

/**
 * A value as JSON for an error message: at most about 100 chars (longer text is cut and its
 * length given), 'nothing' for undefined; never throws.
 */
export function describeJson(v: unknown): string {
  if (v === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch (err) {
    return err instanceof RangeError ? 'a value nested too deeply to show' : String(v);
  }
  return text.length <= MAX_SHOWN_CHARS ? text : `${text.slice(0, MAX_SHOWN_CHARS)}… (${text.length} chars)`;
}
