import {
  CLIENT_GRIP_HEADERS, HANDOFF_HEADER, KONG_IDENTITY_HEADERS, ORIGIN_IDENTITY_HEADERS, signHandoff,
  type HandoffClaims, type HandoffConsumer,
} from '../../sidecar/src/kong/handoff-format.js';

// The plugin's half of the handoff: turn what Kong gave us (plugin config, the authenticated
// consumer) into the one header map the access phase sends with a single
// kong.service.request.set_headers call. Pure: the clock and the nonce are arguments.
// The token format itself is shared with the sidecar (sidecar/src/handoff-format.ts).

export { HANDOFF_HEADER, ORIGIN_IDENTITY_HEADERS };
export type { HandoffClaims, HandoffConsumer };

/** A header map for kong.service.request.set_headers: an empty array removes the header. */
export type HeaderTable = Record<string, string | string[]>;

/**
 * Headers removed from every request before it goes upstream: client copies of GRIP headers,
 * of our own identity headers, and of Kong's identity headers (which a client can set itself
 * on a route without an auth plugin). Identity travels only inside the signed token.
 */
export const CLEARED_HEADERS: readonly string[] = [
  ...CLIENT_GRIP_HEADERS,
  ...Object.values(ORIGIN_IDENTITY_HEADERS),
  ...KONG_IDENTITY_HEADERS,
];

/**
 * The consumer as the token carries it, from the entity kong.client.get_consumer returns (a Kong
 * consumer row: id, username, custom_id, ...; nil arrives as null or undefined). A consumer
 * without a string id is not an identity we can vouch for: treated as none.
 */
export function consumerFromKong(entity: unknown): HandoffConsumer | null {
  if (typeof entity !== 'object' || entity === null) return null;
  const row = entity as Record<string, unknown>;
  const id = row['id'];
  if (typeof id !== 'string' || id === '') return null;
  const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  return { id, username: text(row['username']), customId: text(row['custom_id']) };
}

/** The set_headers table: the signed token, and every cleared header mapped to []. */
export function handoffHeaders(claims: HandoffClaims, secret: string): HeaderTable {
  const table: HeaderTable = {};
  for (const name of CLEARED_HEADERS) table[name] = [];
  table[HANDOFF_HEADER] = signHandoff(claims, secret);
  return table;
}
