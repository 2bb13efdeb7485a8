import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { isKgError, KgError } from '../errors.js';
import { flatten, rawToList, relayResponseHeaders, withoutHeaders } from '../grip/headers.js';
import { isGripResponse, needsBufferedBody, parseInstruct } from '../grip/instruct.js';
import type { ChannelSub, HeaderList, Instruct } from '../grip/types.js';
import { gripLastHeaders, type HoldDeps } from './hold-deps.js';
import { ResponseHold } from './response-hold.js';
import { StreamHold } from './stream-hold.js';
import { readBody } from '../origin/origin-client.js';

// One client HTTP request: forward it to the origin, then either relay the answer (not GRIP)
// or carry out the origin's instructions (spec 3). Retries re-send the original request, so
// the client body is kept, up to maxRequestBodyBytes, while it streams to the origin.

export interface ProxyTarget {
  url: URL;
  /** Headers for the origin, already cleaned by the forwarding rules. */
  headers: HeaderList;
}

const PROXY_ERROR_TEXT = 'Error while proxying to origin.\n';
/** A Last-Event-ID used as a prev-id must fit in a Grip-Last parameter unquoted. */
const USABLE_LAST_EVENT_ID = /^[\x21-\x7e]{1,256}$/;
const GRIP_LAST_SPECIALS = /[,;"\\]/;
const REQUEST_TOO_LARGE_TEXT = 'Request too large to accept GRIP instruct.\n';

/** The head says there is no body (RFC 9112 6.3: no Content-Length and no Transfer-Encoding, or a length of 0). */
function hasNoBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

export class ProxySession {
  private readonly keptBody: Buffer[] = [];
  private keptBytes = 0;
  private bodyOverLimit = false;
  /** The long-poll currently held for this request, if any (a refresh replaces it). */
  private hold: ResponseHold | undefined;
  /** The origin is being asked again because the hold was behind its channel: do not compare its answer again. */
  private isPositionRecovery = false;

  constructor(
    private readonly deps: HoldDeps,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly target: ProxyTarget,
  ) {}

  async run(): Promise<void> {
    let originRes: IncomingMessage;
    const request = { method: this.req.method ?? 'GET', url: this.target.url, headers: this.target.headers };
    try {
      if (hasNoBody(this.req)) {
        // No body to stream (a GET): a whole request, which the origin client may send again
        // if a kept-alive connection turns out to be closed.
        originRes = await this.deps.origin.request(request);
      } else {
        const call = await this.deps.origin.start(request);
        this.streamBody(call.outgoing);
        originRes = await call.response;
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    await this.handleOriginResponse(originRes);
  }

  /**
   * Streams the client body to the origin, keeping a copy for retries. The listeners go once the
   * body has ended, so a held connection does not keep this session, the origin request and its
   * response alive through them.
   */
  private streamBody(outgoing: ClientRequest): void {
    const req = this.req;
    if (req.complete && req.readableLength === 0) {
      // Already received whole and empty (a GET): nothing to stream or keep, no listeners.
      outgoing.end();
      return;
    }
    const onData = (chunk: Buffer): void => {
      outgoing.write(chunk);
      if (this.bodyOverLimit) return;
      this.keptBytes += chunk.length;
      if (this.keptBytes > this.deps.limits.maxRequestBodyBytes) {
        this.bodyOverLimit = true;
        this.keptBody.length = 0;
      } else {
        this.keptBody.push(chunk);
      }
    };
    const onEnd = (): void => {
      detach();
      outgoing.end();
    };
    const onClose = (): void => {
      detach();
      if (!req.complete) outgoing.destroy();
    };
    const detach = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
    };
    // on(), not once(): detach() removes them, and once() would wrap each in another closure.
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  }

  /** `replacing`: the hold a refresh asked about; it keeps holding until the answer is applied. */
  private async handleOriginResponse(originRes: IncomingMessage, replacing?: ResponseHold): Promise<void> {
    const headers = rawToList(originRes.rawHeaders);
    if (!isGripResponse(headers)) {
      // A refresh answered without GRIP: that answer goes to the client and ends the hold.
      this.relay(originRes);
      replacing?.supersede();
      return;
    }
    if (this.bodyOverLimit) {
      originRes.resume();
      this.sendText(400, REQUEST_TOO_LARGE_TEXT);
      replacing?.supersede();
      return;
    }
    let instruct: Instruct;
    const head = { code: originRes.statusCode ?? 502, reason: originRes.statusMessage ?? '', headers };
    const context = { requestUrl: this.target.url.href };
    try {
      if (needsBufferedBody(headers)) {
        instruct = parseInstruct({ ...head, body: await readBody(originRes, this.deps.limits.maxInstructBodyBytes) }, context);
      } else {
        instruct = parseInstruct(head, context);
        if (instruct.hold?.mode === 'response' || (instruct.hold === undefined && instruct.nextLink === undefined)) {
          // A long-poll's body is its timeout response; a plain GRIP answer is small too.
          instruct.body = await readBody(originRes, this.deps.limits.maxInstructBodyBytes);
        }
      }
      if (instruct.code < 100) {
        throw new KgError('KG_ERR_INSTRUCT_INVALID', `Grip-Status ${instruct.code} cannot be sent over HTTP (must be 100-999)`);
      }
    } catch (err) {
      originRes.resume();
      if (replacing !== undefined) {
        this.refreshFailed(replacing, err);
        return;
      }
      this.fail(err);
      return;
    }
    if (replacing !== undefined) {
      // Answered while the instruct body was read: drop the answer.
      if (!replacing.isHolding) {
        originRes.resume();
        return;
      }
      // Apply first, then release the old hold, so channels both share never lose their subscription.
      this.apply(instruct, originRes);
      replacing.supersede();
      return;
    }
    this.apply(instruct, originRes);
  }

  private apply(instruct: Instruct, originRes: IncomingMessage): void {
    this.hold = undefined;
    const checkPosition = !this.isPositionRecovery;
    this.isPositionRecovery = false;
    const hold = instruct.hold;
    const headers = withoutHeaders(instruct.headers, ['content-length']);
    if (hold?.mode === 'response') {
      const responseHold = new ResponseHold(this.deps, this.res, {
        channels: hold.channels,
        timeoutSec: hold.timeoutSec,
        timeoutResponse: { code: instruct.code, reason: instruct.reason, headers, body: instruct.body ?? Buffer.alloc(0) },
        retry: (lastIds, isPositionRecovery) => void this.retry(lastIds, isPositionRecovery),
        refresh: (lastIds) => void this.refresh(lastIds),
        checkPosition,
      });
      this.hold = responseHold;
      this.deps.metrics.requests.inc({ outcome: 'hold_response' });
      return;
    }
    if (hold?.mode === 'stream' || instruct.nextLink !== undefined) {
      const options = {
        code: instruct.code, reason: instruct.reason, headers,
        initialBody: instruct.body ?? originRes,
        channels: this.withLastEventId(hold?.channels ?? []),
        ...(hold?.keepAlive ? { keepAlive: hold.keepAlive } : {}),
        ...(instruct.nextLink ? { nextLink: instruct.nextLink } : {}),
      };
      new StreamHold(this.deps, this.res, options);
      this.deps.metrics.requests.inc({ outcome: hold ? 'hold_stream' : 'paged' });
      return;
    }
    const body = instruct.body ?? Buffer.alloc(0);
    this.res.writeHead(instruct.code, instruct.reason, [...flatten(headers), 'Content-Length', String(body.length)]);
    this.res.end(body);
    this.deps.metrics.requests.inc({ outcome: 'grip_response' });
  }

  /**
   * On routes listed in nats.jetstream.lastEventIdPaths, an SSE client's Last-Event-ID is where it
   * stands on each channel the origin gave without a prev-id, so it is caught up from history.
   */
  private withLastEventId(channels: ChannelSub[]): ChannelSub[] {
    const paths = this.deps.lastEventIdPaths;
    if (paths.length === 0 || channels.length === 0) return channels;
    const id = this.req.headers['last-event-id'];
    if (typeof id !== 'string' || id === '') return channels;
    const path = (this.req.url ?? '/').split('?')[0] as string;
    if (!paths.some((p) => path.startsWith(p))) return channels;
    if (!USABLE_LAST_EVENT_ID.test(id) || GRIP_LAST_SPECIALS.test(id)) {
      this.deps.log.debug({ length: id.length }, 'Last-Event-ID not usable as a prev-id; ignored');
      return channels;
    }
    return channels.map((c) => (c.prevId === undefined ? { ...c, prevId: id } : c));
  }

  /** Asks the origin again with the original request plus Grip-Last (hint, a gap in ids, or a hold behind its channel). */
  private async retry(lastIds: ReadonlyMap<string, string>, isPositionRecovery = false): Promise<void> {
    if (this.res.destroyed) return;
    this.isPositionRecovery = isPositionRecovery;
    try {
      const originRes = await this.deps.origin.request(
        { method: this.req.method ?? 'GET', url: this.target.url, headers: [...this.target.headers, ...gripLastHeaders(lastIds)] },
        Buffer.concat(this.keptBody),
      );
      if (this.res.destroyed) {
        originRes.resume();
        return;
      }
      await this.handleOriginResponse(originRes);
    } catch (err) {
      this.fail(err);
    }
  }

  /** First-subscription refresh of a long-poll: the hold keeps holding until the origin answers. */
  private async refresh(lastIds: ReadonlyMap<string, string>): Promise<void> {
    const current = this.hold;
    if (current === undefined || this.res.destroyed) return;
    let originRes: IncomingMessage;
    try {
      originRes = await this.deps.origin.request(
        { method: this.req.method ?? 'GET', url: this.target.url, headers: [...this.target.headers, ...gripLastHeaders(lastIds)] },
        Buffer.concat(this.keptBody),
      );
    } catch (err) {
      this.refreshFailed(current, err);
      return;
    }
    // Answered by a published item or the timeout while the origin was asked: drop the answer.
    if (this.res.destroyed || !current.isHolding) {
      originRes.resume();
      return;
    }
    await this.handleOriginResponse(originRes, current);
  }

  private refreshFailed(hold: ResponseHold, err: unknown): void {
    const kg = isKgError(err) ? err : new KgError('KG_ERR_ORIGIN_UNREACHABLE', String(err), { cause: err });
    this.deps.log.warn({ code: kg.code, origin: this.target.url.origin, err: kg.message }, 'refresh failed; still holding');
    hold.refreshFailed();
  }

  private relay(originRes: IncomingMessage): void {
    this.res.writeHead(originRes.statusCode ?? 502, originRes.statusMessage, flatten(relayResponseHeaders(originRes.rawHeaders)));
    originRes.pipe(this.res);
    originRes.once('error', () => this.res.destroy());
    originRes.once('aborted', () => this.res.destroy());
    this.res.once('close', () => { if (!originRes.complete) originRes.destroy(); });
    this.deps.metrics.requests.inc({ outcome: 'relayed' });
  }

  /** Turns a failure into the client-visible answer: Pushpin's text, then what went wrong. */
  private fail(err: unknown): void {
    const kg = isKgError(err) ? err : new KgError('KG_ERR_ORIGIN_UNREACHABLE', String(err), { cause: err });
    const level = kg.code === 'KG_ERR_INSTRUCT_INVALID' || kg.code === 'KG_ERR_INSTRUCT_TOO_LARGE' ? 'error' : 'warn';
    this.deps.log[level]({ code: kg.code, origin: this.target.url.origin, err: kg.message }, 'request failed');
    this.deps.metrics.requests.inc({ outcome: kg.code });
    if (kg.code === 'KG_ERR_ORIGIN_UNREACHABLE' || kg.code === 'KG_ERR_ORIGIN_TIMEOUT') {
      this.deps.metrics.originErrors.inc({ kind: kg.code === 'KG_ERR_ORIGIN_TIMEOUT' ? 'timeout' : 'unreachable' });
    }
    const detail = kg.code === 'KG_ERR_INSTRUCT_INVALID' || kg.code === 'KG_ERR_INSTRUCT_TOO_LARGE'
      ? `Invalid GRIP instructions from origin ${this.target.url.origin}: ${kg.message}\n`
      : `${kg.message}\n`;
    this.sendText(kg.status || 502, kg.code === 'KG_ERR_REQUEST_TOO_LARGE' ? REQUEST_TOO_LARGE_TEXT : PROXY_ERROR_TEXT + detail);
  }

  private sendText(status: number, text: string): void {
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    const body = Buffer.from(text);
    this.res.writeHead(status, ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(body.length)]);
    this.res.end(body);
  }
}
