import { KgError } from '../errors.js';
import { MAX_JSON_DEPTH, describeJson, textNestingExceeds } from './json-input.js';
import { MAX_TIMER_SEC, type WsMessageType } from './types.js';

// GRIP WebSocket control messages (docs/websocket.md): the JSON object an origin sends after the `c:`
// prefix. Pure: parses and validates one message into a typed value; what the message does is
// the session's business. Pushpin ignores a malformed control message (debug log), so the
// session catches KG_ERR_WS_CONTROL_INVALID and carries on.

export const WsControlType = {
  Subscribe: 'subscribe',
  Unsubscribe: 'unsubscribe',
  Detach: 'detach',
  Session: 'session',
  SetMeta: 'set-meta',
  KeepAlive: 'keep-alive',
  SendDelayed: 'send-delayed',
  FlushDelayed: 'flush-delayed',
} as const;
export type WsControlType = (typeof WsControlType)[keyof typeof WsControlType];

export const KeepAliveMode = { Idle: 'idle', Interval: 'interval' } as const;
export type KeepAliveMode = (typeof KeepAliveMode)[keyof typeof KeepAliveMode];

/** A message the sidecar itself sends to the client (keep-alive, delayed send). */
export interface WsClientMessage {
  type: WsMessageType;
  content: Buffer;
}

export type WsControl =
  | { type: 'subscribe'; channel: string; filters: string[] }
  | { type: 'unsubscribe'; channel: string }
  | { type: 'detach' }
  /** GRIP session id (docs/grip.md, "What kong-grip does not do (yet)"); empty or absent clears it. */
  | { type: 'session'; id: string }
  /** value undefined deletes the key. */
  | { type: 'set-meta'; name: string; value?: string }
  /** message undefined turns keep-alives off. */
  | { type: 'keep-alive'; message?: WsClientMessage; timeoutSec: number; mode: KeepAliveMode }
  | { type: 'send-delayed'; message: WsClientMessage; timeoutSec: number }
  | { type: 'flush-delayed' };

/** Pushpin's defaults (handlerengine.cpp): keep-alive 55 s, send-delayed 1 s. */
export const DEFAULT_WS_KEEP_ALIVE_SEC = 55;
export const DEFAULT_WS_SEND_DELAYED_SEC = 1;

const TYPES: readonly string[] = Object.values(WsControlType);
const MESSAGE_TYPES: readonly WsMessageType[] = ['text', 'binary', 'ping', 'pong'];

type Json = Record<string, unknown>;

const invalid = (problem: string): KgError => new KgError('KG_ERR_WS_CONTROL_INVALID', `control message: ${problem}`);

function optString(obj: Json, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`'${key}' must be a string, got ${describeJson(v)}`);
  return v;
}

function requiredNonEmpty(obj: Json, key: string): string {
  const v = optString(obj, key);
  if (v === undefined || v === '') throw invalid(`'${key}' must be a non-empty string`);
  return v;
}

/** Parses the JSON text that follows `c:`. Throws KgError KG_ERR_WS_CONTROL_INVALID. */
export function parseWsControl(json: string): WsControl {
  if (textNestingExceeds(json)) throw invalid(`nested more than ${MAX_JSON_DEPTH} levels deep`);
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw invalid('not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('must be a JSON object');
  const obj = v as Json;
  const type = obj['type'];
  if (typeof type !== 'string' || !TYPES.includes(type)) {
    throw invalid(`'type' must be one of ${TYPES.join(', ')}, got ${describeJson(type)}`);
  }
  const t = type as WsControlType;
  switch (t) {
    case 'subscribe':
      return { type: t, channel: requiredNonEmpty(obj, 'channel'), filters: parseFilters(obj['filters']) };
    case 'unsubscribe':
      return { type: t, channel: requiredNonEmpty(obj, 'channel') };
    case 'detach':
    case 'flush-delayed':
      return { type: t };
    case 'session':
      return { type: t, id: optString(obj, 'id') ?? '' };
    case 'set-meta': {
      const name = requiredNonEmpty(obj, 'name');
      const value = optString(obj, 'value');
      return value === undefined ? { type: t, name } : { type: t, name, value };
    }
    case 'keep-alive': {
      const message = parseMessage(obj);
      const mode = optString(obj, 'mode');
      // Pushpin treats any mode other than "interval" as idle; so do we.
      const out: WsControl = {
        type: t,
        timeoutSec: parseTimeout(obj, DEFAULT_WS_KEEP_ALIVE_SEC),
        mode: mode === 'interval' ? 'interval' : 'idle',
      };
      if (message !== undefined) out.message = message;
      return out;
    }
    case 'send-delayed': {
      const message = parseMessage(obj);
      if (message === undefined) throw invalid(`send-delayed needs 'content' or 'content-bin'`);
      return { type: t, message, timeoutSec: parseTimeout(obj, DEFAULT_WS_SEND_DELAYED_SEC) };
    }
    default:
      return assertNever(t);
  }
}

function parseFilters(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((f) => typeof f === 'string')) throw invalid(`'filters' must be a list of strings`);
  return v as string[];
}

/** content-bin (Base64) wins over content; `message-type` defaults to text even for content-bin. */
function parseMessage(obj: Json): WsClientMessage | undefined {
  const rawType = optString(obj, 'message-type');
  if (rawType !== undefined && !(MESSAGE_TYPES as readonly string[]).includes(rawType)) {
    throw invalid(`'message-type' must be one of ${MESSAGE_TYPES.join(', ')}, got ${describeJson(rawType)}`);
  }
  const type = (rawType ?? 'text') as WsMessageType;
  const bin = optString(obj, 'content-bin');
  if (bin !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(bin) || bin.length % 4 !== 0) throw invalid(`'content-bin' is not valid base64`);
    return { type, content: Buffer.from(bin, 'base64') };
  }
  const text = optString(obj, 'content');
  return text === undefined ? undefined : { type, content: Buffer.from(text, 'utf8') };
}

/**
 * Whole seconds ≥ 0; 0 or absent means the default (as in Pushpin). Above 24 h (MAX_TIMER_SEC)
 * the message is refused, so ignored like any malformed one: Node's timer cannot take it.
 */
function parseTimeout(obj: Json, fallback: number): number {
  const v = obj['timeout'];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalid(`'timeout' must be an integer ≥ 0, got ${describeJson(v)}`);
  if (v > MAX_TIMER_SEC) throw invalid(`'timeout' must be at most ${MAX_TIMER_SEC} s (24 h), got ${describeJson(v)}`);
  return v === 0 ? fallback : v;
}

function assertNever(x: never): never {
  throw new Error(`unhandled case ${describeJson(x)}`);
}
