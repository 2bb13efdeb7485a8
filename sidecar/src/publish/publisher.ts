import { pino, type Logger } from 'pino';
import { NatsBus } from '../bus/nats-bus.js';
import { channelToSubject, DEFAULT_SUBJECT_PREFIX, normalizeSubjectPrefix } from '../bus/subject.js';
import { KgError } from '../errors.js';
import { encodePublishItem, parsePublishItem } from '../grip/publish-item.js';
import type { PublishAction, PublishItem, WsMessageType } from '../grip/types.js';

// `kong-grip/publish`: publish GRIP items from a Node backend without writing the JSON by hand,
// either straight into NATS (each item to its channel's subject) or through a sidecar's
// `POST /publish/`. Items are checked by the same parser the sidecar uses, so a mistake is
// reported here, with the field's path, instead of being dropped by every sidecar.
//
//   const publisher = createPublisher({ nats: { servers: 'nats://127.0.0.1:4222' } });
//   await publisher.publish({ channel: 'news', httpStream: { content: sseEvent({ data: 'hi' }) } });
//   await publisher.close();

export type Bytes = string | Uint8Array;

export interface HttpResponseInput {
  action?: PublishAction;
  code?: number;
  reason?: string;
  headers?: Record<string, string> | Array<[string, string]>;
  body?: Bytes;
  /** RFC 6902 operations applied to the long-poll's timeout body (docs/grip.md, "Long-polling (response hold)"). */
  bodyPatch?: unknown[];
  contentFilters?: string[];
}

export interface HttpStreamInput {
  action?: Exclude<PublishAction, 'refresh'> | 'refresh';
  content?: Bytes;
  contentFilters?: string[];
}

export interface WsMessageInput {
  action?: 'send' | 'close' | 'refresh' | 'hint';
  type?: WsMessageType;
  content?: Bytes;
  code?: number;
  reason?: string;
  contentFilters?: string[];
}

/** One item: a channel and at least one format. */
export interface ItemInput {
  channel: string;
  id?: string;
  prevId?: string;
  meta?: Record<string, string>;
  noSeq?: boolean;
  httpResponse?: HttpResponseInput;
  httpStream?: HttpStreamInput;
  wsMessage?: WsMessageInput;
}

export interface NatsTarget {
  /** One URL, a comma-separated list, or an array. */
  servers: string | string[];
  /** Must match the sidecars' `--nats-prefix` (default grip.ch.). */
  subjectPrefix?: string;
  /** How long a publish waits for the first connection (or a reconnect) before failing. */
  connectTimeoutMs?: number;
  name?: string;
}

export interface HttpTarget {
  /**
   * The sidecar's control URL (e.g. http://127.0.0.1:5561/) or a Kong route to it (e.g.
   * http://kong:8000/rt/ for kong.yml's /rt/publish route); items are posted to `<url>publish/`.
   */
  url: string;
  /** Sent as `Authorization: Bearer <token>` (the sidecar's --publish-token). */
  token?: string;
  /** A key for a route guarded by Kong's key-auth, sent in the header `apiKeyHeader`. Not with `token`. */
  apiKey?: string;
  /** The header that carries `apiKey` (one of key-auth's `key_names`); default `apikey`. */
  apiKeyHeader?: string;
  timeoutMs?: number;
}

/** The credential header an HTTP target sends, if any; throws KG_ERR_CONFIG_INVALID for a bad combination. */
export function credentialHeader(target: HttpTarget): [string, string] | undefined {
  const invalid = (message: string) => new KgError('KG_ERR_CONFIG_INVALID', `http: ${message}`);
  if (target.token !== undefined && target.apiKey !== undefined) throw invalid('give either token (Bearer) or apiKey (key-auth), not both');
  if (target.apiKeyHeader !== undefined && target.apiKey === undefined) throw invalid('apiKeyHeader needs apiKey');
  if (target.token !== undefined) {
    if (typeof target.token !== 'string' || target.token === '') throw invalid('token must be a non-empty string');
    return ['Authorization', `Bearer ${target.token}`];
  }
  if (target.apiKey === undefined) return undefined;
  if (typeof target.apiKey !== 'string' || target.apiKey === '') throw invalid('apiKey must be a non-empty string');
  const header = target.apiKeyHeader ?? 'apikey';
  // An HTTP token (RFC 9110 field-name): what fetch would otherwise reject at the first publish.
  if (typeof header !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header)) throw invalid(`apiKeyHeader must be a header name, got ${JSON.stringify(header)}`);
  if (/[\r\n\0]/.test(target.apiKey)) throw invalid('apiKey must not contain CR, LF or NUL');
  return [header, target.apiKey];
}

export type PublisherOptions = ({ nats: NatsTarget } | { http: HttpTarget }) & {
  /** Connection problems are logged here; silent by default (failures still reject publish()). */
  log?: Logger;
};

export interface Publisher {
  /** Validates every item first (all or nothing), then publishes them in order. */
  publish(items: ItemInput | readonly ItemInput[]): Promise<void>;
  close(): Promise<void>;
}

/** The NATS subject that carries `channel` (for publishing with another NATS client). */
export function subjectFor(channel: string, subjectPrefix: string = DEFAULT_SUBJECT_PREFIX): string {
  const prefix = normalizeSubjectPrefix(subjectPrefix);
  if ('error' in prefix) throw new KgError('KG_ERR_CONFIG_INVALID', prefix.error);
  return channelToSubject(prefix.prefix, channel);
}

/** The text of one Server-Sent Event, for `httpStream.content`. */
export function sseEvent(event: { data: string; event?: string; id?: string }): string {
  let out = '';
  if (event.event !== undefined) out += `event: ${event.event}\n`;
  if (event.id !== undefined) out += `id: ${event.id}\n`;
  for (const line of event.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** Checks the items and returns them in the sidecar's form; throws KG_ERR_PUBLISH_INVALID naming the field. */
export function toPublishItems(items: ItemInput | readonly ItemInput[]): PublishItem[] {
  const list: readonly ItemInput[] = Array.isArray(items) ? items : [items as ItemInput];
  return list.map((item, i) => parsePublishItem(toWire(item), `items[${i}]`));
}

export function createPublisher(options: PublisherOptions): Publisher {
  const log = options.log ?? pino({ level: 'silent' });
  if ('nats' in options) return new NatsPublisher(options.nats, log);
  return new HttpPublisher(options.http);
}

/** One-off publish: connects, publishes, closes. For many publishes keep a createPublisher(). */
export async function publish(options: PublisherOptions, items: ItemInput | readonly ItemInput[]): Promise<void> {
  const publisher = createPublisher(options);
  try {
    await publisher.publish(items);
  } finally {
    await publisher.close();
  }
}

// --- transports ---------------------------------------------------------------------------------

class NatsPublisher implements Publisher {
  private readonly bus: NatsBus;
  private readonly connectTimeoutMs: number;

  constructor(target: NatsTarget, log: Logger) {
    const servers = (Array.isArray(target.servers) ? target.servers : target.servers.split(','))
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const prefix = normalizeSubjectPrefix(target.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX);
    if ('error' in prefix) throw new KgError('KG_ERR_CONFIG_INVALID', prefix.error);
    if (servers.length === 0) throw new KgError('KG_ERR_CONFIG_INVALID', 'nats.servers must name at least one server');
    this.connectTimeoutMs = target.connectTimeoutMs ?? 5000;
    this.bus = new NatsBus({
      servers,
      subjectPrefix: prefix.prefix,
      lingerMs: 0,
      reconnectWaitMs: 500,
      connectTimeoutMs: this.connectTimeoutMs,
      pingIntervalMs: 30_000,
      name: target.name ?? `kong-grip publisher pid ${process.pid}`,
      log,
    });
  }

  async publish(items: ItemInput | readonly ItemInput[]): Promise<void> {
    const parsed = toPublishItems(items);
    await this.connected();
    await this.bus.publish(parsed);
  }

  private connected(): Promise<void> {
    if (this.bus.status().type === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        const status = this.bus.status();
        const detail = 'error' in status && status.error !== undefined ? `: ${status.error}` : '';
        reject(new KgError('KG_ERR_BUS_UNAVAILABLE', `NATS not connected within ${this.connectTimeoutMs} ms (${status.type}${detail})`));
      }, this.connectTimeoutMs);
      const off = this.bus.listen((event) => {
        if (event.type !== 'status') return;
        if (event.status.type === 'connected' || event.status.type === 'closed') {
          clearTimeout(timer);
          off();
          if (event.status.type === 'connected') resolve();
          else reject(new KgError('KG_ERR_BUS_UNAVAILABLE', 'the publisher is closed'));
        }
      });
    });
  }

  close(): Promise<void> {
    return this.bus.close();
  }
}

class HttpPublisher implements Publisher {
  private readonly endpoint: string;
  private readonly credential: [string, string] | undefined;

  constructor(private readonly target: HttpTarget) {
    this.credential = credentialHeader(target);
    const base = target.url.endsWith('/') ? target.url : `${target.url}/`;
    this.endpoint = new URL('publish/', base).href;
  }

  async publish(items: ItemInput | readonly ItemInput[]): Promise<void> {
    const body = JSON.stringify({ items: toPublishItems(items).map((item) => encodePublishItem(item, true)) });
    const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'text/plain' };
    if (this.credential !== undefined) headers[this.credential[0]] = this.credential[1];
    let res: Response;
    try {
      res = await fetch(this.endpoint, {
        method: 'POST', headers, body, signal: AbortSignal.timeout(this.target.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new KgError('KG_ERR_BUS_UNAVAILABLE', `publish to ${this.endpoint} failed: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 200) {
      await res.arrayBuffer();
      return;
    }
    const text = (await res.text()).trim();
    const message = `publish to ${this.endpoint} answered ${res.status}: ${text}`;
    switch (res.status) {
      case 400:
        throw new KgError('KG_ERR_PUBLISH_INVALID', message);
      case 401:
      case 403:
        throw new KgError('KG_ERR_PUBLISH_UNAUTHORIZED', message);
      default:
        throw new KgError('KG_ERR_BUS_UNAVAILABLE', message);
    }
  }

  async close(): Promise<void> {}
}

// --- input to the wire shape (then checked by parsePublishItem) ---------------------------------

type Json = Record<string, unknown>;

function putBytes(out: Json, textKey: string, binKey: string, value: Bytes | undefined): void {
  if (value === undefined) return;
  if (typeof value === 'string') out[textKey] = value;
  else out[binKey] = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
}

function putDefined(out: Json, key: string, value: unknown): void {
  if (value !== undefined) out[key] = value;
}

function toWire(item: ItemInput): Json {
  const formats: Json = {};
  if (item.httpResponse !== undefined) {
    const f = item.httpResponse;
    const out: Json = {};
    putDefined(out, 'action', f.action);
    putDefined(out, 'code', f.code);
    putDefined(out, 'reason', f.reason);
    putDefined(out, 'headers', f.headers);
    putBytes(out, 'body', 'body-bin', f.body);
    putDefined(out, 'body-patch', f.bodyPatch);
    putDefined(out, 'content-filters', f.contentFilters);
    formats['http-response'] = out;
  }
  if (item.httpStream !== undefined) {
    const f = item.httpStream;
    const out: Json = {};
    putDefined(out, 'action', f.action);
    putBytes(out, 'content', 'content-bin', f.content);
    putDefined(out, 'content-filters', f.contentFilters);
    formats['http-stream'] = out;
  }
  if (item.wsMessage !== undefined) {
    const f = item.wsMessage;
    const out: Json = {};
    putDefined(out, 'action', f.action);
    putDefined(out, 'type', f.type);
    putBytes(out, 'content', 'content-bin', f.content);
    putDefined(out, 'code', f.code);
    putDefined(out, 'reason', f.reason);
    putDefined(out, 'content-filters', f.contentFilters);
    formats['ws-message'] = out;
  }
  const wire: Json = { channel: item.channel, formats };
  putDefined(wire, 'id', item.id);
  putDefined(wire, 'prev-id', item.prevId);
  putDefined(wire, 'meta', item.meta);
  putDefined(wire, 'no-seq', item.noSeq);
  return wire;
}
