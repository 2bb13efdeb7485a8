// Example 3, the WebSocket chat on /ws. The sidecar holds the client's WebSocket and sends this
// origin plain HTTP requests (WebSocket-over-HTTP): one POST per batch of client events, answered
// with events. The origin subscribes each connection to channel "chat" (a GRIP control message)
// and publishes every line it gets to that channel.
import { MAX_TEXT_BYTES, line, readBody } from './http-util.js';
import { decodeWsEvents, wsEvent } from './ws-events.js';

const CHANNEL = 'chat';
const MAX_BODY_BYTES = 300_000; // the sidecar batches a client's messages into one request

/** A line for the client only: `m:` text goes to the client without the prefix (GRIP on). */
const toClient = (text, kind) => wsEvent('TEXT', `m:${line(text, { kind })}`);

export function createWsChat({ publish }) {
  /** POST /ws with Content-Type application/websocket-events */
  return async function wsChat(req, res) {
    let events;
    try {
      const body = await readBody(req, MAX_BODY_BYTES);
      if (body === undefined) throw new Error(`over ${MAX_BODY_BYTES} bytes`);
      events = decodeWsEvents(body);
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`bad websocket-events body: ${err.message}\n`);
      return;
    }
    const out = [];
    for (const { type, content } of events) {
      if (type === 'OPEN') {
        // Accept with GRIP on: `c:` text is a control message for the sidecar.
        out.push(wsEvent('OPEN'), wsEvent('TEXT', `c:${JSON.stringify({ type: 'subscribe', channel: CHANNEL })}`));
        out.push(toClient(`welcome to #${CHANNEL}`));
      } else if (type === 'TEXT') {
        const text = content.toString('utf8').trim();
        if (text === '' || content.length > MAX_TEXT_BYTES) {
          out.push(toClient(`(message must be 1-${MAX_TEXT_BYTES} bytes)`, 'error'));
        } else if (!await publish({ channel: CHANNEL, formats: { 'ws-message': { content: line(text) } } })) {
          out.push(toClient('(not delivered: the publish failed)', 'error'));
        }
      } else if (type === 'PING') {
        out.push(wsEvent('PONG', content));
      } else if (type === 'CLOSE') {
        out.push(wsEvent('CLOSE', content)); // agree to close with the client's code
      } // BINARY, PONG, DISCONNECT: nothing to do.
    }
    res.writeHead(200, { 'Content-Type': 'application/websocket-events', 'Sec-WebSocket-Extensions': 'grip' });
    res.end(Buffer.concat(out));
  };
}
