// What Node's HTTP writer accepts, checked where input enters rather than when a response is
// written. Node (lib/_http_common.js) refuses a header name that is not an RFC 7230 token
// (ERR_INVALID_HTTP_TOKEN) and a header value or status message holding any char other than
// HTAB, 0x20-0x7E and 0x80-0xFF (ERR_INVALID_CHAR); writeHead throws, so a value that gets past a
// parser can kill the response or the process. These are Node's own patterns, so "accepted here"
// means "Node will write it". Values are wire strings (one char per byte, see HeaderList).

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NOT_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
/** CTL except HTAB: the only chars whose UTF-8 bytes Node refuses. */
const CONTROL_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;
const NOT_ASCII = /[^\x00-\x7f]/;

/** A header name Node will write (RFC 7230 token). */
export function isHttpToken(name: string): boolean {
  return TOKEN.test(name);
}

/**
 * What is wrong with a header value or reason phrase Node would refuse, or undefined when Node
 * writes it. Names the first bad char and its index, e.g. `contains U+0001 at index 3`.
 */
export function headerTextProblem(text: string): string | undefined {
  return describeBadChar(NOT_VALUE_CHAR.exec(text), 'tab, 0x20-0x7E, 0x80-0xFF');
}

// Header values and reasons given as JSON text (JSON instructs, published http-response items)
// are sent as their UTF-8 bytes, as Pushpin 1.36 sends them ("5 €" as 35 20 E2 82 AC). Converted
// once, where parsed, to a wire string; any text is writable then except control chars.

/**
 * What is wrong with JSON text meant for a header value or reason phrase (a control char other
 * than tab), or undefined when its UTF-8 bytes (textToWire) are writable.
 */
export function textProblem(text: string): string | undefined {
  return describeBadChar(CONTROL_CHAR.exec(text), 'tab and any char but control chars');
}

/** Text as a wire string: its UTF-8 bytes, one char per byte, which Node writes byte for byte. */
export function textToWire(text: string): string {
  return NOT_ASCII.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/** A wire string made by textToWire (so valid UTF-8) back to its text, e.g. to send it on as JSON. */
export function wireToText(wire: string): string {
  return NOT_ASCII.test(wire) ? Buffer.from(wire, 'latin1').toString('utf8') : wire;
}

function describeBadChar(bad: RegExpExecArray | null, allowed: string): string | undefined {
  if (bad === null) return undefined;
  const code = bad[0].codePointAt(0) as number;
  return `contains U+${code.toString(16).toUpperCase().padStart(4, '0')} at index ${bad.index} (allowed: ${allowed})`;
}
