import test from 'ava';
import { encodeClientControlFrame, encodeWsHandshake, WsFrameParser, type WsFrameSink, WsOpcode } from '../../../../bench/wire/ws-frames.js';

function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const b0 = (fin ? 0x80 : 0) | opcode;
  if (payload.length < 126) return Buffer.concat([Buffer.from([b0, payload.length]), payload]);
  if (payload.length < 65536) {
    const h = Buffer.alloc(4);
    h[0] = b0;
    h[1] = 126;
    h.writeUInt16BE(payload.length, 2);
    return Buffer.concat([h, payload]);
  }
  const h = Buffer.alloc(10);
  h[0] = b0;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(payload.length), 2);
  return Buffer.concat([h, payload]);
}

function collector(): { sink: WsFrameSink; messages: string[]; controls: Array<[number, string]> } {
  const messages: string[] = [];
  const controls: Array<[number, string]> = [];
  return {
    messages,
    controls,
    sink: {
      onMessage: (_op, p) => messages.push(p.toString()),
      onControl: (op, p) => controls.push([op, p.toString('hex')]),
    },
  };
}

test('parses text frames of every length encoding, split at any byte', (t) => {
  const big = 'x'.repeat(300);
  const huge = 'y'.repeat(70_000);
  const wire = Buffer.concat([serverFrame(1, Buffer.from('M1 2.5')), serverFrame(1, Buffer.from(big)), serverFrame(1, Buffer.from(huge))]);
  for (const cut of [0, 1, 2, 3, 7, 8, 9, 10, 300, 320, wire.length - 1, wire.length]) {
    const c = collector();
    const p = new WsFrameParser();
    p.push(wire.subarray(0, cut), c.sink);
    p.push(wire.subarray(cut), c.sink);
    t.deepEqual(c.messages, ['M1 2.5', big, huge], `cut at ${cut}`);
  }
});

test('reassembles a fragmented message and passes control frames through in between', (t) => {
  const c = collector();
  new WsFrameParser().push(
    Buffer.concat([
      serverFrame(WsOpcode.Text, Buffer.from('he'), false),
      serverFrame(WsOpcode.Ping, Buffer.from([1, 2])),
      serverFrame(WsOpcode.Continuation, Buffer.from('ll'), false),
      serverFrame(WsOpcode.Continuation, Buffer.from('o')),
    ]),
    c.sink,
  );
  t.deepEqual(c.messages, ['hello']);
  t.deepEqual(c.controls, [[WsOpcode.Ping, '0102']]);
});

test('rejects an unknown opcode', (t) => {
  t.throws(() => new WsFrameParser().push(serverFrame(0x3, Buffer.alloc(0)), collector().sink), { message: /unknown WebSocket opcode 3/ });
});

test('client control frames are masked and unmask to their payload', (t) => {
  const frame = encodeClientControlFrame(WsOpcode.Close, Buffer.from([0x03, 0xe8]));
  t.is(frame[0], 0x88);
  t.is(frame[1], 0x80 | 2);
  const key = frame.subarray(2, 6);
  t.deepEqual([frame[6]! ^ key[0]!, frame[7]! ^ key[1]!], [0x03, 0xe8]);
  // A parser that accepts masked frames reads it back.
  const c = collector();
  new WsFrameParser().push(frame, c.sink);
  t.deepEqual(c.controls, [[WsOpcode.Close, '03e8']]);
});

test('refuses control frame payloads over 125 bytes', (t) => {
  t.throws(() => encodeClientControlFrame(WsOpcode.Pong, Buffer.alloc(126)), { message: /over 125 bytes/ });
});

test('the handshake asks for an upgrade with a 16-byte base64 key', (t) => {
  const req = encodeWsHandshake('127.0.0.1:1', '/ws?channel=a');
  t.regex(req, /^GET \/ws\?channel=a HTTP\/1\.1\r\n/);
  t.regex(req, /\r\nUpgrade: websocket\r\n/);
  const key = /Sec-WebSocket-Key: (\S+)\r\n/.exec(req)?.[1] ?? '';
  t.is(Buffer.from(key, 'base64').length, 16);
  t.true(req.endsWith('\r\n\r\n'));
});
