import type { IncomingMessage } from 'node:http';
import { KgError } from '../errors.js';
import { rawToList } from '../grip/headers.js';
import { isGripResponse, needsBufferedBody, parseInstruct } from '../grip/instruct.js';
import type { Instruct } from '../grip/types.js';
import { gripLastHeaders } from '../holds/hold-deps.js';
import { readBody, type OriginClient } from './origin-client.js';

// Next-link fetches (spec 3.4, 3.6.7): a GET to the link with only Grip-Last (never the
// client's cookies or credentials), whose body is appended to the stream and whose GRIP
// headers may change the hold.

export interface FetchedPage {
  /** Instructions of the fetched response; absent when it carried none. */
  instruct?: Instruct;
  /** Body to append: a buffer (JSON instruct) or the response stream itself. */
  body: Buffer | IncomingMessage;
}

export async function fetchLink(
  origin: OriginClient, url: string, lastIds: ReadonlyMap<string, string>, maxInstructBodyBytes: number,
): Promise<FetchedPage> {
  const res = await origin.request({ method: 'GET', url: new URL(url), headers: gripLastHeaders(lastIds) });
  const code = res.statusCode ?? 0;
  if (code < 200 || code >= 300) {
    res.resume();
    throw new KgError('KG_ERR_ORIGIN_UNREACHABLE', `next link ${url} answered ${code}`);
  }
  const headers = rawToList(res.rawHeaders);
  if (!isGripResponse(headers)) return { body: res };
  const head = { code, reason: res.statusMessage ?? '', headers };
  if (needsBufferedBody(headers)) {
    const instruct = parseInstruct({ ...head, body: await readBody(res, maxInstructBodyBytes) }, { requestUrl: url });
    return { instruct, body: instruct.body ?? Buffer.alloc(0) };
  }
  const instruct = parseInstruct(head, { requestUrl: url });
  if (instruct.hold?.mode === 'response') {
    res.resume();
    throw new KgError('KG_ERR_INSTRUCT_INVALID', `next link ${url} returned a non-stream hold`);
  }
  return { instruct, body: res };
}
