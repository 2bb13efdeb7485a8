import test from 'ava';
import * as wsModule from 'ws';
import { encodeFrame, isSendableCloseCode, Opcode, truncateCloseReason } from '../../../sidecar/src/grip/ws-frame.js';

type Received = { data: Buffer; isBinary: boolean } | { ping: Buffer } | { pong: Buffer };

// Feed frames to ws's own parser as a client would see them.
function receive(frames: Buffer[]): Promise<Received[]> {
  // ws exports its Receiver and Sender at runtime; @types/ws does not declare them.
  const Receiver = (wsModule as unknown as { Receiver: new (opts: object) => import('node:stream').Writable }).Receiver;
  const receiver = new Receiver({ isServer: false, binaryType: 'nodebuffer' });
  const got: Received[] = [];
  receiver.on('message', (data: Buffer, isBinary: boolean) => got.push({ data, isBinary }));
  receiver.on('ping', (data: Buffer) => got.push({ ping: data }));
  receiver.on('pong', (data: Buffer) => got.push({ pong: data }));
  return new Promise((resolve, reject) => {
    receiver.on('error', reject);
    receiver.end(Buffer.concat(frames), () => resolve(got));
  });
}

test('frames of every length class parse in ws as the same messages', async (t) => {
  const sizes = [0, 1, 125, 126, 65535, 65536, 70000];
  const frames = sizes.map((n) => encodeFrame(Opcode.Binary, Buffer.alloc(n, 7))!);
  const got = await receive(frames);
  t.deepEqual(got.map((g) => ('data' in g ? g.data.length : -1)), sizes);
});

test('text, ping and pong frames carry their opcode', async (t) => {
  const got = await receive([
    encodeFrame(Opcode.Text, Buffer.from('héllo'))!,
    encodeFrame(Opcode.Ping, Buffer.from('p'))!,
    encodeFrame(Opcode.Pong, Buffer.alloc(0))!,
  ]);
  t.deepEqual(got, [{ data: Buffer.from('héllo'), isBinary: false }, { ping: Buffer.from('p') }, { pong: Buffer.alloc(0) }]);
});

test('is byte-identical to ws Sender.frame for an unmasked frame', (t) => {
  const payload = Buffer.alloc(300, 1);
  const ours = encodeFrame(Opcode.Text, payload)!;
  const Sender = (wsModule as unknown as { Sender: { frame(d: Buffer, o: object): Buffer[] } }).Sender;
  const theirs = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: true }));
  t.deepEqual(ours, theirs);
});

test('refuses control frames over 125 bytes', (t) => {
  t.is(encodeFrame(Opcode.Ping, Buffer.alloc(126)), undefined);
  t.truthy(encodeFrame(Opcode.Ping, Buffer.alloc(125)));
});

test('close codes: 1000-1014 minus reserved ones, and 3000-4999', (t) => {
  for (const ok of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999]) t.true(isSendableCloseCode(ok), String(ok));
  for (const bad of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000]) t.false(isSendableCloseCode(bad), String(bad));
});

test('close reasons are cut to 123 bytes on a character boundary', (t) => {
  t.is(truncateCloseReason('short'), 'short');
  const cut = truncateCloseReason('é'.repeat(100));
  t.is(Buffer.byteLength(cut), 122);
  t.is(cut, 'é'.repeat(61));
});
