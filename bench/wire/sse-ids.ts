// Pulls the `id:` field out of each Server-Sent Events event, as an EventSource keeps it for its
// Last-Event-ID; events without an id (comments, the origin's `: open`) are skipped. Pure: no I/O.

import { SseFieldExtractor } from './sse-extract.js';

export class SseIdExtractor {
  private readonly ids = new SseFieldExtractor('id:');

  /** Feeds body text; calls `onId(id)` once per complete event that carries an id field. */
  push(body: string, onId: (id: string) => void): void {
    this.ids.push(body, (text, start, end) => onId(text.slice(start, end)));
  }
}
