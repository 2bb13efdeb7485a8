import type { WsMessageType } from './types.js';

// Server-to-client WebSocket frames (RFC 6455 5.2), built once and written as-is to every
// socket that should receive them: fan-out of one published message costs one Buffer, not one
// frame build per client. Server frames are never masked. Pure.

export const Opcode = { Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Control frames (ping, pong, close) carry at most 125 payload bytes. */
export const MAX_CONTROL_PAYLOAD = 125;
/** Close reasons: 125 bytes minus the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

const OPCODE_OF: Record<WsMessageType, Opcode> = {
  text: Opcode.Text,
  binary: Opcode.Binary,
  ping: Opcode.Ping,
  pong: Opcode.Pong,
};

export function opcodeOf(type: WsMessageType): Opcode {
  return OPCODE_OF[type];
}

/**
 * One complete unfragmented frame (FIN set) in a single Buffer. Returns undefined for a control
 * frame whose payload exceeds 125 bytes, which no client may accept.
 */
export function encodeFrame(opcode: Opcode, payload: Buffer): Buffer | undefined {
  const len = payload.length;
  if (opcode >= 0x8 && len > MAX_CONTROL_PAYLOAD) return undefined;
  const headerLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLen + len);
  frame[0] = 0x80 | opcode;
  if (len < 126) {
    frame[1] = len;
  } else if (len < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  payload.copy(frame, headerLen);
  return frame;
}

/**
 * Whether `code` may be sent in a close frame (RFC 6455 7.4: 1000-1014 minus the reserved 1004,
 * 1005, 1006, plus 3000-4999). js-grip's `close()` sends code 0, which is none of these; callers
 * then close without a status code.
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** Cuts a close reason to 123 UTF-8 bytes without splitting a character. */
export function truncateCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}
