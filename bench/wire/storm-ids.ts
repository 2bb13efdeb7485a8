// The storm's publish sequence: the k-th item published overall (k = 0, 1, …) goes to channel
// k mod C and carries id floor(k / C) + 1, so ids run 1, 2, 3, … on every channel and a client
// can tell a missing id from a repeated one. Pure: no I/O.

export interface StormItemRef {
  channelIndex: number;
  id: number;
}

export function stormItem(k: number, channels: number): StormItemRef {
  return { channelIndex: k % channels, id: Math.floor(k / channels) + 1 };
}

/** The last id of each channel once `published` items went out (0: none yet). */
export function lastIds(published: number, channels: number): number[] {
  return Array.from({ length: channels }, (_, c) => (published > c ? Math.floor((published - c - 1) / channels) + 1 : 0));
}

/** Items due after `elapsedMs` at `ratePerS` items per second. */
export function itemsDue(elapsedMs: number, ratePerS: number): number {
  return Math.max(0, Math.floor((elapsedMs * ratePerS) / 1000));
}

/** The SSE event of item `id`: its `id:` line is what the client sends back as Last-Event-ID. */
export function stormEvent(id: number): string {
  return `id: ${id}\ndata: ${id}\n\n`;
}
