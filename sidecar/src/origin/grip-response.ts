import type { IncomingMessage } from 'node:http';
import { KgError } from '../errors.js';
import { needsBufferedBody, parseInstruct } from '../grip/instruct.js';
import type { HeaderList, Instruct } from '../grip/types.js';
import { readBody } from './origin-client.js';

// An origin response that carries GRIP instructions, read once for every caller: the forwarded
// client request, its retries and refreshes, and next-link pages. Parses the instructions and
// reads whole the body that must be known before anything is sent (a JSON instruct; a long-poll's
// timeout response), up to a byte limit; any other body stays the origin response, still
// arriving, to be relayed as it comes. The Instruct is not changed afterwards: the body read
// here travels beside it.

/** Where the body of the answer goes, which decides whether it is read whole. */
export type GripBodyUse =
  /** A client response: a long-poll's timeout response and a plain GRIP answer are read whole. */
  | 'response'
  /** Appended to a stream already open (a next-link page): relayed as it arrives; a header-instructed response hold is invalid. */
  | 'stream-page';

export interface ReadGripOptions {
  /** Absolute URL of the request; relative Grip-Link targets resolve against it. */
  requestUrl: string;
  /** A body read whole may not be larger (KG_ERR_INSTRUCT_TOO_LARGE). */
  maxBodyBytes: number;
  use: GripBodyUse;
}

export interface GripResponse {
  readonly instruct: Instruct;
  /** The body for the client: read whole, or the origin response itself, still arriving. */
  readonly body: Buffer | IncomingMessage;
}

const EMPTY = Buffer.alloc(0);

/**
 * Reads a GRIP response (`headers`: its head as a list, already found to be GRIP). Throws a
 * KgError (instructions invalid, body too large, origin failed mid-body), after which the origin
 * response has been drained or destroyed.
 */
export async function readGripResponse(res: IncomingMessage, headers: HeaderList, options: ReadGripOptions): Promise<GripResponse> {
  const head = { code: res.statusCode ?? 502, reason: res.statusMessage ?? '', headers };
  const context = { requestUrl: options.requestUrl };
  try {
    let instruct: Instruct;
    let body: Buffer | IncomingMessage;
    if (needsBufferedBody(headers)) {
      // The instructions are in the body: read it whole, then parse.
      instruct = parseInstruct({ ...head, body: await readBody(res, options.maxBodyBytes) }, context);
      body = instruct.body ?? EMPTY;
    } else {
      instruct = parseInstruct(head, context);
      body = res;
      if (options.use === 'stream-page') {
        if (instruct.hold?.mode === 'response') {
          throw new KgError('KG_ERR_INSTRUCT_INVALID', `next link ${options.requestUrl} returned a non-stream hold`);
        }
      } else if (instruct.hold?.mode === 'response' || (instruct.hold === undefined && instruct.nextLink === undefined)) {
        // A long-poll's body is its timeout response; a plain GRIP answer is small too.
        body = await readBody(res, options.maxBodyBytes);
      }
    }
    return { instruct, body };
  } catch (err) {
    res.resume();
    throw err;
  }
}
