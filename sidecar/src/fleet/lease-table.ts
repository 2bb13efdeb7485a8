// The value of one connection-lease key (fleet/connection-leases.ts): for one quota (a plugin
// entity and a consumer), how many connections each process of the fleet holds, and until when
// its lease runs. Pure: parsing, pruning, counting, encoding; the clock comes in as an argument.
//
// Encoded as JSON: {"<holder>": [count, expiresAtMs], ...}. The bucket is writable by every
// sidecar, so what is read is checked: entries that do not have that shape are dropped (and the
// rest still counts), never trusted or thrown on.

export interface LeaseEntry {
  count: number;
  /** Epoch ms, by the clock of the process that wrote it. */
  expiresAt: number;
}

export type LeaseTable = Map<string, LeaseEntry>;

/** Bounds on what is read: a holder name, a count, the number of holders kept. */
export const LEASE_TABLE_LIMITS = { holderChars: 200, maxCount: 10_000_000, maxHolders: 10_000 } as const;

/** The table in `bytes` (empty for an absent, deleted or unreadable value), and how many entries were dropped. */
export function decodeLeaseTable(bytes: Uint8Array | undefined): { table: LeaseTable; dropped: number } {
  const table: LeaseTable = new Map();
  if (bytes === undefined || bytes.length === 0) return { table, dropped: 0 };
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return { table, dropped: 1 };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { table, dropped: 1 };
  let dropped = 0;
  for (const [holder, v] of Object.entries(doc as Record<string, unknown>)) {
    if (table.size >= LEASE_TABLE_LIMITS.maxHolders || holder.length === 0 || holder.length > LEASE_TABLE_LIMITS.holderChars
      || !Array.isArray(v) || v.length !== 2) {
      dropped++;
      continue;
    }
    const [count, expiresAt] = v as unknown[];
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || count > LEASE_TABLE_LIMITS.maxCount
      || typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0) {
      dropped++;
      continue;
    }
    table.set(holder, { count, expiresAt });
  }
  return { table, dropped };
}

export function encodeLeaseTable(table: LeaseTable): Uint8Array {
  const doc: Record<string, [number, number]> = {};
  for (const [holder, e] of table) doc[holder] = [e.count, e.expiresAt];
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

/** Connections held by every holder but `self` whose lease has not run out at `now`. */
export function countOthers(table: LeaseTable, self: string, now: number): number {
  let n = 0;
  for (const [holder, e] of table) if (holder !== self && e.expiresAt > now) n += e.count;
  return n;
}

/**
 * Decides a batch of requests for one slot each, in order: a request is granted while the
 * fleet's total (others + ours + granted so far) stays below its limit. Returns the new table
 * (expired holders and empty entries removed, ours written with `expiresAt`) and the grants.
 */
export function applyBatch(table: LeaseTable, self: string, mine: number, limits: readonly number[], now: number, expiresAt: number): { table: LeaseTable; grants: boolean[] } {
  const others = countOthers(table, self, now);
  let held = mine;
  const grants = limits.map((limit) => {
    if (others + held >= limit) return false;
    held++;
    return true;
  });
  const next: LeaseTable = new Map();
  for (const [holder, e] of table) if (holder !== self && e.expiresAt > now && e.count > 0) next.set(holder, e);
  if (held > 0) next.set(self, { count: held, expiresAt });
  return { table: next, grants };
}
