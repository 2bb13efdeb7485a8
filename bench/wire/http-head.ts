// Minimal HTTP/1.1 response-head parsing for the bench clients. Only what the clients need:
// status code, body framing and whether the connection may be reused. Pure: no I/O.

export const BodyFraming = { Chunked: 'chunked', Length: 'length', UntilClose: 'until-close', None: 'none' } as const;
export type BodyFraming = (typeof BodyFraming)[keyof typeof BodyFraming];

export interface ResponseHead {
  status: number;
  framing: BodyFraming;
  /** Body length when framing is 'length'. */
  contentLength: number;
  keepAlive: boolean;
  headers: Map<string, string>;
}

/** Index just past the blank line ending the head, or -1 if the head is not complete yet. */
export function findHeadEnd(text: string): number {
  const i = text.indexOf('\r\n\r\n');
  return i < 0 ? -1 : i + 4;
}

/** Parses a complete response head (status line and header lines, blank line excluded or not). */
export function parseResponseHead(head: string): ResponseHead {
  const lines = head.split('\r\n');
  const statusLine = lines[0] ?? '';
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`bad HTTP status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const status = Number(m[2]);
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  const connection = (headers.get('connection') ?? '').toLowerCase();
  const keepAlive = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  const te = (headers.get('transfer-encoding') ?? '').toLowerCase();
  const cl = headers.get('content-length');
  let framing: BodyFraming;
  let contentLength = 0;
  if (status === 101 || status === 204 || status === 304) framing = BodyFraming.None;
  else if (/\bchunked\b/.test(te)) framing = BodyFraming.Chunked;
  else if (cl !== undefined) {
    contentLength = Number(cl);
    if (!Number.isInteger(contentLength) || contentLength < 0) throw new Error(`bad Content-Length: ${cl}`);
    framing = contentLength === 0 ? BodyFraming.None : BodyFraming.Length;
  } else framing = BodyFraming.UntilClose;
  return { status, framing, contentLength, keepAlive: keepAlive && framing !== BodyFraming.UntilClose, headers };
}
