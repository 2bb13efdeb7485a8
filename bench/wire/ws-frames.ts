// Just enough RFC 6455 for a bench client: parse unmasked server frames incrementally and build
// masked client control frames. Fragmented messages are reassembled. Pure: no I/O.

import { randomBytes } from 'node:crypto';

export const WsOpcode = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;
export type WsOpcode = (typeof WsOpcode)[keyof typeof WsOpcode];

export interface WsFrameSink {
  onMessage(opcode: typeof WsOpcode.Text | typeof WsOpcode.Binary, payload: Buffer): void;
  onControl(opcode: typeof WsOpcode.Close | typeof WsOpcode.Ping | typeof WsOpcode.Pong, payload: Buffer): void;
}

export class WsFrameParser {
  private pending: Buffer | undefined;
  private fragments: Buffer[] = [];
  private fragmentOpcode: typeof WsOpcode.Text | typeof WsOpcode.Binary = WsOpcode.Text;

  push(input: Buffer, sink: WsFrameSink): void {
    const buf = this.pending ? Buffer.concat([this.pending, input]) : input;
    this.pending = undefined;
    let i = 0;
    while (buf.length - i >= 2) {
      const b0 = buf[i]!;
      const b1 = buf[i + 1]!;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (buf.length - i < 4) break;
        len = buf.readUInt16BE(i + 2);
        hdr = 4;
      } else if (len === 127) {
        if (buf.length - i < 10) break;
        const big = buf.readBigUInt64BE(i + 2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('WebSocket frame too large');
        len = Number(big);
        hdr = 10;
      }
      const maskLen = masked ? 4 : 0;
      if (buf.length - i < hdr + maskLen + len) break;
      let payload = buf.subarray(i + hdr + maskLen, i + hdr + maskLen + len);
      if (masked) {
        const key = buf.subarray(i + hdr, i + hdr + 4);
        payload = Buffer.from(payload);
        for (let k = 0; k < payload.length; k++) payload[k] = payload[k]! ^ key[k & 3]!;
      }
      i += hdr + maskLen + len;
      switch (opcode) {
        case WsOpcode.Text:
        case WsOpcode.Binary:
          if (fin) sink.onMessage(opcode, payload);
          else {
            this.fragmentOpcode = opcode;
            this.fragments = [Buffer.from(payload)];
          }
          break;
        case WsOpcode.Continuation:
          this.fragments.push(Buffer.from(payload));
          if (fin) {
            const whole = Buffer.concat(this.fragments);
            this.fragments = [];
            sink.onMessage(this.fragmentOpcode, whole);
          }
          break;
        case WsOpcode.Close:
        case WsOpcode.Ping:
        case WsOpcode.Pong:
          sink.onControl(opcode, payload);
          break;
        default:
          throw new Error(`unknown WebSocket opcode ${opcode}`);
      }
    }
    if (i < buf.length) this.pending = Buffer.from(buf.subarray(i));
  }
}

/** A masked client frame (clients must mask). Used for pong and close only; payload ≤ 125 bytes. */
export function encodeClientControlFrame(opcode: typeof WsOpcode.Close | typeof WsOpcode.Pong, payload: Buffer): Buffer {
  if (payload.length > 125) throw new Error('control frame payload over 125 bytes');
  const key = randomBytes(4);
  const out = Buffer.allocUnsafe(6 + payload.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | payload.length;
  key.copy(out, 2);
  for (let k = 0; k < payload.length; k++) out[6 + k] = payload[k]! ^ key[k & 3]!;
  return out;
}

/** The client handshake request for `path` on `host`. */
export function encodeWsHandshake(host: string, path: string): string {
  const key = randomBytes(16).toString('base64');
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}
