import { STATUS_CODES } from 'node:http';
import { KgError } from '../errors.js';
import { isHttpToken, textProblem, textToWire, wireToText } from './http-text.js';
import { MAX_JSON_DEPTH, describeJson, valueNestingExceeds } from './json-input.js';
import type {
  HeaderList, HttpResponseFormat, JsonPatchOperation, HttpStreamFormat, PublishFormats, PublishItem, WsMessageFormat, WsMessageType,
} from './types.js';

// Publish items (docs/grip.md, "Publishing"): the JSON shape accepted by POST /publish/ and carried on NATS.
// Parsing is all-or-nothing. An error is the item's location (`items[1]`) then Pushpin 1.36's own
// reason, word for word, checked in Pushpin's order, so a publisher sees what Pushpin says
// (docs/errors.md lists them). Checks Pushpin does not make (an empty channel, base64, header
// tokens, status ranges, body-patch operations) use the same wording with the detail in
// parentheses. As in Pushpin, a format's fields are read only for the actions that use them.

type Json = Record<string, unknown>;

const invalid = (path: string, problem: string): KgError =>
  new KgError('KG_ERR_PUBLISH_INVALID', `${path}: ${problem}`);

/** The names Pushpin gives the parts of an item in its messages. */
const ITEM = 'publish item object';
type FormatName = "'http-response'" | "'http-stream'" | "'ws-message'";

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Pushpin's "<parent> contains '<key>' with wrong type". */
const wrongType = (parent: string, key: string): string => `${parent} contains '${key}' with wrong type`;
/** Pushpin's "<parent> contains '<key>' with invalid value", with kong-grip's detail when Pushpin has none. */
const invalidValue = (parent: string, key: string, detail?: string): string =>
  `${parent} contains '${key}' with invalid value${detail === undefined ? '' : ` (${detail})`}`;

/** An optional string: absent or null is undefined (as Pushpin reads a JSON null). */
function optString(obj: Json, key: string, parent: string, path: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(path, wrongType(parent, key));
  return v;
}

function optBase64(obj: Json, key: string, parent: string, path: string): Buffer | undefined {
  const v = optString(obj, key, parent, path);
  if (v === undefined) return undefined;
  // Buffer.from silently skips junk (so does Pushpin); insist on canonical base64 so a typo is
  // not half-delivered.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw invalid(path, invalidValue(parent, key, 'not valid base64'));
  return Buffer.from(v, 'base64');
}

function parseAction<A extends string>(obj: Json, allowed: readonly A[], parent: FormatName, path: string): A {
  const v = obj['action'];
  if (v === undefined || v === null) return 'send' as A;
  if (typeof v !== 'string') throw invalid(path, wrongType(parent, 'action'));
  // Pushpin 1.36 refuses an unknown action with an empty message; ours names what is allowed.
  if (!(allowed as readonly string[]).includes(v)) {
    throw invalid(path, `${parent} contains 'action' with unknown value (one of ${allowed.join(', ')}, got ${describeJson(v)})`);
  }
  return v as A;
}

function parseContentFilters(obj: Json, parent: FormatName, path: string): string[] | undefined {
  const v = obj['content-filters'];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(path, wrongType(parent, 'content-filters'));
  if (!v.every((f) => typeof f === 'string')) throw invalid(path, 'content-filters contains element with wrong type');
  return v as string[];
}

function parseCode(obj: Json, parent: FormatName, path: string, fallback: number | undefined, min: number, max: number): number | undefined {
  const raw = obj['code'];
  if (raw === undefined || raw === null) return fallback;
  // @fanoutio/grip types the code as a string ("202"); accept digit strings as Pushpin does.
  const v = typeof raw === 'string' && /^-?\d{1,6}$/.test(raw) ? Number(raw) : raw;
  if (typeof v !== 'number') throw invalid(path, wrongType(parent, 'code'));
  if (!Number.isInteger(v)) throw invalid(path, invalidValue(parent, 'code', `not an integer: ${describeJson(raw)}`));
  // Pushpin's own bounds (0-999 for HTTP, >= 0 for WebSocket) get its text unchanged.
  if (v < 0 || (parent === "'http-response'" && v > 999)) throw invalid(path, invalidValue(parent, 'code'));
  if (v < min || v > max) throw invalid(path, invalidValue(parent, 'code', `must be ${min}-${max}, got ${v}`));
  return v;
}

/** `{name: value}` or `[[name, value], ...]`, as Pushpin accepts. */
export function parseHeaderSet(v: unknown, path: string): HeaderList {
  if (v === undefined || v === null) return [];
  const out: HeaderList = [];
  const check = (name: string, value: string): void => {
    if (!isHttpToken(name)) throw invalid(path, `headers contains '${name}' with invalid value (not an HTTP token)`);
    // Sent as its UTF-8 bytes, as Pushpin does; a control char Node cannot write would fail for
    // every subscriber (see http-text.ts).
    const problem = textProblem(value);
    if (problem !== undefined) throw invalid(path, `headers contains '${name}' with invalid value (its value ${problem})`);
    out.push([name, textToWire(value)]);
  };
  if (Array.isArray(v)) {
    for (const pair of v) {
      if (!Array.isArray(pair)) throw invalid(path, 'headers contains element with wrong type');
      if (pair.length !== 2) throw invalid(path, 'headers contains list with wrong number of elements');
      if (typeof pair[0] !== 'string') throw invalid(path, 'header contains name element with wrong type');
      if (typeof pair[1] !== 'string') throw invalid(path, 'header contains value element with wrong type');
      check(pair[0], pair[1]);
    }
  } else if (isObject(v)) {
    for (const [name, value] of Object.entries(v)) {
      if (typeof value !== 'string') throw invalid(path, `headers contains '${name}' with wrong type`);
      check(name, value);
    }
  } else {
    throw invalid(path, wrongType("'http-response'", 'headers'));
  }
  return out;
}

const HTTP_RESPONSE: FormatName = "'http-response'";
const HTTP_STREAM: FormatName = "'http-stream'";
const WS_MESSAGE: FormatName = "'ws-message'";

function parseHttpResponse(v: unknown, path: string): HttpResponseFormat {
  if (!isObject(v)) throw invalid(path, `${HTTP_RESPONSE} is not an object`);
  const action = parseAction(v, ['send', 'hint', 'refresh', 'close'] as const, HTTP_RESPONSE, path);
  if (action !== 'send') return { action, code: 200, headers: [] }; // Pushpin reads nothing more
  // HTTP cannot carry status codes below 100, and a client takes a 1xx as informational and
  // keeps waiting for the real response: both refused here rather than at send time.
  const code = parseCode(v, HTTP_RESPONSE, path, 200, 200, 999) ?? 200;
  const reason = optString(v, 'reason', HTTP_RESPONSE, path);
  const reasonProblem = reason === undefined ? undefined : textProblem(reason);
  if (reasonProblem !== undefined) throw invalid(path, invalidValue(HTTP_RESPONSE, 'reason', reasonProblem));
  const headers = parseHeaderSet(v['headers'], path);
  const contentFilters = parseContentFilters(v, HTTP_RESPONSE, path);
  const body = optBase64(v, 'body-bin', HTTP_RESPONSE, path) ?? bufferOf(optString(v, 'body', HTTP_RESPONSE, path));
  const bodyPatch = v['body-patch'] === undefined || v['body-patch'] === null ? undefined : parseBodyPatch(v['body-patch'], path);
  if (body === undefined && bodyPatch === undefined) {
    throw invalid(path, `${HTTP_RESPONSE} does not contain 'body', 'body-bin', or 'body-patch'`);
  }
  const format: HttpResponseFormat = { action, code, headers };
  if (reason !== undefined) format.reason = textToWire(reason);
  if (body !== undefined) format.body = body;
  if (bodyPatch !== undefined) format.bodyPatch = bodyPatch;
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

/** A body-patch problem Pushpin only finds when it applies the patch. */
const patchInvalid = (path: string, detail: string): KgError => invalid(path, invalidValue(HTTP_RESPONSE, 'body-patch', detail));

function pointer(op: Json, key: 'path' | 'from', at: string, path: string): string {
  const v = op[key];
  if (typeof v !== 'string' || !JSON_POINTER.test(v)) {
    throw patchInvalid(path, `${at}.${key} must be a JSON Pointer ("" or starting with "/"), got ${describeJson(v)}`);
  }
  return v;
}

/**
 * An RFC 6902 patch checked on its face (it is applied later, to each subscriber's own timeout
 * body): every operation is known and has the members it needs. Other members are dropped.
 */
function parseBodyPatch(v: unknown, path: string): JsonPatchOperation[] {
  if (!Array.isArray(v)) throw invalid(path, wrongType(HTTP_RESPONSE, 'body-patch'));
  return v.map((raw: unknown, i): JsonPatchOperation => {
    const at = `body-patch[${i}]`;
    if (!isObject(raw)) throw patchInvalid(path, `${at} must be an operation object, got ${describeJson(raw)}`);
    const op = raw['op'];
    // Own list, not the library's table: fast-json-patch also runs '_get' and Object.prototype names.
    if (typeof op !== 'string' || !(PATCH_OPS as readonly string[]).includes(op)) {
      throw patchInvalid(path, `${at}.op must be one of ${PATCH_OPS.join(', ')}, got ${describeJson(op)}`);
    }
    const target = pointer(raw, 'path', at, path);
    switch (op as (typeof PATCH_OPS)[number]) {
      case 'remove':
        return { op: 'remove', path: target };
      case 'move':
      case 'copy': {
        const from = pointer(raw, 'from', at, path);
        if (op === 'move' && isMoveIntoItself(from, target)) {
          throw patchInvalid(path, `${at} moves ${describeJson(from)} into itself (${describeJson(target)}): RFC 6902 forbids it`);
        }
        return { op: op as 'move' | 'copy', from, path: target };
      }
      default:
        if (raw['value'] === undefined) throw patchInvalid(path, `${at}.value is required for ${op}`);
        return { op: op as 'add' | 'replace' | 'test', path: target, value: raw['value'] };
    }
  });
}

function parseHttpStream(v: unknown, path: string): HttpStreamFormat {
  if (!isObject(v)) throw invalid(path, `${HTTP_STREAM} is not an object`);
  const action = parseAction(v, ['send', 'close', 'hint', 'refresh'] as const, HTTP_STREAM, path);
  if (action !== 'send') return { action, content: EMPTY }; // Pushpin reads nothing more
  const contentFilters = parseContentFilters(v, HTTP_STREAM, path);
  const content = optBase64(v, 'content-bin', HTTP_STREAM, path) ?? bufferOf(optString(v, 'content', HTTP_STREAM, path));
  if (content === undefined) throw invalid(path, `${HTTP_STREAM} does not contain 'content' or 'content-bin'`);
  const format: HttpStreamFormat = { action, content };
  if (contentFilters) format.contentFilters = contentFilters;
  return format;
}

const WS_TYPES: readonly WsMessageType[] = ['text', 'binary', 'ping', 'pong'];

function parseWsMessage(v: unknown, path: string): WsMessageFormat {
  if (!isObject(v)) throw invalid(path, `${WS_MESSAGE} is not an object`);
  const action = parseAction(v, ['send', 'close', 'refresh', 'hint'] as const, WS_MESSAGE, path);
  if (action === 'close') {
    const format: WsMessageFormat = { action, type: 'text', content: EMPTY };
    const code = parseCode(v, WS_MESSAGE, path, undefined, 0, 4999); // WebSocket close codes run to 4999
    if (code !== undefined) format.code = code;
    const reason = optString(v, 'reason', WS_MESSAGE, path);
    if (reason !== undefined) {
      // A close frame has room for 123 bytes of reason (RFC 6455 5.5).
      if (Buffer.byteLength(reason) > 123) throw invalid(path, invalidValue(WS_MESSAGE, 'reason', 'more than 123 bytes'));
      format.reason = reason;
    }
    return format;
  }
  if (action !== 'send') return { action, type: 'text', content: EMPTY }; // Pushpin reads nothing more
  const rawType = optString(v, 'type', WS_MESSAGE, path);
  if (rawType !== undefined && !(WS_TYPES as readonly string[]).includes(rawType)) {
    throw invalid(path, `${WS_MESSAGE} contains 'type' with unknown value`);
  }
  const contentFilters = parseContentFilters(v, WS_MESSAGE, path);
  const bin = optBase64(v, 'content-bin', WS_MESSAGE, path);
  const content = bin ?? bufferOf(optString(v, 'content', WS_MESSAGE, path));
  const type = (rawType as WsMessageType | undefined) ?? (bin !== undefined ? 'binary' : 'text');
  if ((type === 'text' || type === 'binary') && content === undefined) {
    throw invalid(path, `${WS_MESSAGE} does not contain 'content' or 'content-bin'`);
  }
  const format: WsMessageFormat = { action, type, content: content ?? EMPTY };
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
  if (!isObject(v)) throw invalid(path, `${ITEM} is not an object`);
  // Checked first: the item is serialised again for the bus, which deeper JSON would overflow.
  if (valueNestingExceeds(v)) throw invalid(path, `JSON is nested more than ${MAX_JSON_DEPTH} levels deep`);
  let channel: string | undefined;
  if (options.channel !== undefined) {
    const own = v['channel'];
    if (own !== undefined && own !== null && own !== options.channel) {
      throw invalid(path, invalidValue(ITEM, 'channel', `${describeJson(own)} is not the subject's channel`));
    }
    channel = options.channel;
  } else {
    // A null channel is present but not a string: Pushpin says wrong type.
    if (!('channel' in v)) throw invalid(path, `${ITEM} does not contain 'channel'`);
    const own = v['channel'];
    if (typeof own !== 'string') throw invalid(path, wrongType(ITEM, 'channel'));
    channel = own;
  }
  // Pushpin publishes to the empty channel; a NATS subject cannot carry one.
  if (channel === '') throw invalid(path, invalidValue(ITEM, 'channel', 'empty'));
  const maxChannelBytes = options.maxChannelBytes ?? 1024;
  if (Buffer.byteLength(channel) > maxChannelBytes) throw invalid(path, invalidValue(ITEM, 'channel', `longer than ${maxChannelBytes} bytes`));
  const id = optString(v, 'id', ITEM, path);
  const prevId = optString(v, 'prev-id', ITEM, path);

  // Legacy style (docs/grip.md, "Publishing"): formats placed directly on the item.
  const formatsObj = v['formats'] === undefined || v['formats'] === null ? v : v['formats'];
  if (!isObject(formatsObj)) throw invalid(path, wrongType(ITEM, 'formats'));
  const formats: PublishFormats = {};
  if (formatsObj['http-response'] !== undefined) {
    formats['http-response'] = parseHttpResponse(formatsObj['http-response'], path);
  }
  if (formatsObj['http-stream'] !== undefined) {
    formats['http-stream'] = parseHttpStream(formatsObj['http-stream'], path);
  }
  if (formatsObj['ws-message'] !== undefined) {
    formats['ws-message'] = parseWsMessage(formatsObj['ws-message'], path);
  }
  if (Object.keys(formats).length === 0) throw invalid(path, 'no formats specified');

  const meta: Record<string, string> = {};
  if (v['meta'] !== undefined && v['meta'] !== null) {
    if (!isObject(v['meta'])) throw invalid(path, wrongType(ITEM, 'meta'));
    for (const [k, val] of Object.entries(v['meta'])) {
      if (typeof val !== 'string') throw invalid(path, `'meta' contains '${k}' with wrong type`);
      meta[k] = val;
    }
  }
  // Pushpin reads `size` (and does nothing with it); its checks are kept so the same items pass.
  const size = v['size'];
  if (size !== undefined && size !== null) {
    if (typeof size !== 'number' && typeof size !== 'string') throw invalid(path, wrongType(ITEM, 'size'));
    if (Number(size) < 0) throw invalid(path, invalidValue(ITEM, 'size'));
  }
  const noSeq = v['no-seq'];
  if (noSeq !== undefined && typeof noSeq !== 'boolean') throw invalid(path, wrongType(ITEM, 'no-seq'));

  const item: PublishItem = { channel, formats, meta, noSeq: noSeq === true };
  if (id !== undefined) item.id = id;
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
