import test from 'ava';
import { TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { connect, logOf, startWsOrigin } from '../helpers/ws-origin.js';

// Partial acceptance over real sockets (spec 7.1, Content-Bytes-Accepted): an origin that reads
// lines accepts nothing until a line is complete; the sidecar sends the unaccepted bytes again,
// first in the next request, with Content-Bytes-Replayed.

test('an origin that waits for whole lines gets the unaccepted bytes again, announced, and answers once a line is complete', async (t) => {
  const replayed: Array<string | undefined> = [];
  const origin = await startWsOrigin(() => undefined, {
    raw: (req, res, body) => {
      replayed.push(req.headers['content-bytes-replayed'] as string | undefined);
      const text = body.toString('latin1');
      if (text.startsWith('OPEN')) {
        res.writeHead(200, { 'Content-Type': 'application/websocket-events', 'Sec-WebSocket-Extensions': 'grip' });
        res.end('OPEN\r\n');
        return true;
      }
      // The content of every TEXT event in the request, in order.
      let content = '';
      for (let at = 0; at < text.length;) {
        const lineEnd = text.indexOf('\r\n', at);
        const [type, hex] = text.slice(at, lineEnd).split(' ');
        const length = hex === undefined ? 0 : parseInt(hex, 16);
        if (type === 'TEXT') content += text.slice(lineEnd + 2, lineEnd + 2 + length);
        at = lineEnd + 2 + (hex === undefined ? 0 : length + 2);
      }
      const newline = content.lastIndexOf('\n');
      const accepted = newline + 1;
      const lines = content.slice(0, accepted).split('\n').filter((l) => l !== '');
      const reply = lines.map((l) => `TEXT ${(l.length + 2).toString(16)}\r\nm:${l}\r\n`).join('');
      res.writeHead(200, { 'Content-Type': 'application/websocket-events', 'Content-Bytes-Accepted': String(accepted) });
      res.end(reply);
      return true;
    },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY });
  t.teardown(async () => {
    await side.close();
    await origin.close();
  });
  const client = await connect(side.url('/lines'));
  const log = logOf(client);
  client.send('hel');
  await origin.waitFor((r) => r.events.some((e) => e.content === 'hel'));
  client.send('lo\nwor');
  t.deepEqual(await log.waitForCount(1), ['hello']);
  client.send('ld\n');
  t.deepEqual(await log.waitForCount(2), ['hello', 'world']);
  t.deepEqual(replayed, [undefined, undefined, '3', '3']);
  t.deepEqual(origin.seen.slice(1).map((r) => r.events.map((e) => e.content)), [['hel'], ['hel', 'lo\nwor'], ['wor', 'ld\n']]);
  client.close();
});
