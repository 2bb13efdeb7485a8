import { KgError } from '../errors.js';
import {
  HeaderSyntaxError, decodeHeaderText, findAllParams, findParam, headerBytes, parseHeaderList, parseParams,
  splitHeaderList, unwrapLinkTarget,
  type HeaderElement, type HeaderParam, type ListOptions,
} from './header-params.js';
import { headerTextProblem, isHttpToken, textProblem, textToWire } from './http-text.js';
import { MAX_JSON_DEPTH, describeJson, textNestingExceeds } from './json-input.js';
import { reasonPhrase } from './publish-item.js';
import { MAX_TIMER_SEC, type ChannelSub, type HeaderList, type Hold, type HoldMode, type Instruct, type KeepAlive, type Link } from './types.js';

// The origin's GRIP instructions (docs/grip.md, "Instructions in the origin's response") turned into one Instruct value. Grip-* headers
// are read first; a JSON instruct body (application/grip-instruct) then overrides or adds, and
// alone decides the client response. Every problem is a KG_ERR_INSTRUCT_INVALID naming the
// header or JSON field and what was expected. Pure: no I/O, no config; the caller applies
// configured limits (channels per connection) to the result.

export const InstructDefaults = {
  responseTimeoutSec: 55,
  /** Smaller response-hold timeouts, 0 included, are raised to this [observed 1.36]. */
  minResponseTimeoutSec: 5,
  keepAliveTimeoutSec: 55,
  minKeepAliveTimeoutSec: 1,
  nextLinkTimeoutSec: 120,
  maxFiltersPerChannel: 5,
} as const;

export const GRIP_INSTRUCT_CONTENT_TYPE = 'application/grip-instruct';

/** What parseInstruct needs of the origin response. */
export interface OriginResponse {
  code: number;
  reason: string;
  headers: HeaderList;
  /** Required for a JSON instruct; for header instructs it becomes Instruct.body as given. */
  body?: Buffer;
}

export interface InstructContext {
  /** Absolute URL of the client request; relative Grip-Link targets resolve against it. */
  requestUrl: string;
}

// Removed from every client response the GRIP engine builds (docs/grip.md, "Instructions in the origin's response"); the sender recomputes
// framing, so Content-Length goes too.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'content-encoding', 'transfer-encoding', 'content-length']);

// Qt's toInt range, which Pushpin's header integers go through.
const MAX_INT = 2147483647;

const invalid = (message: string): KgError => new KgError('KG_ERR_INSTRUCT_INVALID', message);

// Hold, keep-alive and next-link timeouts above 24 h are lowered to 24 h (MAX_TIMER_SEC), not
// refused: Pushpin accepts any integer here, and an origin asking for "very long" gets that
// instead of a 502; only Node's timer cannot take more.
const capTimer = (sec: number): number => Math.min(sec, MAX_TIMER_SEC);
const show = describeJson;

const isGripHeader = (name: string): boolean => name.length >= 5 && name.slice(0, 5).toLowerCase() === 'grip-';

function headerValues(headers: HeaderList, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  // Lengths first: most names differ in length, and toLowerCase allocates (this runs per request).
  for (const [n, v] of headers) if (n.length === lower.length && n.toLowerCase() === lower) out.push(v);
  return out;
}

/** Media type of the first Content-Type header, lower-cased, parameters dropped. */
function mediaType(headers: HeaderList): string | undefined {
  const value = headerValues(headers, 'content-type')[0];
  if (value === undefined) return undefined;
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}

/** Spec 3.1: any Grip-* response header, or a JSON instruct body, makes a response GRIP. */
export function isGripResponse(headers: HeaderList): boolean {
  return headers.some(([name]) => isGripHeader(name)) || mediaType(headers) === GRIP_INSTRUCT_CONTENT_TYPE;
}

/** True when the instructions are in the body, which must then be read whole before parsing. */
export function needsBufferedBody(headers: HeaderList): boolean {
  return mediaType(headers) === GRIP_INSTRUCT_CONTENT_TYPE;
}

/**
 * A header that carries one value. Repeats with the same value are harmless; different values
 * are refused rather than silently picking one.
 */
function singleHeader(headers: HeaderList, name: string): string | undefined {
  const values = headerValues(headers, name).map((v) => v.trim());
  const first = values[0];
  if (values.some((v) => v !== first)) {
    throw invalid(`${name} must appear once, got ${values.length} different values: ${values.map(show).join(', ')}`);
  }
  return first;
}

/** Header syntax errors get the header's name in front. */
function withHeader<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof HeaderSyntaxError) throw new KgError('KG_ERR_INSTRUCT_INVALID', `${name} ${err.message}`, { cause: err });
    throw err;
  }
}

function listOf(headers: HeaderList, name: string, options: ListOptions = {}): HeaderElement[] {
  return withHeader(name, () => parseHeaderList(headerValues(headers, name), options));
}

/** `what` must be a non-negative integer (a header or parameter value). */
function parseNonNegativeInt(text: string | undefined, what: string): number {
  const t = text?.trim();
  if (t === undefined || !/^\d+$/.test(t) || Number(t) > MAX_INT) {
    throw invalid(`${what} must be a non-negative integer, got ${show(text)}`);
  }
  return Number(t);
}

/** A parameter that may appear at most once; its value, or undefined when absent. */
function singleParam(params: readonly HeaderParam[], name: string, what: string): HeaderParam | undefined {
  const found = findAllParams(params, name);
  if (found.length > 1) throw invalid(`${what} gives '${name}' ${found.length} times, expected at most once`);
  return found[0];
}

// ---- Grip-Hold -------------------------------------------------------------------------------

function parseHoldMode(value: string, what: string): HoldMode {
  // Compared exactly, as Pushpin does.
  if (value === 'response' || value === 'stream') return value;
  throw invalid(`${what} must be "response" or "stream", got ${show(value)}`);
}

// ---- Grip-Channel ----------------------------------------------------------------------------

function checkFilterCount(channel: ChannelSub, what: string): void {
  if (channel.filters.length > InstructDefaults.maxFiltersPerChannel) {
    throw invalid(`${what} gives channel ${show(channel.name)} ${channel.filters.length} filters, at most ${InstructDefaults.maxFiltersPerChannel} are allowed`);
  }
}

function parseChannelHeaders(headers: HeaderList): ChannelSub[] {
  const channels: ChannelSub[] = [];
  for (const element of listOf(headers, 'Grip-Channel')) {
    if (element.first === '') {
      throw invalid('Grip-Channel must not contain an empty element (a channel name was expected)');
    }
    const name = decodeHeaderText(element.first);
    const channel: ChannelSub = { name, filters: [] };
    const prevId = singleParam(element.params, 'prev-id', `Grip-Channel ${show(name)}`);
    if (prevId !== undefined) {
      if (prevId.value === undefined || prevId.value === '') {
        throw invalid(`Grip-Channel ${show(name)} prev-id must be a non-empty value`);
      }
      channel.prevId = decodeHeaderText(prevId.value);
    }
    for (const filter of findAllParams(element.params, 'filter')) {
      if (filter.value === undefined || filter.value === '') {
        throw invalid(`Grip-Channel ${show(name)} filter must be a non-empty filter name`);
      }
      channel.filters.push(decodeHeaderText(filter.value));
    }
    checkFilterCount(channel, 'Grip-Channel');
    channels.push(channel);
  }
  return channels;
}

// ---- Grip-Keep-Alive -------------------------------------------------------------------------

const hexValue = (c: string | undefined): number => (c !== undefined && /^[0-9a-fA-F]$/.test(c) ? parseInt(c, 16) : -1);

/** Decodes `\\`, `\r`, `\n`, `\xHH`; any other escaped character is dropped, as Pushpin does. */
function unescapeCstring(text: string): Buffer {
  const bytes = headerBytes(text);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b !== 0x5c) {
      out.push(b);
      continue;
    }
    i++;
    if (i >= bytes.length) throw invalid('Grip-Keep-Alive cstring data ends with a lone backslash');
    const e = String.fromCharCode(bytes[i] as number);
    if (e === '\\') out.push(0x5c);
    else if (e === 'r') out.push(0x0d);
    else if (e === 'n') out.push(0x0a);
    else if (e === 'x') {
      const hi = hexValue(bytes[i + 1] === undefined ? undefined : String.fromCharCode(bytes[i + 1] as number));
      const lo = hexValue(bytes[i + 2] === undefined ? undefined : String.fromCharCode(bytes[i + 2] as number));
      if (hi === -1 || lo === -1) throw invalid('Grip-Keep-Alive cstring data has \\x without two hex digits');
      out.push(hi * 16 + lo);
      i += 2;
    }
  }
  return Buffer.from(out);
}

function isBase64(text: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(text) && text.length % 4 === 0;
}

function parseKeepAliveHeader(headers: HeaderList): KeepAlive | undefined {
  const value = singleHeader(headers, 'Grip-Keep-Alive');
  if (value === undefined) return undefined;
  // Not a list: the data may contain commas. Data runs to the first ';' (docs/grip.md, "Instructions in the origin's response").
  const semi = value.indexOf(';');
  const data = (semi === -1 ? value : value.slice(0, semi)).trim();
  const params = withHeader('Grip-Keep-Alive', () => parseParams(semi === -1 ? '' : value.slice(semi + 1)));
  if (data === '') throw invalid('Grip-Keep-Alive data must not be empty');

  // An empty mode/format means the default, as in Pushpin.
  const mode = singleParam(params, 'mode', 'Grip-Keep-Alive')?.value ?? '';
  if (mode !== '' && mode !== 'idle' && mode !== 'interval') {
    throw invalid(`Grip-Keep-Alive mode must be idle or interval, got ${show(mode)}`);
  }
  const timeoutParam = singleParam(params, 'timeout', 'Grip-Keep-Alive');
  const timeoutSec = timeoutParam === undefined
    ? InstructDefaults.keepAliveTimeoutSec
    : parseNonNegativeInt(timeoutParam.value, 'Grip-Keep-Alive timeout');

  const format = singleParam(params, 'format', 'Grip-Keep-Alive')?.value ?? '';
  let content: Buffer;
  switch (format) {
    case '':
    case 'raw':
      content = headerBytes(data);
      break;
    case 'cstring':
      content = unescapeCstring(data);
      break;
    case 'base64':
      if (!isBase64(data)) throw invalid(`Grip-Keep-Alive data must be base64 (format=base64), got ${show(data)}`);
      content = Buffer.from(data, 'base64');
      break;
    default:
      throw invalid(`Grip-Keep-Alive format must be raw, cstring or base64, got ${show(format)}`);
  }
  if (content.length === 0) throw invalid('Grip-Keep-Alive data must not be empty once decoded');
  return {
    content,
    mode: mode === 'interval' ? 'interval' : 'idle',
    timeoutSec: capTimer(Math.max(timeoutSec, InstructDefaults.minKeepAliveTimeoutSec)),
  };
}

// ---- Grip-Set-Meta ---------------------------------------------------------------------------

function parseSetMetaHeaders(headers: HeaderList, meta: Record<string, string>): void {
  const values = headerValues(headers, 'Grip-Set-Meta');
  const elements = withHeader('Grip-Set-Meta', () => values.flatMap((v) => splitHeaderList(v)));
  for (const element of elements) {
    if (element === '') throw invalid('Grip-Set-Meta must not contain an empty element (key=value was expected)');
    const params = withHeader('Grip-Set-Meta', () => parseParams(element));
    const pair = params[0];
    if (params.length !== 1 || pair === undefined || pair.value === undefined) {
      throw invalid(`Grip-Set-Meta elements must each be one key=value, got ${show(element)}`);
    }
    meta[decodeHeaderText(pair.name)] = decodeHeaderText(pair.value);
  }
}

// ---- Grip-Status -----------------------------------------------------------------------------

function parseStatusHeader(value: string): { code: number; reason: string } {
  const space = value.indexOf(' ');
  const codeText = space === -1 ? value : value.slice(0, space);
  const reason = space === -1 ? '' : value.slice(space + 1);
  if (!/^\d{1,3}$/.test(codeText)) {
    throw invalid(`Grip-Status must be "CODE[ REASON]" with CODE an integer 0-999, got ${show(value)}`);
  }
  const code = Number(codeText);
  checkFinalCode(code, `Grip-Status ${code}`);
  checkHeaderText(reason, 'Grip-Status reason');
  return { code, reason };
}

/**
 * The status of the response the client gets. A 1xx there is taken as informational and the
 * client waits for a final response that never comes; below 100 is not HTTP at all. Pushpin's
 * parser takes 0-999 (docs/grip.md, "Instructions in the origin's response"), but Node cannot end a response with either.
 */
function checkFinalCode(code: number, what: string): void {
  if (code < 200) {
    throw invalid(`${what} cannot be the final response to the client (1xx are informational, below 100 is not HTTP; must be 200-999)`);
  }
}

// ---- Grip-Link -------------------------------------------------------------------------------

function resolveLink(target: string, requestUrl: string): string {
  let url: URL;
  try {
    url = new URL(decodeHeaderText(target), requestUrl);
  } catch {
    throw invalid(`Grip-Link target is not a valid URL, got ${show(target)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(`Grip-Link target must be an http or https URL, got ${show(url.href)}`);
  }
  return url.href;
}

function parseLinkHeaders(headers: HeaderList, requestUrl: string): { next?: Link; gone?: Pick<Link, 'url'> } {
  const out: { next?: Link; gone?: Pick<Link, 'url'> } = {};
  for (const element of listOf(headers, 'Grip-Link', { angleBrackets: true })) {
    // Pushpin skips entries that carry no parameter at all (there is no rel to act on).
    if (element.params.length === 0) continue;
    const target = withHeader('Grip-Link', () => unwrapLinkTarget(element.first));
    const rel = singleParam(element.params, 'rel', 'Grip-Link')?.value?.toLowerCase();
    if (rel === 'next') {
      if (out.next !== undefined) throw invalid('Grip-Link must give at most one rel=next link');
      const timeout = singleParam(element.params, 'timeout', 'Grip-Link');
      out.next = {
        url: resolveLink(target, requestUrl),
        timeoutSec: timeout === undefined
          ? InstructDefaults.nextLinkTimeoutSec
          : capTimer(parseNonNegativeInt(timeout.value, 'Grip-Link timeout')),
      };
    } else if (rel === 'gone') {
      if (out.gone !== undefined) throw invalid('Grip-Link must give at most one rel=gone link');
      out.gone = { url: resolveLink(target, requestUrl) };
    }
    // Any other rel is not ours to act on: ignored, as Pushpin does.
  }
  return out;
}

/**
 * The rel=gone link of a WebSocket-over-HTTP OPEN reply (kong-grip's extension: Pushpin reads
 * Grip-Link on HTTP holds only), resolved against the request URL; undefined when there is none.
 * Throws KG_ERR_INSTRUCT_INVALID for a Grip-Link that is malformed.
 */
export function parseGoneLink(headers: HeaderList, requestUrl: string): string | undefined {
  return parseLinkHeaders(headers, requestUrl).gone?.url;
}

// ---- Client headers --------------------------------------------------------------------------

/** What reaches writeHead must be writable by Node (see http-text.ts); `what` names the source. */
function checkHeaderText(text: string, what: string): void {
  const problem = headerTextProblem(text);
  if (problem !== undefined) throw invalid(`${what} ${problem}`);
}

/** Origin headers relayed to the client (header instructs); Node's parser rarely lets bad ones in. */
function checkOriginHeaders(headers: HeaderList): void {
  for (const [name, value] of headers) {
    if (!isHttpToken(name)) throw invalid(`origin header name must be an HTTP token, got ${show(name)}`);
    checkHeaderText(value, `origin header ${name} value`);
  }
}

function exposedHeaderNames(headers: HeaderList): Set<string> | undefined {
  const names = new Set<string>();
  for (const value of headerValues(headers, 'Grip-Expose-Headers')) {
    for (const name of withHeader('Grip-Expose-Headers', () => splitHeaderList(value))) {
      if (name !== '') names.add(name.toLowerCase());
    }
  }
  return names.size === 0 ? undefined : names;
}

/** Drops Grip-* and framing headers, and, given a whitelist, everything not on it. */
function clientHeaders(headers: HeaderList, exposed?: Set<string>): HeaderList {
  return headers.filter(([name]) => {
    const lower = name.toLowerCase();
    if (isGripHeader(lower) || HOP_BY_HOP.has(lower)) return false;
    return exposed === undefined || exposed.has(lower);
  });
}

// ---- JSON instruct (docs/grip.md, "Instructions in the origin's response") ------------------

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const jsonInvalid = (path: string, problem: string): KgError => invalid(`JSON instruct ${path} ${problem}`);
/** Field path for messages; top-level fields have no prefix. */
const at = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

/** Optional field: undefined when absent or null. */
function field(obj: Json, key: string): unknown {
  const v = obj[key];
  return v === null ? undefined : v;
}

function optString(obj: Json, key: string, path: string): string | undefined {
  const v = field(obj, key);
  if (v !== undefined && typeof v !== 'string') throw jsonInvalid(at(path, key), `must be a string, got ${show(v)}`);
  return v;
}

function optBase64(obj: Json, key: string, path: string): Buffer | undefined {
  const v = optString(obj, key, path);
  if (v === undefined) return undefined;
  if (!isBase64(v)) throw jsonInvalid(at(path, key), `must be base64, got ${show(v)}`);
  return Buffer.from(v, 'base64');
}

function optNonNegativeInt(obj: Json, key: string, path: string): number | undefined {
  const v = field(obj, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_INT) {
    throw jsonInvalid(at(path, key), `must be a non-negative integer, got ${show(v)}`);
  }
  return v;
}

function optObject(obj: Json, key: string, path: string): Json | undefined {
  const v = field(obj, key);
  if (v !== undefined && !isObject(v)) throw jsonInvalid(at(path, key), `must be an object, got ${show(v)}`);
  return v;
}

function parseJsonChannel(v: unknown, path: string): ChannelSub {
  if (!isObject(v)) throw jsonInvalid(path, `must be an object with a name, got ${show(v)}`);
  const name = optString(v, 'name', path);
  if (name === undefined || name === '') throw jsonInvalid(`${path}.name`, `must be a non-empty string, got ${show(v['name'])}`);
  const channel: ChannelSub = { name, filters: [] };
  const prevId = optString(v, 'prev-id', path);
  if (prevId !== undefined) {
    if (prevId === '') throw jsonInvalid(`${path}.prev-id`, 'must not be empty');
    channel.prevId = prevId;
  }
  const filters = field(v, 'filters');
  if (filters !== undefined) {
    if (!Array.isArray(filters) || !filters.every((f) => typeof f === 'string' && f !== '')) {
      throw jsonInvalid(`${path}.filters`, `must be a list of non-empty strings, got ${show(filters)}`);
    }
    channel.filters = filters as string[];
  }
  checkFilterCount(channel, 'JSON instruct');
  return channel;
}

function parseJsonKeepAlive(v: Json): KeepAlive {
  const path = 'hold.keep-alive';
  const content = optBase64(v, 'content-bin', path) ?? stringBytes(optString(v, 'content', path));
  if (content === undefined) throw jsonInvalid(path, `must give 'content' or 'content-bin'`);
  if (content.length === 0) throw jsonInvalid(path, 'content must not be empty');
  const timeoutSec = optNonNegativeInt(v, 'timeout', path) ?? InstructDefaults.keepAliveTimeoutSec;
  // No format or mode in JSON; Pushpin 1.36 did not reset this timer on writes [observed 1.36].
  return { content, mode: 'interval', timeoutSec: capTimer(Math.max(timeoutSec, InstructDefaults.minKeepAliveTimeoutSec)) };
}

const stringBytes = (s: string | undefined): Buffer | undefined => (s === undefined ? undefined : Buffer.from(s, 'utf8'));

function parseJsonHeaders(v: unknown, path: string): HeaderList {
  const out: HeaderList = [];
  const add = (name: unknown, value: unknown, at: string): void => {
    if (typeof name !== 'string' || !isHttpToken(name)) {
      throw jsonInvalid(at, `header name must be an HTTP token, got ${show(name)}`);
    }
    if (typeof value !== 'string') throw jsonInvalid(at, `header ${name} must have a string value, got ${show(value)}`);
    // Text from JSON goes out as its UTF-8 bytes (textToWire); only control chars are refused.
    const problem = textProblem(value);
    if (problem !== undefined) throw jsonInvalid(at, `header ${name} value ${problem}`);
    out.push([name, textToWire(value)]);
  };
  if (Array.isArray(v)) {
    v.forEach((pair: unknown, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw jsonInvalid(`${path}[${i}]`, `must be a [name, value] pair, got ${show(pair)}`);
      }
      add(pair[0], pair[1], `${path}[${i}]`);
    });
  } else if (isObject(v)) {
    for (const [name, value] of Object.entries(v)) add(name, value, `${path}.${name}`);
  } else {
    throw jsonInvalid(path, `must be an object or a list of [name, value] pairs, got ${show(v)}`);
  }
  return out;
}

interface Draft {
  holdMode?: HoldMode;
  channels: ChannelSub[];
  timeoutSec?: number;
  keepAlive?: KeepAlive;
  meta: Record<string, string>;
  code: number;
  reason: string;
  headers: HeaderList;
  body?: Buffer;
}

function applyJsonInstruct(response: OriginResponse, draft: Draft): void {
  if (response.code !== 200) {
    throw invalid(`${GRIP_INSTRUCT_CONTENT_TYPE} responses must have status 200, got ${response.code}`);
  }
  if (response.body === undefined) throw invalid(`${GRIP_INSTRUCT_CONTENT_TYPE} response has no body to parse`);
  const text = response.body.toString('utf8');
  if (textNestingExceeds(text)) throw invalid(`JSON instruct body is nested more than ${MAX_JSON_DEPTH} levels deep`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new KgError('KG_ERR_INSTRUCT_INVALID', `JSON instruct body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(doc)) throw invalid(`JSON instruct body must be a JSON object, got ${show(Array.isArray(doc) ? 'array' : typeof doc)}`);

  const hold = optObject(doc, 'hold', '');
  if (hold !== undefined) {
    const mode = optString(hold, 'mode', 'hold');
    draft.holdMode = mode === undefined ? 'response' : parseHoldMode(mode, 'JSON instruct hold.mode');
    const channels = field(hold, 'channels');
    if (!Array.isArray(channels)) throw jsonInvalid('hold.channels', `is required and must be a list, got ${show(channels)}`);
    channels.forEach((c: unknown, i) => draft.channels.push(parseJsonChannel(c, `hold.channels[${i}]`)));
    const timeoutSec = optNonNegativeInt(hold, 'timeout', 'hold');
    if (timeoutSec !== undefined) draft.timeoutSec = timeoutSec;
    const keepAlive = optObject(hold, 'keep-alive', 'hold');
    if (keepAlive !== undefined) draft.keepAlive = parseJsonKeepAlive(keepAlive);
    const meta = optObject(hold, 'meta', 'hold');
    for (const [key, value] of Object.entries(meta ?? {})) {
      if (typeof value !== 'string') throw jsonInvalid(`hold.meta.${key}`, `must be a string, got ${show(value)}`);
      draft.meta[key] = value;
    }
  }

  // The client response comes from `response` alone; the real one is discarded [observed 1.36].
  draft.headers = [];
  draft.body = Buffer.alloc(0);
  const res = optObject(doc, 'response', '');
  if (res === undefined) return;
  const code = field(res, 'code');
  if (code !== undefined) {
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 0 || code > 999) {
      throw jsonInvalid('response.code', `must be an integer 0-999, got ${show(code)}`);
    }
    checkFinalCode(code, `JSON instruct response.code ${code}`);
    draft.code = code;
    draft.reason = ''; // a new code takes its own standard phrase unless a reason is given
  }
  const reason = optString(res, 'reason', 'response');
  if (reason !== undefined && reason !== '') {
    const problem = textProblem(reason);
    if (problem !== undefined) throw jsonInvalid('response.reason', problem);
    draft.reason = textToWire(reason);
  }
  const headers = field(res, 'headers');
  if (headers !== undefined) draft.headers = clientHeaders(parseJsonHeaders(headers, 'response.headers'));
  draft.body = optBase64(res, 'body-bin', 'response') ?? stringBytes(optString(res, 'body', 'response')) ?? draft.body;
}

// ---- Entry point -----------------------------------------------------------------------------

/**
 * Parses the origin's GRIP instructions. Throws KgError('KG_ERR_INSTRUCT_INVALID') naming the
 * header or JSON field at fault. Channel count is not limited here (the caller's config is).
 */
export function parseInstruct(response: OriginResponse, context: InstructContext): Instruct {
  const { headers } = response;
  const draft: Draft = { channels: [], meta: {}, code: response.code, reason: response.reason, headers: [] };

  const holdValue = singleHeader(headers, 'Grip-Hold');
  if (holdValue !== undefined) draft.holdMode = parseHoldMode(holdValue, 'Grip-Hold');
  draft.channels = parseChannelHeaders(headers);
  const timeoutValue = singleHeader(headers, 'Grip-Timeout');
  if (timeoutValue !== undefined) draft.timeoutSec = parseNonNegativeInt(timeoutValue, 'Grip-Timeout');
  const keepAlive = parseKeepAliveHeader(headers);
  if (keepAlive !== undefined) draft.keepAlive = keepAlive;
  parseSetMetaHeaders(headers, draft.meta);
  const statusValue = singleHeader(headers, 'Grip-Status');
  if (statusValue !== undefined) Object.assign(draft, parseStatusHeader(statusValue));
  const links = parseLinkHeaders(headers, context.requestUrl);
  draft.headers = clientHeaders(headers, exposedHeaderNames(headers));
  draft.body = response.body;

  if (needsBufferedBody(headers)) applyJsonInstruct(response, draft);
  else checkOriginHeaders(draft.headers);
  // Grip-Status and JSON codes and reasons are checked where read; what is left is the origin's own.
  checkFinalCode(draft.code, `origin status ${draft.code}`);
  checkHeaderText(draft.reason, 'origin status reason');

  // Built field by field here (optional fields only when present), read-only from the return on.
  const instruct: { -readonly [K in keyof Instruct]: Instruct[K] } = {
    code: draft.code,
    reason: draft.reason === '' ? reasonPhrase(draft.code) : draft.reason,
    headers: draft.headers,
    meta: draft.meta,
  };
  if (draft.body !== undefined) instruct.body = draft.body;
  if (links.next !== undefined) instruct.nextLink = links.next;
  if (links.gone !== undefined) instruct.goneLink = links.gone;
  if (draft.holdMode !== undefined) {
    const hold: Hold = {
      mode: draft.holdMode,
      channels: draft.channels,
      timeoutSec: capTimer(Math.max(draft.timeoutSec ?? InstructDefaults.responseTimeoutSec, InstructDefaults.minResponseTimeoutSec)),
    };
    // Keep-alives only mean something on a stream (docs/grip.md, "Instructions in the origin's response").
    if (draft.keepAlive !== undefined && hold.mode === 'stream') hold.keepAlive = draft.keepAlive;
    instruct.hold = hold;
  }
  return instruct;
}
