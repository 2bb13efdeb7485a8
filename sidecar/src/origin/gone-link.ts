import type { Logger } from '../log.js';
import type { CloseReason, Metrics } from '../metrics.js';
import type { OriginPort } from './origin-client.js';
import type { OutboundCheck } from './outbound-policy.js';

// Gone-link notifications (Grip-Link rel=gone, docs/grip.md "Instructions in the origin's response"): when a held session ends
// and the origin did not end it itself, an empty POST tells the origin that this client has gone
// (presence, cleanup). Once, best effort: no retry, nothing of the client's request (no cookies,
// no credentials), Grip-Sig and Grip-Feature added by the origin client as on every origin request.
// The URL is checked by the outbound policy first, against the URL the client request was
// forwarded to, like a next link: a refused URL gets nothing.

/** A gone link as a hold keeps it: where to POST, and the request it belongs to (for the policy). */
export interface GoneLink {
  /** Absolute http(s) URL, resolved against the request URL by the parser. */
  url: string;
  /** Where the client request was forwarded. */
  requestUrl: URL;
}

/** What a hold calls when its session ends for a reason the origin did not cause. */
export interface GoneNotifier {
  /** Fire and forget: never throws, never waits. */
  notify(link: GoneLink): void;
}

/**
 * Ends the origin caused itself: a published response or close, the origin's CLOSE or DISCONNECT,
 * a stream whose last page ended it, an OPEN it refused. It knows of these; no gone link.
 */
const ENDED_BY_ORIGIN: ReadonlySet<CloseReason> = new Set<CloseReason>(['published', 'closed_by_publish', 'completed', 'origin_closed', 'rejected']);

/**
 * Whether a session that ended for `reason` has a gone link sent: the client left or closed,
 * timed out, was too slow, the sidecar shut down or failed, or the origin failed to answer.
 */
export function isGoneEnd(reason: CloseReason): boolean {
  return !ENDED_BY_ORIGIN.has(reason);
}

/** Outcomes, as counted in kong_grip_gone_links_total{outcome}. */
export type GoneOutcome = 'sent' | 'refused' | 'failed';

const EMPTY = Buffer.alloc(0);
const EMPTY_BODY_HEADERS: Array<[string, string]> = [['Content-Length', '0']];

export class GoneLinkSender implements GoneNotifier {
  /** Gone POSTs under way, so a shutdown can let them finish before it closes the origin client. */
  private readonly inFlight = new Set<Promise<void>>();

  /**
   * `policy` returns the outbound policy, or undefined while it is not built yet (listener ports
   * unknown): then every gone link is refused.
   */
  constructor(
    private readonly origin: Pick<OriginPort, 'request'>,
    private readonly policy: () => OutboundCheck | undefined,
    private readonly metrics: Pick<Metrics, 'goneLinks'>,
    private readonly log: Pick<Logger, 'warn' | 'debug'>,
  ) {}

  notify(link: GoneLink): void {
    const sending = this.send(link);
    this.inFlight.add(sending);
    void sending.finally(() => this.inFlight.delete(sending));
  }

  /**
   * Resolves once the gone POSTs under way have finished, or after `maxWaitMs`: a shutdown ends
   * every session, and their gone links should reach the origin before its connections close.
   */
  async whenIdle(maxWaitMs: number): Promise<void> {
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, maxWaitMs); }),
    ]);
    clearTimeout(timer);
  }

  private async send(link: GoneLink): Promise<void> {
    const policy = this.policy();
    const decision = policy?.(link.url, link.requestUrl);
    if (decision === undefined || !decision.allowed) {
      this.metrics.goneLinks.inc({ outcome: 'refused' });
      this.log.warn({ reason: decision?.reason ?? 'not_ready', err: decision?.allowed === false ? decision.message : undefined }, 'gone link refused');
      return;
    }
    try {
      const res = await this.origin.request({ method: 'POST', url: decision.url, headers: EMPTY_BODY_HEADERS }, EMPTY);
      res.resume(); // the answer is not used (its body should be empty); the connection goes back to the pool
      this.metrics.goneLinks.inc({ outcome: 'sent' });
      const code = res.statusCode ?? 0;
      if (code < 200 || code >= 300) this.log.debug({ status: code, origin: decision.url.origin }, 'gone link answered with an error status');
    } catch (err) {
      this.metrics.goneLinks.inc({ outcome: 'failed' });
      this.log.debug({ err: (err as Error).message, origin: decision.url.origin }, 'gone link not delivered');
    }
  }
}

/** Sends nothing: for callers that hold no GRIP sessions of their own (benchmarks, tests of other parts). */
export const NO_GONE_LINKS: GoneNotifier = { notify: () => undefined };
