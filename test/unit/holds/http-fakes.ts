import { EventEmitter, once } from 'node:events';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { HeaderList, HttpResponseFormat, HttpStreamFormat, PublishItem } from '../../../sidecar/src/grip/types.js';
import { ChunkWriter } from '../../../sidecar/src/holds/chunk-writer.js';
import { createChannelLimit, type ChannelSubscriptions } from '../../../sidecar/src/holds/hold-ports.js';
import { HoldRegistry } from '../../../sidecar/src/holds/hold-registry.js';
import type { KeepAliveMember } from '../../../sidecar/src/holds/keep-alive-wheel.js';
import type { ResponseHoldDeps } from '../../../sidecar/src/holds/response-hold.js';
import type { StreamHoldDeps } from '../../../sidecar/src/holds/stream-hold.js';
import type { PositionedSubscriber, Subscriber } from '../../../sidecar/src/hub/hub.js';
import type { Logger } from '../../../sidecar/src/log.js';
import { createMetrics, type Metrics } from '../../../sidecar/src/metrics.js';
import type { GoneLink, GoneNotifier } from '../../../sidecar/src/origin/gone-link.js';
import type { FetchedPage, LinkContext, NextLinks } from '../../../sidecar/src/origin/link-fetch.js';
import type { OriginCall, OriginPort, OriginRequest } from '../../../sidecar/src/origin/origin-client.js';
import { FakeClock } from './fake-clock.js';

// Fakes for unit tests of the HTTP holds and their session: a client response that records what
// is written to it, a hub, a clock, an origin and next links whose answers the test gives by hand.
// Each emits an event when something happens, so a test waits on that and never sleeps.

/** Resolves once `isDone()` holds, re-checking whenever `emitter` emits `event`. */
export async function until(emitter: EventEmitter, event: string, isDone: () => boolean): Promise<void> {
  while (!isDone()) await once(emitter, event);
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** Lets every promise continuation already queued run (no time passes). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A client response. Records the head, the body and the calls; 'close' comes a tick after end()
 * or destroy(), as from Node. Events: 'head', 'data', 'finish', 'close'.
 */
export class FakeResponse extends EventEmitter {
  statusCode = 0;
  statusMessage = '';
  /** The head's headers as a flat name, value list. */
  headerList: string[] = [];
  readonly chunks: Buffer[] = [];
  /** 'writeHead', 'write', 'end', 'destroy' in call order. */
  readonly calls: string[] = [];
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  writableLength = 0;
  chunkedEncoding = false;
  socket = null;

  get body(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  header(name: string): string | undefined {
    for (let i = 0; i < this.headerList.length; i += 2) {
      if ((this.headerList[i] as string).toLowerCase() === name.toLowerCase()) return this.headerList[i + 1];
    }
    return undefined;
  }

  writeHead(code: number, reason?: string | string[], headers?: string[]): this {
    const list = (Array.isArray(reason) ? reason : headers) ?? [];
    // Node's checks (lib/_http_common.js): writeHead throws rather than send these.
    const invalid = (text: string): boolean => /[^\t\x20-\x7e\x80-\xff]/.test(text);
    if (typeof reason === 'string' && invalid(reason)) throw Object.assign(new TypeError('Invalid character in statusMessage'), { code: 'ERR_INVALID_CHAR' });
    for (let i = 0; i < list.length; i += 2) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(list[i] as string)) throw Object.assign(new TypeError('Header name must be a valid HTTP token'), { code: 'ERR_INVALID_HTTP_TOKEN' });
      if (invalid(list[i + 1] as string)) throw Object.assign(new TypeError('Invalid character in header content'), { code: 'ERR_INVALID_CHAR' });
    }
    this.statusCode = code;
    if (typeof reason === 'string') this.statusMessage = reason;
    this.headerList = list;
    this.headersSent = true;
    this.calls.push('writeHead');
    this.emit('head');
    return this;
  }

  flushHeaders(): void {}

  write(chunk: Buffer | string): boolean {
    this.chunks.push(Buffer.from(chunk));
    this.calls.push('write');
    this.emit('data');
    return true;
  }

  end(chunk?: Buffer | string): this {
    if (chunk !== undefined && chunk.length > 0) this.chunks.push(Buffer.from(chunk));
    this.writableEnded = true;
    this.calls.push('end');
    this.emit('finish');
    process.nextTick(() => this.emit('close'));
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.calls.push('destroy');
    process.nextTick(() => this.emit('close'));
    return this;
  }

  asResponse(): ServerResponse {
    return this as unknown as ServerResponse;
  }
}

/** The hub's subscribe/unsubscribe, plus what the real hub does to subscribers: deliver, refresh, recover. */
export class FakeHub extends EventEmitter implements ChannelSubscriptions {
  readonly subscribers = new Map<string, Set<Subscriber>>();
  /** Every subscribe and unsubscribe, in order. */
  readonly history: Array<{ op: 'subscribe' | 'unsubscribe'; channel: string; prevId?: string }> = [];

  subscribe(channel: string, subscriber: PositionedSubscriber, prevId: string | undefined): void {
    let set = this.subscribers.get(channel);
    if (set === undefined) this.subscribers.set(channel, (set = new Set()));
    set.add(subscriber);
    this.history.push({ op: 'subscribe', channel, ...(prevId === undefined ? {} : { prevId }) });
    this.emit('subscribe', channel);
  }

  unsubscribe(channel: string, subscriber: Subscriber): void {
    const set = this.subscribers.get(channel);
    set?.delete(subscriber);
    if (set?.size === 0) this.subscribers.delete(channel);
    this.history.push({ op: 'unsubscribe', channel });
  }

  count(channel: string): number {
    return this.subscribers.get(channel)?.size ?? 0;
  }

  /** Channels with subscribers, sorted. */
  channels(): string[] {
    return [...this.subscribers.keys()].sort();
  }

  publish(item: PublishItem): void {
    for (const s of [...(this.subscribers.get(item.channel) ?? [])]) s.deliver(item);
  }

  refresh(channel: string): void {
    for (const s of [...(this.subscribers.get(channel) ?? [])]) s.refresh();
  }

  recover(channel: string): void {
    for (const s of [...(this.subscribers.get(channel) ?? [])]) (s as PositionedSubscriber).recover(channel);
  }
}

/** An origin response: head given, body ended at once unless `streaming` (then write and end it yourself). */
export function originResponse(
  code: number, headers: HeaderList, body: string | Buffer = '', options: { streaming?: boolean; reason?: string } = {},
): IncomingMessage & PassThrough {
  const res = new PassThrough() as PassThrough & { statusCode: number; statusMessage: string; rawHeaders: string[]; complete: boolean };
  res.statusCode = code;
  res.statusMessage = options.reason ?? (code === 200 ? 'OK' : '');
  res.rawHeaders = headers.flat();
  res.complete = options.streaming !== true;
  if (options.streaming !== true) res.end(body);
  else res.once('end', () => { res.complete = true; });
  return res as unknown as IncomingMessage & PassThrough;
}

export interface OriginCallRecord {
  req: OriginRequest;
  body: Buffer | undefined;
  /** The body streamed through start(), when that was used. */
  outgoing?: PassThrough;
  answer(res: IncomingMessage): void;
  fail(err: unknown): void;
}

/** The origin: every request waits until the test answers it. Emits 'call'. */
export class FakeOrigin extends EventEmitter implements OriginPort {
  readonly calls: OriginCallRecord[] = [];
  private taken = 0;

  request(req: OriginRequest, body?: Buffer): Promise<IncomingMessage> {
    const d = deferred<IncomingMessage>();
    this.calls.push({ req, body, answer: d.resolve, fail: d.reject });
    this.emit('call');
    return d.promise;
  }

  async start(req: OriginRequest): Promise<OriginCall> {
    const d = deferred<IncomingMessage>();
    const outgoing = new PassThrough();
    this.calls.push({ req, body: undefined, outgoing, answer: d.resolve, fail: d.reject });
    this.emit('call');
    return { outgoing: outgoing as unknown as ClientRequest, response: d.promise };
  }

  /** The next request not yet taken, once it has been made. */
  async nextCall(): Promise<OriginCallRecord> {
    await until(this, 'call', () => this.calls.length > this.taken);
    return this.calls[this.taken++] as OriginCallRecord;
  }
}

/** Next-link fetches the test answers by hand. Emits 'fetch'. */
export class FakeLinks extends EventEmitter implements NextLinks {
  readonly fetches: Array<{ url: string; lastIds: Map<string, string>; page: Deferred<FetchedPage>; signal: AbortSignal | undefined; requestUrl: URL }> = [];
  private taken = 0;

  fetch(url: string, lastIds: ReadonlyMap<string, string>, context: LinkContext): Promise<FetchedPage> {
    const page = deferred<FetchedPage>();
    this.fetches.push({ url, lastIds: new Map(lastIds), page, signal: context.signal, requestUrl: context.requestUrl });
    this.emit('fetch');
    return page.promise;
  }

  async nextFetch(): Promise<FakeLinks['fetches'][number]> {
    await until(this, 'fetch', () => this.fetches.length > this.taken);
    return this.fetches[this.taken++] as FakeLinks['fetches'][number];
  }
}

/** The keep-alive wheel as a stream sees it; the test calls sendKeepAlive() as the wheel would. */
export class FakeKeepAlives {
  readonly members = new Map<KeepAliveMember, number>();
  tick = 0;

  add(member: KeepAliveMember, intervalMs: number): void {
    this.members.set(member, intervalMs);
  }

  remove(member: KeepAliveMember): void {
    this.members.delete(member);
  }

  currentTick(): number {
    return this.tick;
  }
}

export interface LogLine {
  level: string;
  fields: unknown;
  msg: string | undefined;
}

/** A logger that keeps its lines; `events` emits 'line' for each. */
export function fakeLog(): Logger & { lines: LogLine[]; events: EventEmitter } {
  const lines: LogLine[] = [];
  const events = new EventEmitter();
  const at = (level: string) => (fields: unknown, msg?: string): void => {
    lines.push({ level, fields, msg });
    events.emit('line');
  };
  const log = { lines, events, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return log as unknown as Logger & { lines: LogLine[]; events: EventEmitter };
}

/** The value of a counter or gauge with exactly these labels (0 when never touched). */
export async function metricValue(metric: { get(): Promise<{ values: Array<{ labels: object; value: number }> }> }, labels: Record<string, string>): Promise<number> {
  const { values } = await metric.get();
  const found = values.find((v) => JSON.stringify(Object.entries(v.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
  return found?.value ?? 0;
}

/** What holds still keep: channels subscribed, timers armed, holds open. */
export function stillHeld(ports: { hub: FakeHub; clock: FakeClock; holds: HoldRegistry }) {
  return { channels: ports.hub.channels(), timers: ports.clock.pending, holds: ports.holds.size };
}

export const NOTHING_HELD = { channels: [], timers: 0, holds: 0 };

/** Everything a hold or session is given, made of fakes (a real HoldRegistry, ChunkWriter and metrics). */
/** Records the gone links the holds send, emitting 'notify' for each. */
export class FakeGone extends EventEmitter implements GoneNotifier {
  readonly sent: GoneLink[] = [];

  notify(link: GoneLink): void {
    this.sent.push(link);
    this.emit('notify', link);
  }

  /** The URLs sent so far. */
  get urls(): string[] {
    return this.sent.map((l) => l.url);
  }
}

export function fakePorts(options: { maxChannels?: number; maxQueueItems?: number; maxQueueBytes?: number; maxPatchedBodyBytes?: number } = {}) {
  const hub = new FakeHub();
  const clock = new FakeClock();
  const metrics: Metrics = createMetrics();
  const log = fakeLog();
  const holds = new HoldRegistry();
  const keepAlives = new FakeKeepAlives();
  const links = new FakeLinks();
  const gone = new FakeGone();
  let streamSent = 0;
  const channelLimit = createChannelLimit(options.maxChannels ?? 20, metrics, log);
  const responseHolds: ResponseHoldDeps = {
    hub, holds, channelLimit, metrics, clock, log, gone, limits: { maxPatchedBodyBytes: options.maxPatchedBodyBytes ?? 1_048_576 },
  };
  const streamHolds: StreamHoldDeps = {
    hub, holds, channelLimit, metrics, clock, log, keepAlives, links, gone,
    limits: { maxQueueItems: options.maxQueueItems ?? 100, maxQueueBytes: options.maxQueueBytes ?? 1_048_576, maxMetaKeys: 32, maxMetaBytes: 8192 },
    chunks: new ChunkWriter(),
    countStreamSent: () => { streamSent++; },
  };
  return { hub, clock, metrics, log, holds, keepAlives, links, gone, responseHolds, streamHolds, streamSent: () => streamSent };
}

export function responseItem(channel: string, format: Partial<HttpResponseFormat> & { body?: Buffer }, ids: { id?: string; prevId?: string } = {}): PublishItem {
  return {
    channel, ...ids, meta: {}, noSeq: false,
    formats: { 'http-response': { action: 'send', code: 200, headers: [], ...format } },
  };
}

export function streamItem(channel: string, content: string, ids: { id?: string; prevId?: string } = {}, action: HttpStreamFormat['action'] = 'send'): PublishItem {
  return {
    channel, ...ids, meta: {}, noSeq: false,
    formats: { 'http-stream': { action, content: Buffer.from(content) } },
  };
}
