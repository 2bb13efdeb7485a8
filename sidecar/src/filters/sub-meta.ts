// A connection's subscription meta (docs/grip.md, "Meta and filters"): string pairs the origin sets with Grip-Set-Meta,
// the JSON instruct's hold.meta or the WebSocket set-meta control message, read by the filters.
// An empty value (or a set-meta without value) deletes the key. Bounded per connection, since
// every held connection keeps its own: at most maxKeys keys and maxBytes bytes of keys and
// values (UTF-8) together.

export interface MetaLimits {
  readonly maxKeys: number;
  readonly maxBytes: number;
}

/** A change the limits refuse; the meta is left as it was. */
export class MetaLimitError extends Error {}

const EMPTY: ReadonlyMap<string, string> = new Map();

export class SubscriptionMeta {
  private entries: Map<string, string> | undefined;
  private bytes = 0;

  constructor(private readonly limits: MetaLimits) {}

  /** The meta as the filters read it. */
  view(): ReadonlyMap<string, string> {
    return this.entries ?? EMPTY;
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  /** Sets (or, with an empty or absent value, deletes) one key. Throws MetaLimitError over the limits. */
  set(key: string, value: string | undefined): void {
    this.apply([[key, value]]);
  }

  /** Applies several changes at once, all or none. Throws MetaLimitError over the limits. */
  apply(changes: Iterable<readonly [string, string | undefined]>): void {
    const next = new Map(this.entries);
    let bytes = this.bytes;
    for (const [key, value] of changes) {
      const old = next.get(key);
      if (old !== undefined) {
        bytes -= Buffer.byteLength(key) + Buffer.byteLength(old);
        next.delete(key);
      }
      if (value === undefined || value === '') continue;
      next.set(key, value);
      bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
    }
    if (next.size > this.limits.maxKeys) {
      throw new MetaLimitError(`subscription meta would have ${next.size} keys, at most ${this.limits.maxKeys} are allowed (limits.maxMetaKeys)`);
    }
    if (bytes > this.limits.maxBytes) {
      throw new MetaLimitError(`subscription meta would have ${bytes} bytes, at most ${this.limits.maxBytes} are allowed (limits.maxMetaBytes)`);
    }
    this.entries = next.size === 0 ? undefined : next;
    this.bytes = bytes;
  }
}
