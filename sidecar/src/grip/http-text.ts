// What Node's HTTP writer accepts, checked where input enters rather than when a response is
// written. Node (lib/_http_common.js) refuses a header name that is not an RFC 7230 token
// (ERR_INVALID_HTTP_TOKEN) and a header value or status message holding any char other than
// HTAB, 0x20-0x7E and 0x80-0xFF (ERR_INVALID_CHAR); writeHead throws, so a value that gets past a
// parser can kill the response or the process. These are Node's own patterns, so "accepted here"
// means "Node will write it". Values are wire strings (one char per byte, see HeaderList).

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NOT_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/** A header name Node will write (RFC 7230 token). */
export function isHttpToken(name: string): boolean {
  return TOKEN.test(name);
}

/**
 * What is wrong with a header value or reason phrase Node would refuse, or undefined when Node
 * writes it. Names the first bad char and its index, e.g. `contains U+0001 at index 3`.
 */
export function headerTextProblem(text: string): string | undefined {
  const bad = NOT_VALUE_CHAR.exec(text);
  if (bad === null) return undefined;
  const code = bad[0].codePointAt(0) as number;
  return `contains U+${code.toString(16).toUpperCase().padStart(4, '0')} at index ${bad.index} (allowed: tab, 0x20-0x7E, 0x80-0xFF)`;
}
