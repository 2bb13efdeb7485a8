// Example 1, the SSE chat: GET /events holds the page's EventSource on channel "demo"; POST /say
// publishes a line to it. GET /poll is the same channel by long-polling (one message per poll,
// no resume: the notes example shows how to poll without gaps). Each /say is published in the
// three formats, so SSE, long-poll and WebSocket subscribers of "demo" all get it.
import { line, readText, sendText } from './http-util.js';

const CHANNEL = 'demo';

/** An SSE event carrying a chat line; the JSON has no raw newlines, so one data line holds it. */
const sseEvent = (text) => `data: ${line(text)}\n\n`;

export function createSseChat({ publish }) {
  return {
    /** GET /events */
    events(req, res) {
      res.writeHead(200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        'Grip-Hold': 'stream',
        'Grip-Channel': CHANNEL,
        // An SSE comment every 20 s of silence keeps proxies from closing the stream.
        'Grip-Keep-Alive': ':\\n\\n; format=cstring; timeout=20',
      });
      res.end(sseEvent('connected'));
    },

    /** GET /poll: answered by the next message on the channel, or with none after 30 s. */
    poll(req, res) {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Grip-Hold': 'response', 'Grip-Channel': CHANNEL, 'Grip-Timeout': '30' });
      res.end('{"messages":[]}\n');
    },

    /** POST /say: 204 once the sidecar took it, 400 for an empty or long line, 502 if publishing failed. */
    async say(req, res) {
      const { text, problem } = await readText(req);
      if (problem !== undefined) return sendText(res, 400, problem);
      const published = await publish({
        channel: CHANNEL,
        formats: {
          'http-stream': { content: sseEvent(text) },
          'http-response': { body: `${JSON.stringify({ messages: [text] })}\n` },
          'ws-message': { content: text },
        },
      });
      if (!published) return sendText(res, 502, 'not delivered: the sidecar\'s publish API did not accept it');
      res.writeHead(204);
      res.end();
    },
  };
}
