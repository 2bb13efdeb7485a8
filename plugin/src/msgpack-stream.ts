import { Decoder } from '@msgpack/msgpack';

// Splits a byte stream into MessagePack messages, synchronously, one socket read at a time.
//
// Why not @msgpack/msgpack's decodeMultiStream: it is an async iterator (promises per read and
// per message), and it learns that a read is used up by letting DataView throw a RangeError
// past the end, so every read costs one thrown exception with a stack trace. Here a cheap scan
// over the message's headers (string and binary bodies are skipped, not read) finds where the
// next message ends; only complete messages reach the decoder, which then never throws for
// lack of data. A message split over reads is held (copied) until the bytes it announces have
// arrived, its scan resuming where it stopped, and a message that announces or accumulates more than `maxMessageBytes` is refused
// (its connection dropped) instead of buffered without end.

/** Thrown by MessageStream.push: the stream is not MessagePack, or a message is too long. */
export class MessageStreamError extends Error {}

/** Kong's messages are a few KB (a plugin config, a request's headers): 16 MiB is far above them. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Where a scan stopped short: the first value not wholly read, and the values still to read from it on. */
export interface ScanResume {
  at: number;
  items: number;
}

/**
 * Scans values from `p` with `items` values still to read (1 for a new message): returns the
 * end offset of the message when `bytes` holds all of it, or minus a lower bound on that end
 * when it does not (always below 0), having written into `resume` where to pick the scan up
 * once more bytes have come (so a message split over many reads is scanned once over all).
 * Throws MessageStreamError on the one byte MessagePack never uses (0xc1).
 */
export function scanMessage(bytes: Uint8Array, p: number, items: number, resume: ScanResume): number {
  const n = bytes.length;
  // items: values still to skip; containers add their elements (maps two per entry).
  while (items > 0) {
    const at = p;
    if (p >= n) {
      resume.at = at;
      resume.items = items;
      return -(p + 1);
    }
    items--;
    const h = bytes[p] as number;
    let head = 0; // header bytes (h included) of a value whose length or count follows h
    if (h < 0x80 || h >= 0xe0) p += 1; // positive / negative fixint
    else if (h < 0x90) { items += 2 * (h & 0x0f); p += 1; } // fixmap
    else if (h < 0xa0) { items += h & 0x0f; p += 1; } // fixarray
    else if (h < 0xc0) p += 1 + (h & 0x1f); // fixstr
    else {
      switch (h) {
        case 0xc0: case 0xc2: case 0xc3: p += 1; break; // nil, false, true
        case 0xcc: case 0xd0: p += 2; break; // uint8, int8
        case 0xcd: case 0xd1: p += 3; break; // uint16, int16
        case 0xca: case 0xce: case 0xd2: p += 5; break; // float32, uint32, int32
        case 0xcb: case 0xcf: case 0xd3: p += 9; break; // float64, uint64, int64
        case 0xd4: p += 3; break; // fixext 1 (type byte + data)
        case 0xd5: p += 4; break;
        case 0xd6: p += 6; break;
        case 0xd7: p += 10; break;
        case 0xd8: p += 18; break;
        case 0xc4: case 0xd9: case 0xc7: head = 2; break; // bin8, str8, ext8: 1-byte length
        case 0xc5: case 0xda: case 0xc8: case 0xdc: case 0xde: head = 3; break; // 2-byte length or count
        case 0xc6: case 0xdb: case 0xc9: case 0xdd: case 0xdf: head = 5; break; // 4-byte length or count
        default: throw new MessageStreamError(`0x${h.toString(16)} is not a MessagePack type byte`);
      }
    }
    if (head > 0) {
      if (p + head > n) {
        resume.at = at;
        resume.items = items + 1;
        return -(p + head);
      }
      const size = head === 2 ? bytes[p + 1] as number
        : head === 3 ? ((bytes[p + 1] as number) << 8) | (bytes[p + 2] as number)
          : (bytes[p + 1] as number) * 0x1000000 + (((bytes[p + 2] as number) << 16) | ((bytes[p + 3] as number) << 8) | (bytes[p + 4] as number));
      if (h === 0xdc || h === 0xdd) { items += size; p += head; } // array16/32
      else if (h === 0xde || h === 0xdf) { items += 2 * size; p += head; } // map16/32
      // ext8/16/32 carry a type byte after the length; bin and str do not.
      else p += head + size + (h === 0xc7 || h === 0xc8 || h === 0xc9 ? 1 : 0);
    }
    if (p > n) {
      resume.at = at;
      resume.items = items + 1;
      return -(p + (items > 0 ? 1 : 0));
    }
  }
  return p;
}

/** The end of the message at `start` in `bytes`, or minus a lower bound on it (scanMessage from scratch). */
export function messageEnd(bytes: Uint8Array, start: number): number {
  return scanMessage(bytes, start, 1, { at: 0, items: 0 });
}

/** One connection's incoming MessagePack messages. */
export class MessageStream {
  private readonly decoder = new Decoder();
  /** The bytes of a message not yet complete, from its first byte, in [0, held) (a copy: reads are not ours to keep). */
  private buf: Buffer = Buffer.alloc(0);
  private held = 0;
  /** How many bytes that message needs at least: no scan before that many are held. */
  private needed = 0;
  /** Where its scan resumes. */
  private readonly resume: ScanResume = { at: 0, items: 0 };

  constructor(private readonly maxMessageBytes: number = MAX_MESSAGE_BYTES) {}

  /**
   * Decodes every message `chunk` completes, in order, calling `onMessage` for each until it
   * returns false (the connection is going away: the rest is not decoded). Throws
   * MessageStreamError (or the decoder's error) when the stream is not valid MessagePack or a
   * message exceeds the bound; the stream is then unusable.
   */
  push(chunk: Uint8Array, onMessage: (message: unknown) => boolean): void {
    let bytes = chunk;
    let pos = 0;
    if (this.held > 0) {
      this.append(chunk);
      if (this.held < this.needed) return;
      const held = this.buf.subarray(0, this.held);
      const end = scanMessage(held, this.resume.at, this.resume.items, this.resume);
      if (end < 0) {
        this.needed = -end;
        this.checkSize(this.needed);
        this.checkSize(this.held);
        return;
      }
      this.checkSize(end);
      // The rest of `held` (the start of the next messages) is read below, before buf is reused.
      bytes = held;
      pos = end;
      this.held = 0;
      if (!onMessage(this.decoder.decode(held.subarray(0, end)))) return;
    }
    while (pos < bytes.length) {
      const end = scanMessage(bytes, pos, 1, this.resume);
      if (end < 0) {
        this.checkSize(-end - pos);
        this.checkSize(bytes.length - pos);
        this.hold(bytes.subarray(pos), pos);
        this.needed = -end - pos;
        return;
      }
      this.checkSize(end - pos);
      // Most reads are exactly one request: decode the read itself, no view of it.
      const message: unknown = this.decoder.decode(pos === 0 && end === bytes.length ? bytes : bytes.subarray(pos, end));
      pos = end;
      if (!onMessage(message)) return;
    }
  }

  /** Starts holding an incomplete message (`from` was its offset in the read, where the scan state counts from). */
  private hold(rest: Uint8Array, from: number): void {
    // A fresh buffer: `rest` may be a view of buf itself.
    const buf = Buffer.allocUnsafe(Math.max(rest.length, Math.min(2 * rest.length + 1024, this.maxMessageBytes)));
    buf.set(rest, 0);
    this.buf = buf;
    this.held = rest.length;
    this.resume.at -= from;
  }

  /** Adds a read to the held message, doubling the buffer as needed (one copy per byte, amortized). */
  private append(chunk: Uint8Array): void {
    const total = this.held + chunk.length;
    if (total > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(total, Math.min(2 * this.buf.length, this.maxMessageBytes)));
      this.buf.copy(grown, 0, 0, this.held);
      this.buf = grown;
    }
    this.buf.set(chunk, this.held);
    this.held = total;
  }

  private checkSize(bytes: number): void {
    if (bytes > this.maxMessageBytes) throw new MessageStreamError(`a message of more than ${this.maxMessageBytes} bytes`);
  }
}
