import type { ItemHandler } from '../../sidecar/src/bus/bus.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';

/** A minimal stream item carrying `text` as its content. */
export function streamItem(channel: string, text: string, extra: Partial<PublishItem> = {}): PublishItem {
  return {
    channel,
    formats: { 'http-stream': { action: 'send', content: Buffer.from(text) } },
    meta: {},
    noSeq: false,
    ...extra,
  };
}

/** The text of a stream item made by streamItem. */
export function textOf(item: PublishItem): string {
  return item.formats['http-stream']?.content.toString('utf8') ?? '';
}

/** Collects delivered items and lets a test wait (on delivery, not on time) for a count or a match. */
export class ItemCollector {
  readonly items: PublishItem[] = [];
  private waiters: Array<{ done: () => boolean; resolve: () => void }> = [];
  readonly handler: ItemHandler = (item) => {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (!w.done()) return true;
      w.resolve();
      return false;
    });
  };

  get texts(): string[] {
    return this.items.map(textOf);
  }

  /** Resolves once `count` items have arrived. */
  waitForCount(count: number): Promise<void> {
    return this.waitFor(() => this.items.length >= count);
  }

  /** Resolves once an item with this text has arrived. */
  waitForText(text: string): Promise<void> {
    return this.waitFor(() => this.items.some((i) => textOf(i) === text));
  }

  private waitFor(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ done, resolve }));
  }
}
