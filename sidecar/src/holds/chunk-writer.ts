import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

// Writes to held HTTP streams (STYLE 10). A published item's content is framed as one HTTP/1.1
// chunk once, and that one Buffer goes straight to every connection's socket: res.write would
// frame it again for each connection (a hex length string and three buffers in a writev) and
// schedule a tick per socket. Several writes to one connection within a tick go out together:
// the first is written at once (a lone item is not delayed), then the socket is corked and the
// rest follow in one write when the tick ends. While items come in runs (the last tick with
// writes had several for one connection), sockets are corked from the first write, so each
// connection gets one write per tick.
//
// Only a chunked response whose headers are on its socket and whose own output queue is empty is
// written to directly; anything else (HTTP/1.0 clients, HEAD, a pipelined response still waiting
// for its socket) goes through res.write, which keeps the bytes in order there.

const CRLF = Buffer.from('\r\n');

/** `content` as one HTTP/1.1 chunk: size in hex, CRLF, data, CRLF. Empty content has none. */
export function frameChunk(content: Buffer): Buffer {
  if (content.length === 0) return content;
  const size = Buffer.from(`${content.length.toString(16)}\r\n`, 'latin1');
  return Buffer.concat([size, content, CRLF], size.length + content.length + 2);
}

/** What the writer remembers per connection: two numbers kept on the hold itself (start both at 0). */
export interface CoalesceState {
  /** Tick number of the connection's last write. */
  lastWriteTick: number;
  /** Tick number in which its socket was corked. */
  corkedTick: number;
}

export class ChunkWriter {
  /** Framed chunks by content Buffer: one per published item, shared by all its connections. */
  private readonly framed = new WeakMap<Buffer, Buffer>();
  /** The most recent pair, which is what the next connection of a fan-out asks for. */
  private lastContent: Buffer | undefined;
  private lastFramed: Buffer | undefined;
  /** Advances at the end of every tick in which something was written. */
  private tick = 1;
  private isTickEndScheduled = false;
  private readonly corked: Socket[] = [];
  /** Writes this tick to a connection already written in it. */
  private repeatsThisTick = 0;
  /**
   * Whether the last tick with writes had repeats. Items come in runs (back-to-back publishes,
   * a burst from NATS), so then every connection is corked from its first write: one write per
   * connection per tick instead of two.
   */
  private isBurst = false;

  /**
   * Writes published `content` (a Buffer shared by every connection it goes to) as the next part
   * of the stream body. The response's headers must have been flushed.
   */
  write(res: ServerResponse, content: Buffer, state: CoalesceState): void {
    if (content.length === 0) return;
    const socket = res.socket;
    if (socket === null || !res.chunkedEncoding || res.writableEnded || socket.destroyed || res.writableLength !== socket.writableLength) {
      res.write(content);
      return;
    }
    if (!this.isTickEndScheduled) {
      this.isTickEndScheduled = true;
      process.nextTick(this.endTick);
    }
    const isRepeat = state.lastWriteTick === this.tick;
    if (isRepeat) this.repeatsThisTick++;
    else state.lastWriteTick = this.tick;
    if ((isRepeat || this.isBurst) && state.corkedTick !== this.tick) {
      state.corkedTick = this.tick;
      socket.cork();
      this.corked.push(socket);
    }
    socket.write(this.frame(content));
  }

  private frame(content: Buffer): Buffer {
    if (content === this.lastContent) return this.lastFramed as Buffer;
    let framed = this.framed.get(content);
    if (framed === undefined) {
      framed = frameChunk(content);
      this.framed.set(content, framed);
    }
    this.lastContent = content;
    this.lastFramed = framed;
    return framed;
  }

  private readonly endTick = (): void => {
    this.isTickEndScheduled = false;
    this.isBurst = this.repeatsThisTick > 0;
    this.repeatsThisTick = 0;
    this.tick++;
    for (const socket of this.corked) socket.uncork();
    this.corked.length = 0;
  };
}
