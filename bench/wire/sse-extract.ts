// Pulls `data:` values out of a Server-Sent Events body stream. Events end with a blank line;
// only the first data line of each event is reported (bench messages are one line). Comments
// and other fields are skipped. Pure: no I/O.

export class SseDataExtractor {
  private pending = '';

  /** Feeds body text; calls `onData(text, start, end)` once per complete event with data. */
  push(body: string, onData: (text: string, start: number, end: number) => void): void {
    const text = this.pending.length > 0 ? this.pending + body : body;
    let from = 0;
    for (;;) {
      // An event ends at a blank line: `\n\n` or `\r\n\r\n`, whichever comes first.
      const lf = text.indexOf('\n\n', from);
      const crlf = text.indexOf('\r\n\r\n', from);
      if (lf < 0 && crlf < 0) break;
      const useCrlf = crlf >= 0 && (lf < 0 || crlf < lf);
      const eventEnd = useCrlf ? crlf : lf;
      let line = from;
      while (line < eventEnd) {
        let eol = text.indexOf('\n', line);
        if (eol < 0 || eol > eventEnd) eol = eventEnd;
        if (text.startsWith('data:', line)) {
          const start = text.charCodeAt(line + 5) === 32 ? line + 6 : line + 5;
          const stop = text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
          onData(text, start, stop);
          break;
        }
        line = eol + 1;
      }
      from = eventEnd + (useCrlf ? 4 : 2);
    }
    this.pending = from < text.length ? text.slice(from) : '';
  }
}
