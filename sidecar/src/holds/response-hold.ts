import type { ServerResponse } from 'node:http';
import { flatten } from '../grip/headers.js';
import { buildPublishedResponse, type ResponseParts } from '../grip/published-response.js';
import type { ChannelSub, PublishItem } from '../grip/types.js';
import type { PositionedSubscriber } from '../hub/hub.js';
import type { CloseReason } from '../metrics.js';
import { type HoldDeps, limitChannels, timerMs } from './hold-deps.js';

// A long-poll (spec 3.5). The client has been sent nothing; it gets exactly one response:
//
//   holding ──http-response item──▶ closed (item's response)
//      │ ────timeout / shutdown───▶ closed (the origin's timeout response)
//      │ ────hint / prev-id gap───▶ closed (session retries the origin, which decides anew)
//      │ ────behind the channel───▶ closed (likewise, at accept time: spec 5.3)
//      │ ────refresh answered─────▶ closed (superseded by what the origin answered now)
//      └─────client gone──────────▶ closed
//
// Each channel is subscribed with its prev-id, so the hub can compare it with the channel's
// position: a hold that is behind is caught up from history, or recover() retries the origin.
// A refresh (the channel just went live on the bus, spec 3.5) asks the origin again but keeps
// holding meanwhile: an item that arrives before the origin's new answer is still delivered,
// and the answer is then dropped. close() runs once and releases the subscriptions and the timer.

export interface ResponseHoldOptions {
  channels: readonly ChannelSub[];
  timeoutSec: number;
  timeoutResponse: ResponseParts;
  /**
   * Ask the origin again (hint, a gap in the item chain, or a prev-id behind the channel's
   * position: `isPositionRecovery`), with these Grip-Last values.
   */
  retry: (gripLast: ReadonlyMap<string, string>, isPositionRecovery: boolean) => void;
  /** Ask the origin again while this hold keeps holding; the session calls supersede() with the answer. */
  refresh: (gripLast: ReadonlyMap<string, string>) => void;
  /** Compare prev-ids with the channels' positions; off for the answer to a position recovery, so it cannot loop. */
  checkPosition: boolean;
}

export class ResponseHold implements PositionedSubscriber {
  private state: 'holding' | 'closed' = 'holding';
  private isRefreshing = false;
  private readonly channels: ChannelSub[];
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt = performance.now();
  private readonly onClientGone = (): void => this.close('client_gone');

  constructor(private readonly deps: HoldDeps, private readonly res: ServerResponse, private readonly options: ResponseHoldOptions) {
    this.channels = limitChannels(options.channels, deps);
    this.timer = setTimeout(() => this.finish('timeout', options.timeoutResponse), timerMs(options.timeoutSec));
    res.once('close', this.onClientGone);
    deps.metrics.connections.inc({ kind: 'response' });
    deps.holds.add(this);
    for (const c of this.channels) deps.hub.subscribe(c.name, this, options.checkPosition ? c.prevId : undefined);
  }

  deliver(item: PublishItem): void {
    const format = item.formats['http-response'];
    if (this.state !== 'holding' || format === undefined) return;
    const sub = this.channels.find((c) => c.name === item.channel);
    // An item that does not follow the id the origin reported means this client missed one.
    if (sub?.prevId !== undefined && item.prevId !== undefined && item.prevId !== sub.prevId) {
      this.retryWith(new Map([[sub.name, sub.prevId]]), false);
      return;
    }
    switch (format.action) {
      case 'send':
        this.deps.metrics.messagesSent.inc({ kind: 'response' });
        this.finish('published', buildPublishedResponse(this.options.timeoutResponse, format));
        return;
      case 'hint':
      case 'refresh':
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

  /** First-subscription refresh (spec 3.5): ask the origin again, still holding meanwhile. */
  refresh(): void {
    if (this.state !== 'holding' || this.isRefreshing) return;
    this.isRefreshing = true;
    this.options.refresh(this.knownPrevIds());
  }

  /** This hold's prev-id is behind the channel and history could not help (spec 5.3): retry at once. */
  recover(): void {
    if (this.state !== 'holding') return;
    this.retryWith(this.knownPrevIds(), true);
  }

  /** Shutdown: answer with the timeout response, so the client polls again (elsewhere). */
  drain(): void {
    this.finish('shutdown', this.options.timeoutResponse);
  }

  get isHolding(): boolean {
    return this.state === 'holding';
  }

  /** The refresh answer arrived and replaces this hold; nothing is written to the client. */
  supersede(): void {
    this.release('retry');
  }

  /** The refresh failed (origin unreachable, bad answer): keep holding as before. */
  refreshFailed(): void {
    this.isRefreshing = false;
  }

  private knownPrevIds(): Map<string, string> {
    const ids = new Map<string, string>();
    for (const c of this.channels) if (c.prevId !== undefined) ids.set(c.name, c.prevId);
    return ids;
  }

  private retryWith(gripLast: Map<string, string>, isPositionRecovery: boolean): void {
    this.release('retry');
    this.options.retry(gripLast, isPositionRecovery);
  }

  private finish(reason: CloseReason, response: ResponseParts): void {
    if (this.state === 'closed') return;
    const headers = flatten(response.headers);
    headers.push('Content-Length', String(response.body.length));
    this.res.writeHead(response.code, response.reason, headers);
    this.res.end(response.body);
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
    clearTimeout(this.timer);
    this.res.off('close', this.onClientGone);
    this.deps.holds.delete(this);
    for (const c of this.channels) this.deps.hub.unsubscribe(c.name, this);
    this.deps.metrics.connections.dec({ kind: 'response' });
    if (reason !== 'retry') {
      this.deps.metrics.holdsClosed.inc({ kind: 'response', reason });
      this.deps.metrics.holdDuration.observe({ kind: 'response' }, (performance.now() - this.startedAt) / 1000);
    }
  }
}
