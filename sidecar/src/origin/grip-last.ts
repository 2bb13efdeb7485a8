import type { HeaderList } from '../grip/types.js';

/** `Grip-Last` request headers, one per channel: where the client stands, for a retry or a next-link fetch (docs/grip.md, "Reliability"). */
export function gripLastHeaders(lastIds: ReadonlyMap<string, string>): HeaderList {
  const out: HeaderList = [];
  for (const [channel, id] of lastIds) out.push(['Grip-Last', `${channel}; last-id=${id}`]);
  return out;
}
