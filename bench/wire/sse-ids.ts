// Pulls the `id:` field out of each Server-Sent Events event, as an EventSource keeps it for its
// Last-Event-ID. Events end with a blank line (`\n\n` or `\r\n\r\n`); events without an id
// (comments, the origin's `: open`) are skipped. Pure: no I/O.

export class SseIdExtractor {
  private pending = '';

  /** Feeds body text; calls `onId(id)` once per complete event that carries an id field. */
  push(body: string, onId: (id: string) => void): void {
    const text = this.pending.length > 0 ? this.pending + body : body;
    let from = 0;
    for (;;) {
      const lf = text.indexOf('\n\n', from);
      const crlf = text.indexOf('\r\n\r\n', from);
      if (lf < 0 && crlf < 0) break;
      const useCrlf = crlf >= 0 && (lf < 0 || crlf < lf);
      const eventEnd = useCrlf ? crlf : lf;
      let line = from;
      while (line < eventEnd) {
        let eol = text.indexOf('\n', line);
        if (eol < 0 || eol > eventEnd) eol = eventEnd;
        if (text.startsWith('id:', line)) {
          const start = text.charCodeAt(line + 3) === 32 ? line + 4 : line + 3;
          const stop = text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
          onId(text.slice(start, stop));
          break;
        }
        line = eol + 1;
      }
      from = eventEnd + (useCrlf ? 4 : 2);
    }
    this.pending = from < text.length ? text.slice(from) : '';
  }
}
