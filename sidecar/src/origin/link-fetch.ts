import type { IncomingMessage } from 'node:http';
import { KgError } from '../errors.js';
import { rawToList } from '../grip/headers.js';
import { isGripResponse } from '../grip/instruct.js';
import type { Instruct } from '../grip/types.js';
import { gripLastHeaders } from './grip-last.js';
import { readGripResponse } from './grip-response.js';
import type { OriginPort } from './origin-client.js';

// Next-link fetches (spec 3.4, 3.6.7): a GET to the link with only Grip-Last (never the
// client's cookies or credentials), whose body is appended to the stream and whose GRIP
// headers may change the hold.

export interface FetchedPage {
  /** Instructions of the fetched response; absent when it carried none. */
  instruct?: Instruct;
  /** Body to append: a buffer (JSON instruct) or the response stream itself. */
  body: Buffer | IncomingMessage;
}

/** What a stream hold needs to follow its next link. */
export interface NextLinks {
  /** Fetches one page; throws a KgError when the origin fails or answers other than 2xx. */
  fetch(url: string, lastIds: ReadonlyMap<string, string>): Promise<FetchedPage>;
}

export class LinkFetcher implements NextLinks {
  constructor(private readonly origin: Pick<OriginPort, 'request'>, private readonly maxInstructBodyBytes: number) {}

  async fetch(url: string, lastIds: ReadonlyMap<string, string>): Promise<FetchedPage> {
    const res = await this.origin.request({ method: 'GET', url: new URL(url), headers: gripLastHeaders(lastIds) });
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300) {
      res.resume();
      throw new KgError('KG_ERR_ORIGIN_UNREACHABLE', `next link ${url} answered ${code}`);
    }
    const headers = rawToList(res.rawHeaders);
    if (!isGripResponse(headers)) return { body: res };
    return readGripResponse(res, headers, { requestUrl: url, maxBodyBytes: this.maxInstructBodyBytes, use: 'stream-page' });
  }
}
