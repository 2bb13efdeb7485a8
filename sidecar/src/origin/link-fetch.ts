import type { IncomingMessage } from 'node:http';
import { KgError } from '../errors.js';
import { rawToList } from '../grip/headers.js';
import { isGripResponse } from '../grip/instruct.js';
import type { Instruct } from '../grip/types.js';
import { gripLastHeaders } from './grip-last.js';
import { readGripResponse } from './grip-response.js';
import type { OriginPort } from './origin-client.js';
import type { OutboundCheck } from './outbound-policy.js';

// Next-link fetches (docs/grip.md, "Streams (stream hold)"): a GET to the link with only Grip-Last (never the
// client's cookies or credentials), whose body is appended to the stream and whose GRIP
// headers may change the hold.
//
// Every link of a chain is first checked by the outbound policy (SSRF, outbound-policy.ts)
// against the URL the client request was forwarded to, not the previous page's: a refused link
// sends nothing and fails with KG_ERR_LINK_REFUSED, which is not retried.

export interface FetchedPage {
  /** Instructions of the fetched response; absent when it carried none. */
  instruct?: Instruct;
  /** Body to append: a buffer (JSON instruct) or the response stream itself. */
  body: Buffer | IncomingMessage;
}

/** The chain a fetch belongs to. */
export interface LinkContext {
  /** Where the client request was forwarded: the policy checks every link against it. */
  requestUrl: URL;
  /** Aborted when the stream ends: cancels the origin request. */
  signal?: AbortSignal;
}

/** What a stream hold needs to follow its next link. */
export interface NextLinks {
  /** Fetches one page; throws a KgError when the link is refused, the origin fails or answers other than 2xx. */
  fetch(url: string, lastIds: ReadonlyMap<string, string>, context: LinkContext): Promise<FetchedPage>;
}

export class LinkFetcher implements NextLinks {
  /**
   * `policy` returns the outbound policy, or undefined while it is not built yet (the sidecar's
   * listener ports are known only once it listens): then every link is refused.
   */
  constructor(
    private readonly origin: Pick<OriginPort, 'request'>,
    private readonly maxInstructBodyBytes: number,
    private readonly policy: () => OutboundCheck | undefined,
  ) {}

  async fetch(url: string, lastIds: ReadonlyMap<string, string>, context: LinkContext): Promise<FetchedPage> {
    const target = this.check(url, context.requestUrl);
    const res = await this.origin.request({
      method: 'GET', url: target, headers: gripLastHeaders(lastIds), ...(context.signal ? { signal: context.signal } : {}),
    });
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300) {
      res.resume();
      throw new KgError('KG_ERR_ORIGIN_UNREACHABLE', `next link ${url} answered ${code}`);
    }
    const headers = rawToList(res.rawHeaders);
    if (!isGripResponse(headers)) return { body: res };
    return readGripResponse(res, headers, { requestUrl: url, maxBodyBytes: this.maxInstructBodyBytes, use: 'stream-page' });
  }

  private check(url: string, requestUrl: URL): URL {
    const policy = this.policy();
    if (policy === undefined) throw new KgError('KG_ERR_LINK_REFUSED', `next link ${url} refused: the outbound policy is not ready`);
    const decision = policy(url, requestUrl);
    if (!decision.allowed) throw new KgError('KG_ERR_LINK_REFUSED', `next link refused (${decision.reason}): ${decision.message}`);
    return decision.url;
  }
}
