import type { IncomingMessage, ServerResponse } from 'node:http';
import { jwtVerify, SignJWT } from 'jose';
import { startGripOrigin, TEST_SIG_KEY } from './grip-origin.js';
import { withDeadline } from '../../bench/proc.js';
import { request } from './http.js';

// A test origin that answers exactly as a Django EventStream view does (django-eventstream with
// Django's model storage behind django-grip, spec 5.6), so the proxy can be checked against the
// best-known Pushpin origin without Python. What it reproduces, byte for byte:
//
// - GET /events/?channel=a&channel=b: the SSE view. The first answer starts with a 2 KB comment
//   and `event: stream-open`; then the stored events after the client's Last-Event-ID (header,
//   or the last non-empty lastEventId parameter), each with the composite id `a:1,b:0` and its
//   type and data `%`-escaped for build-id. Headers: Grip-Hold stream, one Grip-Channel per
//   channel (`events-<quoted name>; prev-id=N; filter=build-id; filter=skip-users`) plus
//   `user-<id>; filter=require-sub`, Grip-Set-Meta id_format and user, the keep-alive, and a next
//   link back to the view with link=next, recover=true and an es-meta JWT (channels and user:
//   next-link requests carry no cookies). A next-link request with recover=true reads Grip-Last.
// - Errors as the view renders them: `event: stream-error` / `id: error` with a JSON body, or a
//   400 for a resume after an error.
// - sendEvent: stores the event (ids 1, 2, … per channel) and publishes it with id / prev-id,
//   `id: %I`, content-filters ["build-id"] and meta skip_users.
// - revoke: channel_permission_changed: the `stream-error` kick and a close, on `user-<id>`,
//   with meta require_sub.
//
// The signed-in user is the X-Test-User header here (Django would read its session cookie);
// absent, the user is anonymous.

const SECRET_KEY = 'django-insecure-test-secret-key-0123456789';
const PADDING = `:${' '.repeat(2048)}\n\n`;
const MAX_CHANNELS = 10;
const DEFAULT_LIMIT = 100;

export interface StoredEvent {
  id: number;
  type: string;
  /** The JSON text of the event's data, as send_event encoded it. */
  data: string;
}

class RequestError extends Error {}
class ResumeNotAllowedError extends Error {}
class PermissionError extends Error {
  constructor(readonly channels: string[]) {
    super(`Permission denied to channels: ${channels.join(', ')}`);
  }
}

/** Python's json.dumps with its default separators and ensure_ascii, for the values used here. */
export function pyJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${pyJson(k)}: ${pyJson(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Python's repr() of a dict of strings and lists of strings (publish_kick renders its data with str()). */
function pyRepr(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  if (value !== null && typeof value === 'object') return `{${Object.entries(value).map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
  return `'${String(value).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** urllib.parse.quote with its default safe set ("/"). */
function quote(s: string): string {
  return encodeURIComponent(s).replace(/%2F/g, '/').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function buildIdEscape(s: string): string {
  return s.replace(/%/g, '%%');
}

/** utils.sse_encode_event. */
export function sseEncodeEvent(type: string, data: string, eventId?: string, escape = false): string {
  let eventType = type.replace(/[\r\n\0]/g, '');
  const id = eventId?.replace(/[\r\n\0]/g, '');
  let text = data;
  if (escape) {
    eventType = buildIdEscape(eventType);
    text = buildIdEscape(text);
  }
  let out = `event: ${eventType}\n`;
  if (id) out += `id: ${id}\n`;
  for (const line of text.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

function sseEncodeError(condition: string, text: string, extra: Record<string, unknown> = {}): string {
  return sseEncodeEvent('stream-error', pyJson({ condition, text, ...extra }), 'error');
}

/** utils.make_id. */
function makeId(ids: ReadonlyMap<string, string>): string {
  return [...ids].map(([channel, id]) => `${quote(channel)}:${id}`).join(',');
}

/** utils.parse_last_event_id: each part must be exactly `channel:id`. */
function parseLastEventId(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of s.split(',')) {
    const pieces = part.split(':');
    if (pieces.length !== 2) throw new Error('not channel:id');
    out.set(pieces[0]!, pieces[1]!);
  }
  return out;
}

/** django-grip's cstring encoding of the keep-alive data. */
function cstringEncode(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

/** Grip-Last as django-grip reads it: channel -> last-id. */
function parseGripLast(header: string | undefined): Map<string, string> {
  const last = new Map<string, string>();
  if (header === undefined) return last;
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';').map((p) => p.trim());
    let lastId = '';
    for (const p of params) {
      const eq = p.indexOf('=');
      if (eq > 0 && p.slice(0, eq).trim() === 'last-id') lastId = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    }
    if (name) last.set(name, lastId);
  }
  return last;
}

export interface SeenViewRequest {
  url: string;
  headers: IncomingMessage['headers'];
  user?: string;
  /** A next-link request with recover=true (the proxy recovering or refreshing the stream). */
  isRecover: boolean;
}

export interface DjangoEventStreamOrigin {
  url: string;
  port: number;
  /** Where publishes go (the proxy's publish endpoint); set once the proxy runs. */
  publishTo(url: string): void;
  /** eventstream.send_event. */
  sendEvent(channel: string, type: string, data: unknown, options?: { skipUserIds?: string[]; isPublishLost?: boolean }): Promise<number>;
  /** Removes the user's access and runs channel_permission_changed (the kick). */
  revoke(user: string, channel: string): Promise<void>;
  /** Publishes a raw item, as django-grip's publish does (for probes). */
  publish(item: Record<string, unknown>): Promise<void>;
  events(channel: string): StoredEvent[];
  /** Every request the view answered, in order, with the user it was for (from X-Test-User or es-meta). */
  requests: SeenViewRequest[];
  /** Resolves with the first request (already seen or yet to come) that `match` accepts; rejects after `ms`. */
  waitForRequest(match: (r: SeenViewRequest) => boolean, ms?: number): Promise<SeenViewRequest>;
  close(): Promise<void>;
}

export async function startDjangoEventStreamOrigin(options: { sigKey?: string; limit?: number } = {}): Promise<DjangoEventStreamOrigin> {
  const storage = new Map<string, StoredEvent[]>();
  const denied = new Set<string>();
  const requests: SeenViewRequest[] = [];
  let waiters: Array<() => void> = [];
  let publishUrl: string | undefined;
  const secret = new TextEncoder().encode(SECRET_KEY);
  const limit = options.limit ?? DEFAULT_LIMIT;

  const currentId = (channel: string): number => storage.get(channel)?.at(-1)?.id ?? 0;
  const canRead = (user: string, channel: string): boolean => !denied.has(`${user}\n${channel}`);

  async function publish(item: Record<string, unknown>): Promise<void> {
    if (publishUrl === undefined) throw new Error('publishTo() was not called');
    const res = await request(publishUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ items: [item] }) });
    if (res.status !== 200) throw new Error(`publish failed: ${res.status} ${res.body}`);
  }

  async function view(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const seen: SeenViewRequest = { url: req.url ?? '', headers: req.headers, isRecover: false };
    const url = new URL(req.url ?? '/', 'http://origin');
    const q = url.searchParams;
    let answer: { status: number; body: string; headers: Record<string, string> };
    try {
      answer = await respond(req, url, q, seen);
    } catch (err) {
      if (err instanceof ResumeNotAllowedError) answer = { status: 400, body: `Invalid request: ${err.message}.\n`, headers: { 'Content-Type': 'text/html; charset=utf-8' } };
      else if (err instanceof RequestError) answer = { status: 200, body: sseEncodeError('bad-request', `Invalid request: ${err.message}.`), headers: { 'Content-Type': 'text/event-stream' } };
      else if (err instanceof PermissionError) answer = { status: 200, body: sseEncodeError('forbidden', err.message, { channels: err.channels }), headers: { 'Content-Type': 'text/event-stream' } };
      else throw err;
    }
    // utils.add_default_headers
    res.writeHead(answer.status, { ...answer.headers, 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    res.end(answer.body);
    requests.push(seen);
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  }

  async function respond(req: IncomingMessage, url: URL, q: URLSearchParams, seen: SeenViewRequest) {
    // EventRequest
    let esMeta: { user?: string; channels?: string[] } = {};
    const token = q.get('es-meta');
    if (token) {
      try {
        esMeta = (await jwtVerify(token, secret, { algorithms: ['HS256'], issuer: 'es' })).payload as typeof esMeta;
      } catch (err) {
        throw new RequestError(`es-meta: ${(err as Error).message}`);
      }
    }
    const user = esMeta.user ?? (typeof req.headers['x-test-user'] === 'string' ? req.headers['x-test-user'] : 'anonymous');
    seen.user = user;
    const channels = esMeta.channels ?? [...new Set(q.getAll('channel'))];
    if (channels.length < 1) throw new RequestError('No channels specified');
    if (channels.length > MAX_CHANNELS) throw new RequestError('Channel limit exceeded');
    const isNext = q.get('link') === 'next';
    const lastIds = new Map<string, string>();
    if (q.get('recover') === 'true') {
      seen.isRecover = true;
      for (const [gripChannel, lastId] of parseGripLast(req.headers['grip-last'] as string | undefined)) {
        if (!gripChannel.startsWith('events-')) continue;
        const channel = decodeURIComponent(gripChannel.slice(7));
        if (channels.includes(channel)) lastIds.set(channel, lastId);
      }
    } else {
      let lastEventId = req.headers['last-event-id'] as string | undefined;
      if (!lastEventId) lastEventId = q.getAll('lastEventId').reverse().find((v) => v !== '');
      if (lastEventId) {
        if (lastEventId === 'error') throw new ResumeNotAllowedError("Can't resume session after stream-error");
        let parsed: Map<string, string>;
        try {
          parsed = parseLastEventId(lastEventId);
        } catch {
          throw new RequestError('Failed to parse Last-Event-ID or lastEventId');
        }
        for (const [channel, id] of parsed) if (channels.includes(decodeURIComponent(channel))) lastIds.set(decodeURIComponent(channel), id);
      }
    }
    // eventstream.get_events
    const inaccessible = channels.filter((c) => !canRead(user, c));
    if (inaccessible.length > 0) throw new PermissionError(inaccessible);
    const perChannel = Math.max(1, Math.floor(limit / channels.length));
    const items = new Map<string, StoredEvent[]>();
    const channelLastIds = new Map<string, string>();
    const reset = new Set<string>();
    const more = new Set<string>();
    for (const channel of channels) {
      const lastId = lastIds.get(channel);
      let events: StoredEvent[] = [];
      let last: string;
      if (lastId !== undefined) {
        const stored = storage.get(channel) ?? [];
        const n = Number(lastId);
        if (n === currentId(channel)) {
          last = lastId;
        } else if (!Number.isInteger(n) || !stored.some((e) => e.id === n)) {
          reset.add(channel); // EventDoesNotExist: start from the current id
          last = String(currentId(channel));
        } else {
          events = stored.filter((e) => e.id > n).slice(0, perChannel + 1);
          if (events.length >= perChannel + 1) {
            events = events.slice(0, perChannel);
            more.add(channel);
          }
          last = lastId;
        }
      } else {
        last = String(currentId(channel));
      }
      items.set(channel, events);
      channelLastIds.set(channel, last);
    }
    // eventresponse.to_grip_response
    const ids = new Map(channelLastIds);
    let eventId = makeId(ids);
    let body = '';
    if (!isNext) body += `${PADDING}event: stream-open\ndata:\n\n`;
    if (reset.size > 0) body += sseEncodeEvent('stream-reset', pyJson({ channels: [...reset] }), eventId);
    for (const [channel, events] of items) {
      for (const e of events) {
        ids.set(channel, String(e.id));
        eventId = makeId(ids);
        body += sseEncodeEvent(e.type, e.data, eventId, true);
      }
    }
    const params = new URLSearchParams(q);
    params.set('link', 'next');
    if (more.size > 0) {
      params.set('lastEventId', eventId);
      params.delete('recover');
    } else {
      params.set('recover', 'true');
      params.delete('lastEventId');
    }
    params.set('es-meta', await new SignJWT({ channels: [...items.keys()], user })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuer('es').setExpirationTime('1h').sign(secret));
    const channelHeader = [...items.keys()].map((channel) => {
      const last = ids.get(channel);
      let s = `events-${quote(channel)}`;
      if (last !== undefined) s += `; prev-id=${last}`;
      if (last) s += '; filter=build-id';
      return `${s}; filter=skip-users`;
    });
    channelHeader.push(`user-${user}; filter=require-sub`);
    const meta: Array<[string, string]> = [];
    if (ids.size > 0) meta.push(['id_format', [...ids.keys()].map((c) => `${buildIdEscape(quote(c))}:%(events-${quote(c)})s`).join(',')]);
    meta.push(['user', user]);
    const headers: Record<string, string> = {
      'Content-Type': 'text/event-stream',
      'Grip-Channel': channelHeader.join(', '),
      'Grip-Set-Meta': meta.map(([k, v]) => `${k}="${v.replace(/"/g, '\\"')}"`).join(', '),
      'Grip-Link': `<${url.pathname}?${params.toString()}>; rel=next`,
    };
    if (more.size === 0) {
      headers['Grip-Hold'] = 'stream';
      headers['Grip-Keep-Alive'] = `${cstringEncode('event: keep-alive\ndata:\n\n')}; format=cstring; timeout=20`;
    }
    return { status: 200, body, headers };
  }

  const origin = await startGripOrigin({
    '/': (req, res) => { res.end('bench origin\n'); }, // what bench/pushpin.ts waits for at start-up
    '/events/': view,
  }, { sigKey: options.sigKey ?? TEST_SIG_KEY });

  return {
    url: origin.url,
    port: origin.port,
    publishTo(url) { publishUrl = url; },
    async sendEvent(channel, type, data, sendOptions = {}) {
      const json = pyJson(data);
      const stored = storage.get(channel) ?? [];
      const id = currentId(channel) + 1;
      stored.push({ id, type, data: json });
      storage.set(channel, stored);
      const meta: Record<string, string> = {};
      if (sendOptions.skipUserIds && sendOptions.skipUserIds.length > 0) meta['skip_users'] = sendOptions.skipUserIds.join(',');
      // A publish lost on the way (stored, never delivered): what reliable streaming recovers from.
      if (sendOptions.isPublishLost === true) return id;
      await publish({
        channel: `events-${quote(channel)}`, id: String(id), 'prev-id': String(id - 1), meta,
        formats: { 'http-stream': { 'content-filters': ['build-id'], content: sseEncodeEvent(type, json, '%I', true) } },
      });
      return id;
    },
    async revoke(user, channel) {
      denied.add(`${user}\n${channel}`);
      // eventstream.channel_permission_changed -> utils.publish_kick
      const data = { condition: 'forbidden', text: `Permission denied to channels: ${channel}`, channels: [channel] };
      const meta = { require_sub: `events-${channel}` };
      await publish({ channel: `user-${user}`, id: 'kick-1', meta, formats: { 'http-stream': { content: sseEncodeEvent('stream-error', pyRepr(data), 'error') } } });
      await publish({ channel: `user-${user}`, id: 'kick-2', 'prev-id': 'kick-1', meta, formats: { 'http-stream': { action: 'close' } } });
    },
    publish,
    events: (channel) => [...(storage.get(channel) ?? [])],
    requests,
    waitForRequest: (match, ms = 10_000) => withDeadline((async () => {
      for (let i = 0; ; ) {
        for (; i < requests.length; i++) if (match(requests[i]!)) return requests[i]!;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    })(), ms, () => `an origin request that matches; got ${JSON.stringify(requests.map((r) => [r.url.slice(0, 60), r.user]))}`),
    close: () => origin.close(),
  };
}
