import { isKgError, KgError } from '../errors.js';
import { rawToList } from '../grip/headers.js';
import type { HeaderList } from '../grip/types.js';
import { type OriginClient, readBody } from './origin-client.js';

// One WebSocket-over-HTTP POST to the origin (docs/websocket.md), reduced to an outcome the session can
// act on without catching: the origin's reply, or a failure marked retryable when the origin was
// never reached (Pushpin retries only those, since a reached origin may have acted already).

export type WsOriginOutcome =
  | { type: 'reply'; status: number; reason: string; headers: HeaderList; body: Buffer }
  | { type: 'failed'; retryable: boolean; error: KgError };

export type PostWsEvents = (url: URL, headers: HeaderList, body: Buffer) => Promise<WsOriginOutcome>;

// Errors that mean the request never reached the origin.
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

export function createWsEventsPoster(origin: OriginClient, maxResponseBytes: number): PostWsEvents {
  return async function postWsEvents(url, headers, body) {
    let reusedSocket = false;
    let answered = false;
    try {
      const call = await origin.start({ method: 'POST', url, headers });
      call.outgoing.once('socket', () => { reusedSocket = call.outgoing.reusedSocket; });
      call.outgoing.end(body);
      const res = await call.response;
      answered = true;
      const replyBody = await readBody(res, maxResponseBytes);
      return {
        type: 'reply',
        status: res.statusCode ?? 0,
        reason: res.statusMessage ?? '',
        headers: rawToList(res.rawHeaders),
        body: replyBody,
      };
    } catch (err) {
      const error = isKgError(err) ? err : new KgError('KG_ERR_ORIGIN_UNREACHABLE', `origin ${url.origin} failed: ${String(err)}`, { cause: err });
      const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
      // A kept-alive socket the origin closed meanwhile fails with ECONNRESET before anything
      // was read; Node's guidance is to retry exactly that case.
      const retryable = !answered && error.code === 'KG_ERR_ORIGIN_UNREACHABLE'
        && code !== undefined && (CONNECT_ERRORS.has(code) || (code === 'ECONNRESET' && reusedSocket));
      return { type: 'failed', retryable, error };
    }
  };
}
