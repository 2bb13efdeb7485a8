import type { ServerResponse } from 'node:http';
import { flatten } from '../grip/headers.js';
import { buildPublishedResponse, type ResponseParts } from '../grip/published-response.js';
import type { ChannelSub, PublishItem } from '../grip/types.js';
import type { PositionedSubscriber } from '../hub/hub.js';
import type { Limits } from '../config.js';
import type { Logger } from '../log.js';
import type { CloseReason, Metrics } from '../metrics.js';
import type { ConnectionUsage } from '../usage/usage-ledger.js';
import { isGoneEnd, type GoneLink, type GoneNotifier } from '../origin/gone-link.js';
import { timerMs, type Clock, type Timer } from './clock.js';
import { limitChannels, reportFilterError, type ChannelLimit, type ChannelSubscriptions, type HoldMetrics, type OpenHolds } from './hold-ports.js';
import { filterItem, hasActiveFilters, type FilterContext } from '../filters/filters.js';
import type { SubscriptionMeta } from '../filters/sub-meta.js';

// A long-poll (docs/grip.md, "Long-polling"). The client has been sent nothing; it gets exactly one response:
//
//   holding ──http-response item──▶ closed (item's response)
//      │ ────timeout / shutdown───▶ closed (the origin's timeout response)
//      │ ────hint / prev-id gap───▶ closed, then reask.retry (the origin decides anew)
//      │ ────behind the channel───▶ closed, then reask.retry (likewise, at accept time: docs/grip.md, "Reliability")
//      │ ────refresh answered─────▶ closed (the answer applied first: it replaces this hold)
//      │ ────refresh failed───────▶ holding (as before; a later refresh may ask again)
//      └─────client gone──────────▶ closed
//
// The origin's gone link (Grip-Link rel=gone) is POSTed when the hold closes, unless a published
// item answered it or it handed over to the origin again (retry, refresh: the new answer has its
// own); the session sends it if the client leaves during such a retry.
//
// Each channel is subscribed with its prev-id, so the hub can compare it with the channel's
// position: a hold that is behind is caught up from history, or recover() retries the origin.
// A refresh (the channel just went live on the bus, docs/grip.md, "Long-polling") asks the origin again through
// reask.refresh but keeps holding meanwhile: an item that arrives before the origin's new answer
// is still delivered, and the answer is then dropped; a refresh that fails leaves it holding.
// The hold only calls its session's OriginReask, never the other way: the session asks the
// origin, and the hold decides whether the answer still applies. close() runs once and releases
// the subscriptions and the timer.
//
// Filters (docs/grip.md, "Meta and filters") run only for a hold whose channels have some, or for an item whose format
// names content filters: a dropped item leaves the hold holding, as if it had not come.

/** What a long-poll is given from the sidecar (one for all of them). */
export interface ResponseHoldDeps {
  hub: ChannelSubscriptions;
  holds: OpenHolds;
  channelLimit: ChannelLimit;
  metrics: HoldMetrics & Pick<Metrics, 'messagesSent' | 'deliveriesDropped'>;
  log: Pick<Logger, 'warn'>;
  limits: Pick<Limits, 'maxPatchedBodyBytes'>;
  clock: Clock;
  gone: GoneNotifier;
}

const NO_META: ReadonlyMap<string, string> = new Map();

/** Items whose body-patch failed and has been logged: once per item, however many long-polls it answers. */
const loggedPatchFailures = new WeakSet<PublishItem>();

/** How a long-poll asks the origin again; its session implements it. */
export interface OriginReask {
  /**
   * The hold has ended without answering: ask the origin again (hint, a gap in the item chain,
   * or a prev-id behind the channel's position: `isPositionRecovery`) with these Grip-Last
   * values; the origin's answer goes to the client.
   */
  retry(gripLast: ReadonlyMap<string, string>, isPositionRecovery: boolean): void;
  /**
   * Ask the origin again while the hold goes on holding. Resolves with its answer, or with
   * undefined when there is none to apply (the origin failed: logged; the client is gone).
   */
  refresh(gripLast: ReadonlyMap<string, string>): Promise<RefreshAnswer | undefined>;
}

/** The origin's answer to a refresh, kept until the hold knows whether it still applies. */
export interface RefreshAnswer {
  /** Sends it to the client (a new hold, or a response); the hold that asked releases right after. */
  apply(): void;
  /** Discards it: the hold answered meanwhile. */
  drop(): void;
}

export interface ResponseHoldOptions {
  channels: readonly ChannelSub[];
  /** The connection's subscription meta (Grip-Set-Meta, hold.meta), read by the filters. */
  meta?: SubscriptionMeta;
  timeoutSec: number;
  timeoutResponse: ResponseParts;
  reask: OriginReask;
  /** Compare prev-ids with the channels' positions; off for the answer to a position recovery, so it cannot loop. */
  checkPosition: boolean;
  /** The connection's usage meter: a published response counts as one message of its body's bytes. */
  usage?: ConnectionUsage | undefined;
  /** The origin's rel=gone link, POSTed when the hold ends without the origin's doing. */
  goneLink?: GoneLink;
}

export class ResponseHold implements PositionedSubscriber {
  private state: 'holding' | 'closed' = 'holding';
  private isRefreshing = false;
  private readonly channels: ChannelSub[];
  private readonly isFiltered: boolean;
  /** Ids of items this hold was sent but its filters dropped: the channel stands there now (as in Pushpin). */
  private passedIds: Map<string, string> | undefined;
  private readonly timer: Timer;
  private readonly startedAt: number;
  private readonly onClientGone = (): void => this.close('client_gone');

  constructor(private readonly deps: ResponseHoldDeps, private readonly res: ServerResponse, private readonly options: ResponseHoldOptions) {
    this.channels = limitChannels(options.channels, deps.channelLimit);
    this.isFiltered = this.channels.some((c) => hasActiveFilters(c.filters));
    this.startedAt = deps.clock.now();
    this.timer = deps.clock.setTimeout(() => this.finish('timeout', options.timeoutResponse), timerMs(options.timeoutSec));
    res.once('close', this.onClientGone);
    deps.metrics.connections.inc({ kind: 'response' });
    deps.holds.add(this);
    for (const c of this.channels) deps.hub.subscribe(c.name, this, options.checkPosition ? c.prevId : undefined);
  }

  deliver(item: PublishItem): void {
    const format = item.formats['http-response'];
    if (this.state !== 'holding' || format === undefined) return;
    const sub = this.channels.find((c) => c.name === item.channel);
    const prevId = sub === undefined ? undefined : this.prevIdOf(sub);
    // An item that does not follow the id the origin reported means this client missed one.
    if (sub !== undefined && prevId !== undefined && item.prevId !== undefined && item.prevId !== prevId) {
      this.retryWith(new Map([[sub.name, prevId]]), false);
      return;
    }
    const isFiltered = this.isFiltered || format.contentFilters !== undefined;
    switch (format.action) {
      case 'send': {
        const response = buildPublishedResponse(this.options.timeoutResponse, format, { maxPatchedBodyBytes: this.deps.limits.maxPatchedBodyBytes });
        if (isFiltered) {
          const body = this.filter(item, sub, format.contentFilters, response.body);
          if (body === undefined) return;
          response.body = body;
        }
        if (response.patchError !== undefined) {
          // The patched body is dropped for this client, which gets the item's response with an
          // empty body, as from Pushpin. Counted per client, logged once per item.
          this.deps.metrics.deliveriesDropped.inc({ reason: 'patch' });
          if (!loggedPatchFailures.has(item)) {
            loggedPatchFailures.add(item);
            this.deps.log.warn({ channel: item.channel, id: item.id, err: response.patchError.message }, 'body-patch not applied; empty body sent');
          }
        } else {
          this.deps.metrics.messagesSent.inc({ kind: 'response' });
        }
        this.finish('published', response, item.channel);
        return;
      }
      case 'hint':
      case 'refresh':
        if (isFiltered && this.filter(item, sub, format.contentFilters, undefined) === undefined) return;
        this.retryWith(this.knownPrevIds(), false);
        return;
      case 'close':
        return; // Pushpin accepts it and does nothing for response holds.
      default: {
        const never: never = format.action;
        throw new Error(`unhandled action ${String(never)}`);
      }
    }
  }

  /** The body as this client gets it, after its channel's filters; undefined when the item is not for it. */
  private filter(item: PublishItem, sub: ChannelSub | undefined, contentFilters: readonly string[] | undefined, body: Buffer | undefined): Buffer | undefined {
    const outcome = filterItem(sub?.filters ?? [], contentFilters, this.filterContext(item, sub), body);
    if (outcome.type === 'send') return outcome.content;
    // Not for this client, yet not missed: the next item follows this one.
    if (sub !== undefined && this.prevIdOf(sub) !== undefined && item.id !== undefined) (this.passedIds ??= new Map()).set(sub.name, item.id);
    if (outcome.type === 'error') reportFilterError(this.deps, item, outcome.message);
    return undefined;
  }

  /** As Pushpin: the item's channel already stands at the item's id when its filters run. */
  private filterContext(item: PublishItem, sub: ChannelSub | undefined): FilterContext {
    const prevIds = new Map<string, string | undefined>();
    for (const c of this.channels) prevIds.set(c.name, this.prevIdOf(c));
    if (sub !== undefined && this.prevIdOf(sub) !== undefined) prevIds.set(sub.name, item.id);
    return { subMeta: this.options.meta?.view() ?? NO_META, pubMeta: item.meta, prevIds };
  }

  /** First-subscription refresh (docs/grip.md, "Long-polling"): ask the origin again, still holding meanwhile. */
  refresh(): void {
    if (this.state !== 'holding' || this.isRefreshing) return;
    this.isRefreshing = true;
    void this.refreshFromOrigin();
  }

  /** This hold's prev-id is behind the channel and history could not help (docs/grip.md, "Reliability"): retry at once. */
  recover(): void {
    if (this.state !== 'holding') return;
    this.retryWith(this.knownPrevIds(), true);
  }

  /** Shutdown: answer with the timeout response, so the client polls again (elsewhere). */
  drain(): void {
    this.finish('shutdown', this.options.timeoutResponse);
  }

  private async refreshFromOrigin(): Promise<void> {
    const answer = await this.options.reask.refresh(this.knownPrevIds());
    if (answer === undefined) {
      this.isRefreshing = false; // failed: keep holding as before
      return;
    }
    if (this.isClosed()) {
      answer.drop(); // an item, the timeout or the client answered first
      return;
    }
    // Apply first, then release this hold, so channels both share never lose their subscription.
    answer.apply();
    this.release('retry');
  }

  /** State re-read after an await, where TypeScript's narrowing no longer holds. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private knownPrevIds(): Map<string, string> {
    const ids = new Map<string, string>();
    for (const c of this.channels) {
      const prevId = this.prevIdOf(c);
      if (prevId !== undefined) ids.set(c.name, prevId);
    }
    return ids;
  }

  private prevIdOf(sub: ChannelSub): string | undefined {
    return this.passedIds?.get(sub.name) ?? sub.prevId;
  }

  private retryWith(gripLast: Map<string, string>, isPositionRecovery: boolean): void {
    this.release('retry');
    this.options.reask.retry(gripLast, isPositionRecovery);
  }

  /** `channel`: the published item's, metered once the response is written. */
  private finish(reason: CloseReason, response: ResponseParts, channel?: string): void {
    if (this.state === 'closed') return;
    const headers = flatten(response.headers);
    headers.push('Content-Length', String(response.body.length));
    // Runs from a publish, a timer or a shutdown: a head Node refuses ends this response only.
    try {
      this.res.writeHead(response.code, response.reason, headers);
      this.res.end(response.body);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message, reason }, 'long-poll response not writable; connection closed');
      this.release('error');
      this.res.destroy();
      return;
    }
    if (channel !== undefined) this.options.usage?.delivered(channel, response.body.length);
    this.release(reason);
  }

  close(reason: CloseReason): void {
    if (this.state === 'closed') return;
    this.release(reason);
    if (!this.res.writableEnded) this.res.destroy();
  }

  private release(reason: CloseReason | 'retry'): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.deps.clock.clearTimeout(this.timer);
    this.res.off('close', this.onClientGone);
    this.deps.holds.delete(this);
    for (const c of this.channels) this.deps.hub.unsubscribe(c.name, this);
    this.deps.metrics.connections.dec({ kind: 'response' });
    if (reason !== 'retry') {
      this.deps.metrics.holdsClosed.inc({ kind: 'response', reason });
      this.deps.metrics.holdDuration.observe({ kind: 'response' }, (this.deps.clock.now() - this.startedAt) / 1000);
      if (this.options.goneLink !== undefined && isGoneEnd(reason)) this.deps.gone.notify(this.options.goneLink);
    }
  }
}
