import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { flatten } from '../grip/headers.js';
import type { ChannelSub, HeaderList, KeepAlive, Link, PublishItem } from '../grip/types.js';
import { isKgError } from '../errors.js';
import type { PositionedSubscriber } from '../hub/hub.js';
import type { Limits } from '../config.js';
import type { Logger } from '../log.js';
import type { CloseReason, Metrics } from '../metrics.js';
import { isGoneEnd, type GoneLink, type GoneNotifier } from '../origin/gone-link.js';
import type { FetchedPage, NextLinks } from '../origin/link-fetch.js';
import type { ConnectionUsage } from '../usage/usage-ledger.js';
import type { ChunkWriter, CoalesceState } from './chunk-writer.js';
import { timerMs, type Clock, type Timer } from './clock.js';
import { limitChannels, reportFilterError, type ChannelLimit, type ChannelSubscriptions, type HoldMetrics, type OpenHolds } from './hold-ports.js';
import type { KeepAliveMember, KeepAliveWheel } from './keep-alive-wheel.js';
import { filterItem, hasActiveFilters, responseBodyRenderer, ResponseFilterError, type FilterContext, type ResponseBodyRenderer } from '../filters/filters.js';
import { MetaLimitError, SubscriptionMeta } from '../filters/sub-meta.js';

// An HTTP stream (docs/grip.md, "Streams"), also used for paged streaming (no hold, only a next link).
// Headers and the initial body go out at once; published http-stream content is appended.
//
//   starting ──initial body written──▶ holding ◀──page appended── fetching
//      │                                  │  ──next-link timeout / hint / id gap──▲
//      │                                  │  ──behind the channel (recover)───────┘
//      │                                  │ close item · client gone · slow client ·
//      └──── origin error ────────────────┴──── page without hold or link · shutdown ───▶ closed
//
// On closing, the origin's gone link (if any) is POSTed unless the origin ended the stream itself
// (a close item, a page without hold or link).
//
// Items that arrive while starting or fetching wait in a bounded queue; close() runs once and
// releases subscriptions and timers. The first channels are subscribed with their prev-ids, so
// the hub can compare them with the channels' positions (docs/grip.md, "Reliability"): a stream that is behind is
// caught up from history, or recover() fetches the next link. Pages from the next link are the
// recovery itself and are not compared again.
//
// A held stream is mostly idle and there may be 100,000 of them, so it keeps little: no closure
// of its own (one shared close listener finds the hold through a WeakMap), keep-alives on the
// shared wheel, the id map and the queue created only when first needed, and nothing of the
// request or the origin's response once the initial body is through.
//
// Filters (docs/grip.md, "Meta and filters"): a stream whose channels have no filter takes the path above, the same
// content Buffer for every stream. One with filters (or an item whose format names content
// filters) runs them per item, with its subscription meta and its per-channel ids; build-id
// also renders the initial body and every next-link page as they are written.

const EMPTY_IDS: ReadonlyMap<string, string> = new Map();
const EMPTY_BODY = Buffer.alloc(0);

/** The hold on each response, for the one close listener all stream holds share. */
const holdsByResponse = new WeakMap<ServerResponse, StreamHold>();

function onResponseClose(this: ServerResponse): void {
  holdsByResponse.get(this)?.close('client_gone');
}

function uncork(socket: Socket): void {
  socket.uncork();
}

const MAX_FETCH_ATTEMPTS = 5;

/** What a stream is given from the sidecar (one for all of them). */
export interface StreamHoldDeps {
  hub: ChannelSubscriptions;
  holds: OpenHolds;
  channelLimit: ChannelLimit;
  metrics: HoldMetrics & Pick<Metrics, 'originErrors' | 'deliveriesDropped'>;
  /** Counts one published item written to a stream (kong_grip_messages_sent_total, batched per tick). */
  countStreamSent: () => void;
  /** Shared by all stream holds: published content to sockets, framed once per item. */
  chunks: Pick<ChunkWriter, 'write'>;
  /** Shared by all stream holds: one timer for every keep-alive. */
  keepAlives: Pick<KeepAliveWheel, 'add' | 'remove' | 'currentTick'>;
  links: NextLinks;
  log: Pick<Logger, 'warn'>;
  limits: Pick<Limits, 'maxQueueItems' | 'maxQueueBytes' | 'maxMetaKeys' | 'maxMetaBytes'>;
  clock: Clock;
  gone: GoneNotifier;
}

export interface StreamHoldOptions {
  code: number;
  reason: string;
  headers: HeaderList;
  initialBody: Buffer | IncomingMessage;
  channels: readonly ChannelSub[];
  /** The connection's subscription meta (Grip-Set-Meta, hold.meta), read by the filters. */
  meta?: SubscriptionMeta;
  keepAlive?: KeepAlive;
  nextLink?: Link;
  /** Where the client request was forwarded: every next link of the chain is checked against it. */
  requestUrl: URL;
  /** The connection's usage meter: each published item written counts, with its content's bytes. */
  usage?: ConnectionUsage | undefined;
  /**
   * The first answer's rel=gone link (later pages cannot change it, as in Pushpin), POSTed when
   * the stream ends without the origin's doing (a close item, a last page).
   */
  goneLink?: GoneLink;
}

type State = 'starting' | 'holding' | 'fetching' | 'closed';

export class StreamHold implements PositionedSubscriber, CoalesceState, KeepAliveMember {
  private state: State = 'starting';
  /** recover() came while the initial body was still being written. */
  private isRecoveryWanted = false;
  private channels: ChannelSub[] = [];
  /** Some channel has a filter the proxy runs: items take the per-connection path. */
  private isFiltered = false;
  private meta: SubscriptionMeta | undefined;
  /** build-id rendering of the origin body being written (initial body or page), if any channel has it. */
  private renderer: ResponseBodyRenderer | undefined;
  /** Per channel, the id of the last item this client has (from prev-id, then delivered items). */
  private lastIds: Map<string, string> | undefined;
  private nextLink: Link | undefined;
  private pending: PublishItem[] | undefined;
  private keepAlive: KeepAlive | undefined;
  private nextLinkTimer: Timer | undefined;
  /** The origin body being appended now (initial body or a page): destroyed if the stream closes first. */
  private reading: IncomingMessage | undefined;
  /** Cancels the next-link fetch in flight, or the wait before its retry. */
  private fetchAbort: AbortController | undefined;
  private retryTimer: Timer | undefined;
  /** Only with a next link (which the fetches check against it): a URL and its strings are a few hundred bytes a stream. */
  private readonly requestUrl: URL | undefined;
  private readonly goneLink: GoneLink | undefined;
  private readonly startedAt: number;
  private readonly usage: ConnectionUsage | undefined;
  lastWriteTick = 0;
  corkedTick = 0;
  keepAliveMark = 0;
  keepAliveTicks = 0;
  keepAliveSlot = -1;

  constructor(private readonly deps: StreamHoldDeps, private readonly res: ServerResponse, options: StreamHoldOptions) {
    this.startedAt = deps.clock.now();
    // Next links come only from a page of a next link, so a stream without one never fetches.
    this.requestUrl = options.nextLink === undefined ? undefined : options.requestUrl;
    this.usage = options.usage;
    this.goneLink = options.goneLink;
    holdsByResponse.set(res, this);
    res.on('close', onResponseClose); // not once(): that wraps it in a closure per response
    deps.metrics.connections.inc({ kind: 'stream' });
    // The head and an initial body already received from the origin go out in one write.
    if (res.socket !== null) {
      res.socket.cork();
      process.nextTick(uncork, res.socket);
    }
    deps.holds.add(this);
    res.writeHead(options.code, options.reason, flatten(options.headers));
    res.flushHeaders();
    this.nextLink = options.nextLink;
    this.meta = options.meta;
    this.setChannels(options.channels, true);
    this.renderer = this.rendererFor(options.channels);
    this.setKeepAlive(options.keepAlive);
    this.begin(options.initialBody, options.channels.length === 0);
  }

  private begin(initialBody: Buffer | IncomingMessage, isPaged: boolean): void {
    // Usually the origin's (small) body came whole with its head (`complete`; it waits in the
    // response's buffer): written now, with no async iteration.
    if (!Buffer.isBuffer(initialBody) && !initialBody.complete) {
      void this.beginStreaming(initialBody, isPaged);
      return;
    }
    this.appendComplete(initialBody);
    if (this.state === 'closed') return;
    if (isPaged) void this.fetchNext();
    else this.resume();
  }

  private async beginStreaming(initialBody: IncomingMessage, isPaged: boolean): Promise<void> {
    if (!(await this.appendBody(initialBody))) return;
    if (isPaged) await this.fetchNext();
    else this.resume();
  }

  deliver(item: PublishItem): void {
    if (this.state === 'closed' || item.formats['http-stream'] === undefined) return;
    if (this.state !== 'holding') {
      const pending = (this.pending ??= []);
      if (pending.length >= this.deps.limits.maxQueueItems) {
        this.deps.log.warn({ channel: item.channel }, 'stream queue full while busy; closing');
        this.close('slow_consumer');
        return;
      }
      pending.push(item);
      return;
    }
    this.apply(item);
  }

  /** First-subscription refresh (docs/grip.md, "Long-polling"): fetch the next link, if there is one, as for a hint. */
  refresh(): void {
    if (this.state !== 'holding' || this.nextLink === undefined) return;
    void this.fetchNext();
  }

  /** This stream's prev-id is behind the channel and history could not help (docs/grip.md, "Reliability"): fetch the next link. */
  recover(): void {
    if (this.nextLink === undefined) return; // nothing to recover from (docs/grip.md, "Streams")
    if (this.state === 'starting') this.isRecoveryWanted = true;
    else if (this.state === 'holding') this.recoverFromOrigin();
  }

  /** Shutdown: end the response cleanly; an EventSource reconnects (elsewhere) with its Last-Event-ID. */
  drain(): void {
    this.end('shutdown');
  }

  /** The origin's next-link answer covers what is queued so far (Pushpin clears the queue). */
  private recoverFromOrigin(): void {
    this.pending = undefined;
    void this.fetchNext();
  }

  private apply(item: PublishItem): void {
    const format = item.formats['http-stream'];
    if (format === undefined) return;
    const last = this.lastIds?.get(item.channel);
    // The item this client already has (a recovery page carried it): not again.
    if (last !== undefined && item.id === last) return;
    // A prev-id that does not follow what this client has means a missed item: recover from
    // the origin (docs/grip.md, "Reliability") rather than deliver out of sequence. Without a next link we cannot.
    if (this.nextLink !== undefined && last !== undefined && item.prevId !== undefined && item.prevId !== last) {
      this.recoverFromOrigin();
      return;
    }
    if (format.action === 'send') {
      if (item.id !== undefined) (this.lastIds ??= new Map()).set(item.channel, item.id);
      else this.lastIds?.delete(item.channel);
    }
    let content = format.content;
    if (this.isFiltered || format.contentFilters !== undefined) {
      const filtered = this.filter(item, format.contentFilters, format.action === 'send' ? content : undefined);
      if (filtered === undefined) return;
      content = filtered;
    }
    switch (format.action) {
      case 'send':
        this.deps.countStreamSent();
        this.deps.chunks.write(this.res, content, this);
        this.usage?.delivered(item.channel, content.length);
        this.afterWrite(true);
        this.nextLinkTimer?.refresh();
        return;
      case 'close':
        this.end('closed_by_publish');
        return;
      case 'hint':
      case 'refresh':
        if (this.nextLink !== undefined) {
          if (this.pending !== undefined) this.pending.length = 0;
          void this.fetchNext();
        }
        return;
      default: {
        const never: never = format.action;
        throw new Error(`unhandled action ${String(never)}`);
      }
    }
  }

  /** The item's content as this stream gets it, after its channel's filters; undefined when not for this stream. */
  private filter(item: PublishItem, contentFilters: readonly string[] | undefined, content: Buffer | undefined): Buffer | undefined {
    const filters = this.channels.find((c) => c.name === item.channel)?.filters ?? [];
    const outcome = filterItem(filters, contentFilters, this.filterContext(item), content);
    if (outcome.type === 'send') return outcome.content;
    if (outcome.type === 'error') reportFilterError(this.deps, item, outcome.message);
    return undefined;
  }

  private filterContext(item: PublishItem): FilterContext {
    const prevIds = new Map<string, string | undefined>();
    for (const c of this.channels) prevIds.set(c.name, this.lastIds?.get(c.name));
    return { subMeta: this.meta?.view() ?? EMPTY_IDS, pubMeta: item.meta, prevIds };
  }

  /** build-id rendering for an origin body that comes with these channels (Pushpin uses the meta only). */
  private rendererFor(channels: readonly ChannelSub[]): ResponseBodyRenderer | undefined {
    return responseBodyRenderer(channels.map((c) => c.filters), this.meta?.view() ?? EMPTY_IDS);
  }

  /** An origin body (initial or page) through build-id, if it applies; undefined after ending the stream on a filter error. */
  private rendered(chunk: Buffer, isLast: boolean): Buffer | undefined {
    const renderer = this.renderer;
    if (renderer === undefined) return chunk;
    try {
      const out = chunk.length > 0 ? renderer.update(chunk) : chunk;
      return isLast ? Buffer.concat([out, renderer.finalize()]) : out;
    } catch (err) {
      if (!(err instanceof ResponseFilterError)) throw err;
      this.deps.log.warn({ err: err.message }, 'origin body failed its filter; ending stream');
      this.end('origin_error');
      return undefined;
    }
  }

  /** Writes bytes of this stream only (origin body, keep-alive); published items go through deps.chunks. */
  private write(bytes: Buffer, isData: boolean): void {
    if (this.state === 'closed') return;
    this.res.write(bytes);
    this.afterWrite(isData);
  }

  private afterWrite(isData: boolean): void {
    if (isData && this.keepAlive?.mode === 'idle') this.keepAliveMark = this.deps.keepAlives.currentTick();
    if (this.res.writableLength > this.deps.limits.maxQueueBytes) {
      this.deps.log.warn({ queuedBytes: this.res.writableLength }, 'slow consumer dropped');
      this.close('slow_consumer');
    }
  }

  /** Called by the keep-alive wheel when this stream has been quiet for its keep-alive timeout. */
  sendKeepAlive(): void {
    if (this.keepAlive !== undefined) this.write(this.keepAlive.content, false);
  }

  /** Writes a body that has fully arrived: a buffer, or an origin response already complete. */
  private appendComplete(body: Buffer | IncomingMessage): void {
    if (Buffer.isBuffer(body)) {
      this.writeBody(body, true);
      return;
    }
    for (let chunk: Buffer | null = body.read(); chunk !== null; chunk = body.read()) {
      if (!this.writeBody(chunk, false)) break;
    }
    body.resume(); // lets it end, so its connection goes back to the origin pool
    this.writeBody(EMPTY_BODY, true);
  }

  /** Writes a piece of an origin body, rendered if build-id applies; false once the stream has ended. */
  private writeBody(chunk: Buffer, isLast: boolean): boolean {
    if (this.state === 'closed') return false;
    const out = this.rendered(chunk, isLast);
    if (out === undefined) return false;
    if (out.length > 0) this.write(out, true);
    return !this.isClosed();
  }

  /** Writes a body to the client; false if the stream ended meanwhile. */
  private async appendBody(body: Buffer | IncomingMessage): Promise<boolean> {
    if (Buffer.isBuffer(body) || body.complete) {
      this.appendComplete(body);
      return this.state !== 'closed';
    }
    this.reading = body;
    try {
      for await (const chunk of body) {
        if (this.state === 'closed' || !this.writeBody(chunk as Buffer, false)) {
          body.destroy();
          return false;
        }
      }
      if (!this.writeBody(EMPTY_BODY, true)) return false;
    } catch (err) {
      if (this.isClosed()) return false; // destroyed by close(): the client left
      this.deps.log.warn({ err: (err as Error).message }, 'origin body failed mid-stream');
      this.end('origin_error');
      return false;
    } finally {
      this.reading = undefined;
    }
    return this.state !== 'closed';
  }

  private resume(): void {
    if (this.state === 'closed') return;
    this.state = 'holding';
    this.deps.clock.clearTimeout(this.nextLinkTimer);
    this.nextLinkTimer = undefined;
    if (this.nextLink !== undefined && this.channels.length > 0) {
      this.nextLinkTimer = this.deps.clock.setTimeout(() => void this.fetchNext(), timerMs(this.nextLink.timeoutSec));
    }
    if (this.isRecoveryWanted) {
      this.isRecoveryWanted = false;
      this.recoverFromOrigin();
      return;
    }
    const pending = this.pending;
    if (pending === undefined) return;
    while (pending.length > 0 && this.state === 'holding') this.apply(pending.shift() as PublishItem);
  }

  /** Fetches the next link and appends it, following further links of paged responses. */
  private async fetchNext(): Promise<void> {
    if (this.state === 'closed' || this.state === 'fetching' || this.nextLink === undefined) return;
    this.state = 'fetching';
    this.deps.clock.clearTimeout(this.nextLinkTimer);
    for (;;) {
      const link: Link = this.nextLink as Link;
      const page = await this.fetchWithRetries(link.url);
      if (page === undefined) return;
      if (this.isClosed()) {
        // The stream ended while the page was fetched (a fetcher that did not cancel): unread.
        if (!Buffer.isBuffer(page.body)) page.body.destroy();
        return;
      }
      const instruct = page.instruct;
      // As Pushpin: the page's instruct is taken before its body, so its meta and filters render it.
      if (instruct !== undefined && !this.updateMeta(instruct.meta)) return;
      this.renderer = instruct === undefined ? undefined : this.rendererFor(instruct.hold?.channels ?? []);
      if (!(await this.appendBody(page.body))) return;
      if (instruct?.hold !== undefined) {
        this.setChannels(instruct.hold.channels, false);
        this.setKeepAlive(instruct.hold.keepAlive);
        this.nextLink = instruct.nextLink;
        this.resume();
        return;
      }
      if (instruct?.nextLink === undefined) {
        this.end('completed');
        return;
      }
      this.nextLink = instruct.nextLink;
    }
  }

  /** Merges a page's meta into the connection's; false after ending the stream when it is over the limits. */
  private updateMeta(fields: Readonly<Record<string, string>>): boolean {
    const entries = Object.entries(fields);
    if (entries.length === 0) return true;
    this.meta ??= new SubscriptionMeta({ maxKeys: this.deps.limits.maxMetaKeys, maxBytes: this.deps.limits.maxMetaBytes });
    try {
      this.meta.apply(entries);
      return true;
    } catch (err) {
      if (!(err instanceof MetaLimitError)) throw err;
      this.deps.log.warn({ err: err.message }, 'next-link answer over the meta limits; ending stream');
      this.end('origin_error');
      return false;
    }
  }

  private async fetchWithRetries(url: string): Promise<FetchedPage | undefined> {
    const requestUrl = this.requestUrl;
    // Kept whenever the stream started with a next link, the only way to reach a fetch.
    if (requestUrl === undefined) throw new Error('next-link fetch on a stream that started without a next link');
    for (let attempt = 0; ; attempt++) {
      const abort = (this.fetchAbort = new AbortController());
      try {
        return await this.deps.links.fetch(url, this.lastIds ?? EMPTY_IDS, { requestUrl, signal: abort.signal });
      } catch (err) {
        if (this.isClosed()) return undefined; // cancelled: the stream ended, not an origin error
        this.deps.metrics.originErrors.inc({ kind: 'next_link' });
        // A link the outbound policy refused stays refused: no retries.
        if (attempt + 1 >= MAX_FETCH_ATTEMPTS || isKgError(err, 'KG_ERR_LINK_REFUSED')) {
          this.deps.log.warn({ err: (err as Error).message, url }, 'next link failed; ending stream');
          this.end('origin_error');
          return undefined;
        }
        const delayMs = 1000 * 2 ** attempt + Math.floor(Math.random() * 1000);
        // Resolved by the timer, or by close() (which clears it), so nothing waits on a closed stream.
        await new Promise<void>((resolve) => {
          this.retryTimer = this.deps.clock.setTimeout(resolve, delayMs);
          abort.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        this.retryTimer = undefined;
        if (this.isClosed()) return undefined;
      }
    }
  }

  /** State re-read after an await, where TypeScript's narrowing no longer holds. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /** `isFirst`: the channels of the origin's first answer, compared with the channels' positions. */
  private setChannels(requested: readonly ChannelSub[], isFirst: boolean): void {
    const next = limitChannels(requested, this.deps.channelLimit);
    const nextNames = new Set(next.map((c) => c.name));
    for (const c of this.channels) {
      if (!nextNames.has(c.name)) {
        this.deps.hub.unsubscribe(c.name, this);
        this.lastIds?.delete(c.name);
      }
    }
    this.channels = next;
    this.isFiltered = next.some((c) => hasActiveFilters(c.filters));
    for (const c of next) {
      if (c.prevId !== undefined) (this.lastIds ??= new Map()).set(c.name, c.prevId);
      this.deps.hub.subscribe(c.name, this, isFirst ? c.prevId : undefined);
    }
  }

  private setKeepAlive(keepAlive: KeepAlive | undefined): void {
    this.deps.keepAlives.remove(this);
    this.keepAlive = keepAlive;
    if (keepAlive !== undefined) this.deps.keepAlives.add(this, timerMs(keepAlive.timeoutSec));
  }

  /** Ends the response cleanly (terminating chunk). */
  private end(reason: CloseReason): void {
    if (this.state === 'closed') return;
    this.res.end();
    this.release(reason);
  }

  close(reason: CloseReason): void {
    if (this.state === 'closed') return;
    this.release(reason);
    if (!this.res.writableEnded) this.res.destroy();
  }

  private release(reason: CloseReason): void {
    this.state = 'closed';
    this.deps.keepAlives.remove(this);
    this.deps.clock.clearTimeout(this.nextLinkTimer);
    this.deps.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // The origin side goes with the client: the body being read, the next-link fetch in flight.
    this.fetchAbort?.abort();
    this.fetchAbort = undefined;
    if (this.reading !== undefined && !this.reading.complete) this.reading.destroy();
    this.reading = undefined;
    this.pending = undefined;
    this.res.off('close', onResponseClose);
    holdsByResponse.delete(this.res);
    this.deps.holds.delete(this);
    for (const c of this.channels) this.deps.hub.unsubscribe(c.name, this);
    this.deps.metrics.connections.dec({ kind: 'stream' });
    this.deps.metrics.holdsClosed.inc({ kind: 'stream', reason });
    this.deps.metrics.holdDuration.observe({ kind: 'stream' }, (this.deps.clock.now() - this.startedAt) / 1000);
    if (this.goneLink !== undefined && isGoneEnd(reason)) this.deps.gone.notify(this.goneLink);
  }
}
