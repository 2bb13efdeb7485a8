// WebSocket-over-HTTP (application/websocket-events), the body of each request the sidecar sends
// for a client WebSocket and of the origin's reply: each event is `TYPE\r\n`, or
// `TYPE <hex length>\r\n<content>\r\n` when it has content (TEXT, BINARY, CLOSE, PING, PONG).
// Pure: bytes in, events out.

/** Decodes a request body into `{ type, content }` events; throws on a malformed body. */
export function decodeWsEvents(body) {
  const events = [];
  let at = 0;
  while (at < body.length) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) throw new Error('truncated event line');
    const [type, hex] = body.toString('latin1', at, eol).split(' ');
    at = eol + 2;
    let content = Buffer.alloc(0);
    if (hex !== undefined) {
      const length = /^[0-9a-fA-F]{1,8}$/.test(hex) ? parseInt(hex, 16) : -1;
      if (length < 0 || at + length + 2 > body.length) throw new Error(`bad ${type} content length`);
      content = body.subarray(at, at + length);
      at += length + 2;
    }
    events.push({ type, content });
  }
  return events;
}

/** Encodes one event. */
export function wsEvent(type, content) {
  if (content === undefined) return Buffer.from(`${type}\r\n`);
  const bytes = Buffer.from(content);
  return Buffer.concat([Buffer.from(`${type} ${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
}
