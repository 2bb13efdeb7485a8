import { STATUS_CODES } from 'node:http';
import { KgError } from '../errors.js';
import { isHttpToken, textProblem, textToWire, wireToText } from './http-text.js';
import { MAX_JSON_DEPTH, describeJson, valueNestingExceeds } from './json-input.js';
import type {
  HeaderList, HttpResponseFormat, JsonPatchOperation, HttpStreamFormat, PublishFormats, PublishItem, WsMessageFormat, WsMessageType,
} from './types.js';

// Publish items (docs/grip.md, "Publishing"): the JSON shape accepted by POST /publish/ and carried on NATS.
// Parsing is all-or-nothing and every error names the path to the bad field.

type Json = Record<string, unknown>;

const invalid = (path: string, problem: string): KgError =>
  new KgError('KG_ERR_PUBLISH_INVALID', `${path}: ${problem}`);

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(obj: Json, key: string, path: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(path, `'${key}' must be a string`);
  return v;
}

function optBase64(obj: Json, key: string, path: string): Buffer | undefined {
  const v = optString(obj, key, path);
  if (v === undefined) return undefined;
  // Buffer.from silently skips junk; insist on canonical base64 so a typo is not half-delivered.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw invalid(path, `'${key}' is not valid base64`);
  return Buffer.from(v, 'base64');
}

function parseAction<A extends string>(obj: Json, allowed: readonly A[], path: string): A {
  const v = obj['action'];
  if (v === undefined || v === null) return 'send' as A;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalid(path, `'action' must be one of ${allowed.join(', ')}, got ${describeJson(v)}`);
  }
  return v as A;
}

function parseContentFilters(obj: Json, path: string): string[] | undefined {
  const v = obj['content-filters'];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((f) => typeof f === 'string')) {
    throw invalid(path, `'content-filters' must be a list of strings`);
  }
  return v as string[];
}

function parseCode(obj: Json, path: string, fallback: number | undefined, min = 0, max = 999): number | undefined {
  const raw = obj['code'];
  if (raw === undefined || raw === null) return fallback;
  // @fanoutio/grip types the code as a string ("202"); accept digit strings as Pushpin does.
  const v = typeof raw === 'string' && /^\d{1,4}$/.test(raw) ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(path, `'code' must be an integer ${min}-${max}, got ${describeJson(raw)}`);
  }
  return v;
}

/** `{name: value}` or `[[name, value], ...]`, as Pushpin accepts. */
export function parseHeaderSet(v: unknown, path: string): HeaderList {
  if (v === undefined || v === null) return [];
  const out: HeaderList = [];
  const check = (name: unknown, value: unknown): void => {
    if (typeof name !== 'string' || !isHttpToken(name)) {
      throw invalid(path, `header name ${describeJson(name)} is not a valid token`);
    }
    if (typeof value !== 'string') throw invalid(path, `header ${name} must have a string value`);
    // Sent as its UTF-8 bytes, as Pushpin does; a control char Node cannot write would fail for
    // every subscriber (see http-text.ts).
    const problem = textProblem(value);
    if (problem !== undefined) throw invalid(path, `header ${name} value ${problem}`);
    out.push([name, textToWire(value)]);
  };
  if (Array.isArray(v)) {
    for (const pair of v) {
      if (!Array.isArray(pair) || pair.length !== 2) throw invalid(path, 'each header must be a [name, value] pair');
      check(pair[0], pair[1]);
    }
  } else if (isObject(v)) {
    for (const [name, value] of Object.entries(v)) check(name, value);
  } else {
    throw invalid(path, 'must be an object or a list of [name, value] pairs');
  }
  return out;
}

function parseHttpResponse(v: unknown, path: string): HttpResponseFormat {
  if (!isObject(v)) throw invalid(path, 'must be an object');
  const action = parseAction(v, ['send', 'hint', 'refresh', 'close'] as const, path);
  // HTTP cannot carry status codes below 100, so they are refused here rather than at send time.
  const code = parseCode(v, path, 200, 100) ?? 200;
  // A client takes a 1xx as informational and keeps waiting for the real response.
  if (code < 200) throw invalid(path, `'code' ${code} is informational (1xx) and cannot be the final response`);
  const reason = optString(v, 'reason', path);
  const reasonProblem = reason === undefined ? undefined : textProblem(reason);
  if (reasonProblem !== undefined) throw invalid(path, `'reason' ${reasonProblem}`);
  const headers = parseHeaderSet(v['headers'], `${path}.headers`);
  const body = optBase64(v, 'body-bin', path) ?? bufferOf(optString(v, 'body', path));
  const bodyPatch = v['body-patch'] === undefined ? undefined : parseBodyPatch(v['body-patch'], path);
  if (action === 'send' && body === undefined && bodyPatch === undefined) {
    throw invalid(path, `does not contain 'body', 'body-bin', or 'body-patch'`);
  }
  const format: HttpResponseFormat = { action, code, headers };
  if (reason !== undefined) format.reason = textToWire(reason);
  if (body !== undefined) format.body = body;
  if (bodyPatch !== undefined) format.bodyPatch = bodyPatch;
  const contentFilters = parseContentFilters(v, path);
  if (contentFilters) format.contentFilters = contentFilters;
  return format;
}

const PATCH_OPS = ['add', 'remove', 'replace', 'move', 'copy', 'test'] as const;
// RFC 6901: empty, or `/`-separated tokens where `~` only starts the escapes `~0` and `~1`.
const JSON_POINTER = /^(?:\/(?:[^~/]|~[01])*)*$/;

/**
 * RFC 6902 4.4: a move's `from` may not be a proper prefix of its `path` (moving a value into its
 * own child would make it contain itself).
 */
export function isMoveIntoItself(from: string, path: string): boolean {
  return path !== from && path.startsWith(`${from}/`);
}

function pointer(op: Json, key: 'path' | 'from', at: string, path: string): string {
  const v = op[key];
  if (typeof v !== 'string' || !JSON_POINTER.test(v)) {
    throw invalid(path, `'${at}.${key}' must be a JSON Pointer ("" or starting with "/"), got ${describeJson(v)}`);
  }
  return v;
}

/**
 * An RFC 6902 patch checked on its face (it is applied later, to each subscriber's own timeout
 * body): every operation is known and has the members it needs. Other members are dropped.
 */
function parseBodyPatch(v: unknown, path: string): JsonPatchOperation[] {
  if (!Array.isArray(v)) throw invalid(path, `'body-patch' must be a JSON Patch list`);
  return v.map((raw: unknown, i): JsonPatchOperation => {
    const at = `body-patch[${i}]`;
    if (!isObject(raw)) throw invalid(path, `'${at}' must be an operation object, got ${describeJson(raw)}`);
    const op = raw['op'];
    // Own list, not the library's table: fast-json-patch also runs '_get' and Object.prototype names.
    if (typeof op !== 'string' || !(PATCH_OPS as readonly string[]).includes(op)) {
      throw invalid(path, `'${at}.op' must be one of ${PATCH_OPS.join(', ')}, got ${describeJson(op)}`);
    }
    const target = pointer(raw, 'path', at, path);
    switch (op as (typeof PATCH_OPS)[number]) {
      case 'remove':
        return { op: 'remove', path: target };
      case 'move':
      case 'copy': {
        const from = pointer(raw, 'from', at, path);
        if (op === 'move' && isMoveIntoItself(from, target)) {
          throw invalid(path, `'${at}' moves ${describeJson(from)} into itself (${describeJson(target)}): RFC 6902 forbids it`);
        }
        return { op: op as 'move' | 'copy', from, path: target };
      }
      default:
        if (raw['value'] === undefined) throw invalid(path, `'${at}.value' is required for ${op}`);
        return { op: op as 'add' | 'replace' | 'test', path: target, value: raw['value'] };
    }
  });
}

function parseHttpStream(v: unknown, path: string): HttpStreamFormat {
  if (!isObject(v)) throw invalid(path, 'must be an object');
  const action = parseAction(v, ['send', 'close', 'hint', 'refresh'] as const, path);
  const content = optBase64(v, 'content-bin', path) ?? bufferOf(optString(v, 'content', path));
  if (action === 'send' && content === undefined) throw invalid(path, `does not contain 'content' or 'content-bin'`);
  const format: HttpStreamFormat = { action, content: content ?? EMPTY };
  const contentFilters = parseContentFilters(v, path);
  if (contentFilters) format.contentFilters = contentFilters;
  return format;
}

const WS_TYPES: readonly WsMessageType[] = ['text', 'binary', 'ping', 'pong'];

function parseWsMessage(v: unknown, path: string): WsMessageFormat {
  if (!isObject(v)) throw invalid(path, 'must be an object');
  const action = parseAction(v, ['send', 'close', 'refresh', 'hint'] as const, path);
  const bin = optBase64(v, 'content-bin', path);
  const text = optString(v, 'content', path);
  const rawType = v['type'];
  let type: WsMessageType;
  if (rawType === undefined || rawType === null) {
    type = bin !== undefined ? 'binary' : 'text';
  } else if (typeof rawType === 'string' && (WS_TYPES as readonly string[]).includes(rawType)) {
    type = rawType as WsMessageType;
  } else {
    throw invalid(path, `'type' must be one of ${WS_TYPES.join(', ')}, got ${describeJson(rawType)}`);
  }
  const content = bin ?? bufferOf(text);
  if (action === 'send' && (type === 'text' || type === 'binary') && content === undefined) {
    throw invalid(path, `does not contain 'content' or 'content-bin'`);
  }
  const format: WsMessageFormat = { action, type, content: content ?? EMPTY };
  if (action === 'close') {
    const code = parseCode(v, path, undefined, 0, 4999); // WebSocket close codes run to 4999
    if (code !== undefined) format.code = code;
    const reason = optString(v, 'reason', path);
    if (reason !== undefined) {
      if (Buffer.byteLength(reason) > 123) throw invalid(path, `'reason' must be at most 123 bytes`);
      format.reason = reason;
    }
  }
  const contentFilters = parseContentFilters(v, path);
  if (contentFilters) format.contentFilters = contentFilters;
  return format;
}

const EMPTY = Buffer.alloc(0);
const bufferOf = (s: string | undefined): Buffer | undefined => (s === undefined ? undefined : Buffer.from(s, 'utf8'));

export interface ParseItemOptions {
  /** Channel taken from elsewhere (a NATS subject); the item's own `channel` must then match or be absent. */
  channel?: string;
  maxChannelBytes?: number;
}

/** Validates one publish item. `path` prefixes error messages, e.g. `items[2]`. */
export function parsePublishItem(v: unknown, path = 'item', options: ParseItemOptions = {}): PublishItem {
  if (!isObject(v)) throw invalid(path, 'publish item must be an object');
  // Checked first: the item is serialised again for the bus, which deeper JSON would overflow.
  if (valueNestingExceeds(v)) throw invalid(path, `JSON is nested more than ${MAX_JSON_DEPTH} levels deep`);
  let channel = optString(v, 'channel', path);
  if (options.channel !== undefined) {
    if (channel !== undefined && channel !== options.channel) {
      throw invalid(path, `'channel' ${describeJson(channel)} does not match the subject's channel`);
    }
    channel = options.channel;
  }
  if (channel === undefined) throw invalid(path, `publish item object does not contain 'channel'`);
  if (channel === '') throw invalid(path, `'channel' must not be empty`);
  if (Buffer.byteLength(channel) > (options.maxChannelBytes ?? 1024)) throw invalid(path, `'channel' is too long`);

  // Legacy style (docs/grip.md, "Publishing"): formats placed directly on the item.
  const formatsObj = v['formats'] === undefined ? v : v['formats'];
  if (!isObject(formatsObj)) throw invalid(path, `'formats' must be an object`);
  const formats: PublishFormats = {};
  if (formatsObj['http-response'] !== undefined) {
    formats['http-response'] = parseHttpResponse(formatsObj['http-response'], `${path}.formats.http-response`);
  }
  if (formatsObj['http-stream'] !== undefined) {
    formats['http-stream'] = parseHttpStream(formatsObj['http-stream'], `${path}.formats.http-stream`);
  }
  if (formatsObj['ws-message'] !== undefined) {
    formats['ws-message'] = parseWsMessage(formatsObj['ws-message'], `${path}.formats.ws-message`);
  }
  if (Object.keys(formats).length === 0) throw invalid(path, 'no formats specified');

  const meta: Record<string, string> = {};
  if (v['meta'] !== undefined && v['meta'] !== null) {
    if (!isObject(v['meta'])) throw invalid(path, `'meta' must be an object of strings`);
    for (const [k, val] of Object.entries(v['meta'])) {
      if (typeof val !== 'string') throw invalid(path, `'meta.${k}' must be a string`);
      meta[k] = val;
    }
  }
  const noSeq = v['no-seq'];
  if (noSeq !== undefined && typeof noSeq !== 'boolean') throw invalid(path, `'no-seq' must be a boolean`);

  const item: PublishItem = { channel, formats, meta, noSeq: noSeq === true };
  const id = optString(v, 'id', path);
  if (id !== undefined) item.id = id;
  const prevId = optString(v, 'prev-id', path);
  if (prevId !== undefined) item.prevId = prevId;
  return item;
}

/** Validates a whole `{"items": [...]}` document; nothing is accepted unless every item is valid. */
export function parsePublishRequest(v: unknown, options: Omit<ParseItemOptions, 'channel'> = {}): PublishItem[] {
  if (!isObject(v)) throw new KgError('KG_ERR_PUBLISH_INVALID', 'Invalid format.');
  // The whole document, as Pushpin bounds it [observed 1.36: 1024 levels published, 1025 refused].
  if (valueNestingExceeds(v)) throw new KgError('KG_ERR_PUBLISH_INVALID', `Invalid format: JSON is nested more than ${MAX_JSON_DEPTH} levels deep`);
  if (!('items' in v)) throw new KgError('KG_ERR_PUBLISH_INVALID', `Invalid format: object does not contain 'items'`);
  const items = v['items'];
  if (!Array.isArray(items)) throw new KgError('KG_ERR_PUBLISH_INVALID', `Invalid format: object contains 'items' with wrong type`);
  try {
    return items.map((item, i) => parsePublishItem(item, `items[${i}]`, options));
  } catch (err) {
    if (err instanceof KgError) throw new KgError('KG_ERR_PUBLISH_INVALID', `Invalid format: ${err.message}`);
    throw err;
  }
}

function encodeBytes(out: Json, textKey: string, binKey: string, bytes: Buffer): void {
  // Text when the bytes are UTF-8 that round-trips, base64 otherwise: lossless either way.
  const text = bytes.toString('utf8');
  if (Buffer.byteLength(text) === bytes.length && Buffer.from(text, 'utf8').equals(bytes)) out[textKey] = text;
  else out[binKey] = bytes.toString('base64');
}

/** The JSON shape of an item (inverse of parsePublishItem), used as the NATS payload. */
export function encodePublishItem(item: PublishItem, includeChannel = true): Json {
  const out: Json = {};
  if (includeChannel) out['channel'] = item.channel;
  if (item.id !== undefined) out['id'] = item.id;
  if (item.prevId !== undefined) out['prev-id'] = item.prevId;
  if (Object.keys(item.meta).length > 0) out['meta'] = item.meta;
  if (item.noSeq) out['no-seq'] = true;
  const formats: Json = {};
  const hr = item.formats['http-response'];
  if (hr) {
    // Reason and header values are wire strings (UTF-8 bytes); JSON carries their text.
    const f: Json = { action: hr.action, code: hr.code, headers: hr.headers.map(([n, v]) => [n, wireToText(v)]) };
    if (hr.reason !== undefined) f['reason'] = wireToText(hr.reason);
    if (hr.body !== undefined) encodeBytes(f, 'body', 'body-bin', hr.body);
    if (hr.bodyPatch !== undefined) f['body-patch'] = hr.bodyPatch;
    if (hr.contentFilters) f['content-filters'] = hr.contentFilters;
    formats['http-response'] = f;
  }
  const hs = item.formats['http-stream'];
  if (hs) {
    const f: Json = { action: hs.action };
    encodeBytes(f, 'content', 'content-bin', hs.content);
    if (hs.contentFilters) f['content-filters'] = hs.contentFilters;
    formats['http-stream'] = f;
  }
  const wm = item.formats['ws-message'];
  if (wm) {
    const f: Json = { action: wm.action, type: wm.type };
    if (wm.type === 'binary') f['content-bin'] = wm.content.toString('base64');
    else encodeBytes(f, 'content', 'content-bin', wm.content);
    if (wm.code !== undefined) f['code'] = wm.code;
    if (wm.reason !== undefined) f['reason'] = wm.reason;
    if (wm.contentFilters) f['content-filters'] = wm.contentFilters;
    formats['ws-message'] = f;
  }
  out['formats'] = formats;
  return out;
}

/** Standard reason phrase, or Pushpin's fallback for codes without one. */
export function reasonPhrase(code: number): string {
  return STATUS_CODES[code] ?? 'Undefined Reason';
}
