// Plain values for the GRIP terms. Parsers (instruct.ts, publish-item.ts) produce them, holds
// consume them; past a parser nothing re-validates.

/**
 * Header name/value pairs in order, repeats kept. Values are wire strings, one char per byte
 * (latin1), as Node's rawHeaders give them and as Node writes them back.
 */
export type HeaderList = Array<[name: string, value: string]>;

/**
 * The longest timer an origin may ask for, in seconds (24 h). Node's setTimeout takes at most
 * 2^31-1 ms (about 24.8 days) and treats anything larger as 1 ms, so an origin's huge timeout
 * would fire every millisecond. Pushpin sets no bound of its own (docs/grip.md and docs/websocket.md).
 */
export const MAX_TIMER_SEC = 86_400;

export const HoldMode = { Response: 'response', Stream: 'stream' } as const;
export type HoldMode = (typeof HoldMode)[keyof typeof HoldMode];

/** One `Grip-Channel` entry (or JSON `hold.channels[]` element). */
export interface ChannelSub {
  name: string;
  prevId?: string;
  filters: string[];
}

export interface KeepAlive {
  /** Bytes written to the stream when the timer fires. */
  content: Buffer;
  /** idle: restarted by every write; interval: fires regardless of traffic. */
  mode: 'idle' | 'interval';
  timeoutSec: number;
}

/** A rel=next link. */
export interface Link {
  /** Absolute http(s) URL, resolved against the request URL. */
  url: string;
  /** Idle time before the link is fetched (default 120). */
  timeoutSec: number;
}

export interface Hold {
  mode: HoldMode;
  channels: ChannelSub[];
  /** Response hold timeout in seconds (already clamped to the minimum). */
  timeoutSec: number;
  /** Set only for stream holds (keep-alives do not apply to response holds). */
  keepAlive?: KeepAlive;
}

/** What the origin asked for, parsed from its response headers and (JSON instruct) body. Read-only once parsed. */
export interface Instruct {
  readonly hold?: Readonly<Hold>;
  /** Status the client sees (Grip-Status overrides the origin's). */
  readonly code: number;
  readonly reason: string;
  /** Response headers for the client: Grip-* and hop-by-hop removed, Expose-Headers applied. */
  readonly headers: HeaderList;
  /**
   * The client-facing body when it is fully known at parse time (JSON instruct, or buffered
   * response); undefined means "relay the origin body as it arrives". A body read after parsing
   * travels beside the Instruct (origin/grip-response.ts), never in it.
   */
  readonly body?: Buffer;
  readonly nextLink?: Link;
  /** rel=gone: POSTed to (empty body) when the session ends; it has no timeout. */
  readonly goneLink?: Pick<Link, 'url'>;
  readonly meta: Record<string, string>;
}

export const PublishAction = { Send: 'send', Hint: 'hint', Refresh: 'refresh', Close: 'close' } as const;
export type PublishAction = (typeof PublishAction)[keyof typeof PublishAction];

/** One RFC 6902 operation as the publish parser accepts it (only the members the op defines). */
export type JsonPatchOperation =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

export interface HttpResponseFormat {
  action: PublishAction;
  code: number;
  reason?: string;
  headers: HeaderList;
  /** From body-bin (precedence) or body. */
  body?: Buffer;
  /** RFC 6902 operations applied to the timeout body parsed as JSON. */
  bodyPatch?: JsonPatchOperation[];
  contentFilters?: string[];
}

export interface HttpStreamFormat {
  action: Exclude<PublishAction, 'refresh'> | 'refresh';
  content: Buffer;
  contentFilters?: string[];
}

export type WsMessageType = 'text' | 'binary' | 'ping' | 'pong';

export interface WsMessageFormat {
  action: 'send' | 'close' | 'refresh' | 'hint';
  type: WsMessageType;
  content: Buffer;
  /** close only; undefined = close frame without status. */
  code?: number;
  reason?: string;
  contentFilters?: string[];
}

export interface PublishFormats {
  'http-response'?: HttpResponseFormat;
  'http-stream'?: HttpStreamFormat;
  'ws-message'?: WsMessageFormat;
}

/** One validated publish item, the unit the bus carries. */
export interface PublishItem {
  channel: string;
  id?: string;
  prevId?: string;
  formats: PublishFormats;
  meta: Record<string, string>;
  noSeq: boolean;
  /**
   * The item's sequence in the JetStream history stream, set by the bus when history is on;
   * never part of the published JSON.
   */
  seq?: number;
}
