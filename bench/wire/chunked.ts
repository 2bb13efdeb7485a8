// Incremental decoder for `Transfer-Encoding: chunked`, working on latin1 strings (one byte per
// char, so lengths match bytes). Feed it whatever the socket delivered; it returns the body bytes
// decoded so far and remembers partial framing between calls. Pure: no I/O.

const State = { Size: 0, Data: 1, DataEnd: 2, Trailer: 3, Done: 4 } as const;
type State = (typeof State)[keyof typeof State];

export class ChunkedDecoder {
  private state: State = State.Size;
  private remaining = 0;
  private pending = '';

  get isDone(): boolean {
    return this.state === State.Done;
  }

  /** Decodes `input`; returns the body text it contained (possibly ''). Throws on bad framing. */
  push(input: string): string {
    const text = this.pending.length > 0 ? this.pending + input : input;
    this.pending = '';
    let out = '';
    let i = 0;
    while (i < text.length) {
      switch (this.state) {
        case State.Size: {
          const eol = text.indexOf('\r\n', i);
          if (eol < 0) {
            this.pending = text.slice(i);
            return out;
          }
          const line = text.slice(i, eol);
          const semi = line.indexOf(';');
          const size = parseInt(semi < 0 ? line : line.slice(0, semi), 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size line: ${JSON.stringify(line.slice(0, 40))}`);
          i = eol + 2;
          if (size === 0) this.state = State.Trailer;
          else {
            this.remaining = size;
            this.state = State.Data;
          }
          break;
        }
        case State.Data: {
          const take = Math.min(this.remaining, text.length - i);
          out += text.slice(i, i + take);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.DataEnd;
          break;
        }
        case State.DataEnd: {
          if (text.length - i < 2) {
            this.pending = text.slice(i);
            return out;
          }
          if (text.charCodeAt(i) !== 13 || text.charCodeAt(i + 1) !== 10) throw new Error('chunk not followed by CRLF');
          i += 2;
          this.state = State.Size;
          break;
        }
        case State.Trailer: {
          // Trailer lines end with an empty line; we keep none of them.
          const eol = text.indexOf('\r\n', i);
          if (eol < 0) {
            this.pending = text.slice(i);
            return out;
          }
          if (eol === i) this.state = State.Done;
          i = eol + 2;
          break;
        }
        case State.Done:
          return out;
        default: {
          const never: never = this.state;
          throw new Error(`unreachable chunked state ${String(never)}`);
        }
      }
    }
    return out;
  }
}
