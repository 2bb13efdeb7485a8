// Pulls one field's values out of a Server-Sent Events body stream. Events end with a blank line
// (`\n\n` or `\r\n\r\n`); only the first line of the field in each event is reported (bench
// messages are one line). Comments and other fields are skipped. Pure: no I/O.

export class SseFieldExtractor {
  private pending = '';

  /** `field` with its colon, e.g. `data:` or `id:`. */
  constructor(private readonly field: string) {}

  /** Feeds body text; calls `onField(text, start, end)` once per complete event with the field. */
  push(body: string, onField: (text: string, start: number, end: number) => void): void {
    const text = this.pending.length > 0 ? this.pending + body : body;
    const field = this.field;
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
        if (text.startsWith(field, line)) {
          const valueAt = line + field.length;
          const start = text.charCodeAt(valueAt) === 32 ? valueAt + 1 : valueAt;
          const stop = text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
          onField(text, start, stop);
          break;
        }
        line = eol + 1;
      }
      from = eventEnd + (useCrlf ? 4 : 2);
    }
    this.pending = from < text.length ? text.slice(from) : '';
  }
}

/** The `data:` of each event (the fan-out clients' bench messages). */
export class SseDataExtractor extends SseFieldExtractor {
  constructor() {
    super('data:');
  }
}
