import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Limits } from '../config.js';
import { isKgError, KgError } from '../errors.js';
import { flatten, rawToList, relayResponseHeaders, withoutHeaders } from '../grip/headers.js';
import { headerTextProblem, isHttpToken } from '../grip/http-text.js';
import { isGripResponse } from '../grip/instruct.js';
import { reasonPhrase } from '../grip/publish-item.js';
import type { ChannelSub, HeaderList } from '../grip/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { gripLastHeaders } from '../origin/grip-last.js';
import { readGripResponse, type GripResponse } from '../origin/grip-response.js';
import type { GoneLink } from '../origin/gone-link.js';
import type { OriginPort } from '../origin/origin-client.js';
import type { RequestTarget } from '../server/request-target.js';
import { ResponseHold, type OriginReask, type RefreshAnswer, type ResponseHoldDeps } from './response-hold.js';
import { StreamHold, type StreamHoldDeps } from './stream-hold.js';
import { MetaLimitError, SubscriptionMeta } from '../filters/sub-meta.js';

// One client HTTP request: forward it to the origin, then either relay the answer (not GRIP)
// or carry out the origin's instructions (docs/grip.md, "Instructions in the origin's response"). Retries re-send the original request, so
// the client body is kept, up to maxRequestBodyBytes, while it streams to the origin.
//
// Asking the origin again goes one way: the long-poll calls this session's OriginReask (retry
// once it has ended, refresh while it holds), the session makes the round trip and applies the
// answer (a refresh's answer only when the hold, which alone knows, says it still applies). The
// session never calls a hold.
//
// Every step is tied to the client's connection: when the client leaves, the origin request in
// flight (the first one, a retry, a refresh) is aborted, and an answer that arrives anyway is
// discarded, never turned into a hold. A pipelined request (its response still queued behind an
// earlier one on the connection) gets no 'close' from Node when the connection goes, so the
// session gives it one (tieToConnection): its hold, if any, ends, and the admission is released.

/** What a session is given from the sidecar (one for all of them). */
export interface ProxySessionDeps {
  origin: OriginPort;
  metrics: Pick<Metrics, 'requests' | 'originErrors'>;
  log: Pick<Logger, 'debug' | 'warn' | 'error'>;
  limits: Pick<Limits, 'maxRequestBodyBytes' | 'maxInstructBodyBytes' | 'maxMetaKeys' | 'maxMetaBytes'>;
  /** Request path prefixes whose SSE Last-Event-ID stands for the prev-id of their channels. */
  lastEventIdPaths: readonly string[];
  responseHolds: ResponseHoldDeps;
  streamHolds: StreamHoldDeps;
}

/** One answer of the origin, read as far as deciding what the client gets needs. */
type OriginAnswer =
  /** Not GRIP: relayed to the client as it is. */
  | { type: 'relay'; res: IncomingMessage }
  /** GRIP, but the client's body was too large to keep for retries: refused. */
  | { type: 'too-large'; res: IncomingMessage }
  | { type: 'grip'; res: IncomingMessage; grip: GripResponse };

const PROXY_ERROR_TEXT = 'Error while proxying to origin.\n';
/** A Last-Event-ID used as a prev-id must fit in a Grip-Last parameter unquoted. */
const USABLE_LAST_EVENT_ID = /^[\x21-\x7e]{1,256}$/;
const GRIP_LAST_SPECIALS = /[,;"\\]/;
const REQUEST_TOO_LARGE_TEXT = 'Request too large to accept GRIP instruct.\n';
const EMPTY = Buffer.alloc(0);
/** The origin set no subscription meta (subscriptionMeta). */
const NO_META = Symbol('no meta');

/** Responses still queued behind an earlier one on their connection, by connection: one listener per socket. */
const queuedResponses = new WeakMap<Socket, Set<ServerResponse>>();

function onQueuedSocketClose(this: Socket): void {
  const queued = queuedResponses.get(this);
  queuedResponses.delete(this);
  if (queued !== undefined) for (const res of queued) closeOrphan(res);
}

function onQueuedResponseSocket(this: ServerResponse, socket: Socket): void {
  queuedResponses.get(socket)?.delete(this);
}

/**
 * A response that never got its connection, which has closed: Node neither destroys it nor emits
 * its 'close' (it only destroys the request), so nothing else would ever release it.
 */
function closeOrphan(res: ServerResponse): void {
  if (res.socket !== null || res.destroyed) return;
  res.off('socket', onQueuedResponseSocket);
  res.destroy();
  res.emit('close');
}

/** Makes a pipelined response (no socket yet) close with its connection, as Node does for the others. */
function tieToConnection(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket as Socket | undefined;
  if (res.socket !== null || socket === undefined) return;
  if (socket.destroyed) {
    queueMicrotask(() => closeOrphan(res));
    return;
  }
  let queued = queuedResponses.get(socket);
  if (queued === undefined) {
    queuedResponses.set(socket, (queued = new Set()));
    socket.once('close', onQueuedSocketClose);
  }
  queued.add(res);
  res.once('socket', onQueuedResponseSocket);
}

/** What Node cannot write of an origin's head: the reason falls back to the standard phrase; a bad header is refused. */
function writableHead(code: number, reason: string, headers: HeaderList): { reason: string; problem?: string } {
  for (const [name, value] of headers) {
    if (!isHttpToken(name)) return { reason, problem: 'a header name Node cannot write' };
    const problem = headerTextProblem(value);
    if (problem !== undefined) return { reason, problem: `header ${name} ${problem}` };
  }
  return { reason: headerTextProblem(reason) === undefined ? reason : reasonPhrase(code) };
}

/** The head says there is no body (RFC 9112 6.3: no Content-Length and no Transfer-Encoding, or a length of 0). */
function hasNoBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

export class ProxySession implements OriginReask {
  private readonly keptBody: Buffer[] = [];
  private keptBytes = 0;
  private bodyOverLimit = false;
  /** Aborted when the client leaves: cancels whatever the session has asked the origin. */
  private readonly cancel = new AbortController();
  private readonly onClientGone = (): void => this.cancel.abort();
  /**
   * The gone link of the long-poll that handed back to this session (retry): sent if the client
   * leaves before a new answer takes over, so a session's end is reported even mid-retry.
   */
  private retryGoneLink: GoneLink | undefined;

  constructor(
    private readonly deps: ProxySessionDeps,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly target: RequestTarget,
  ) {}

  async run(): Promise<void> {
    let answer: OriginAnswer;
    tieToConnection(this.req, this.res);
    if (this.isClientGone()) {
      this.deps.metrics.requests.inc({ outcome: 'client_gone' });
      return;
    }
    this.res.once('close', this.onClientGone);
    const request = { method: this.req.method ?? 'GET', url: this.target.url, headers: this.target.headers, signal: this.cancel.signal };
    try {
      let originRes: IncomingMessage;
      if (hasNoBody(this.req)) {
        // No body to stream (a GET): a whole request, which the origin client may send again
        // if a kept-alive connection turns out to be closed.
        originRes = await this.deps.origin.request(request);
      } else {
        const call = await this.deps.origin.start(request);
        this.streamBody(call.outgoing);
        originRes = await call.response;
      }
      answer = await this.read(originRes);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.send(answer, true);
  }

  /** The client has left (its response closed, or its connection did while the response waited in the queue). */
  private isClientGone(): boolean {
    const socket = this.req.socket as Socket | undefined;
    return this.res.destroyed || this.cancel.signal.aborted || socket?.destroyed === true;
  }

  /** Nothing more can be asked of the origin for this client (no hold that may retry or refresh): stop listening. */
  private finished(): void {
    this.res.off('close', this.onClientGone);
  }

  /** Asks the origin again with the original request plus Grip-Last (hint, a gap in ids, or a hold behind its channel). */
  async retry(lastIds: ReadonlyMap<string, string>, isPositionRecovery: boolean): Promise<void> {
    if (this.isClientGone()) {
      this.sendRetryGone();
      return;
    }
    try {
      const originRes = await this.askAgain(lastIds);
      if (this.isClientGone()) {
        originRes.destroy();
        this.sendRetryGone();
        return;
      }
      // The answer to a position recovery is not compared with the channels' positions again: no loop.
      this.send(await this.read(originRes), !isPositionRecovery);
    } catch (err) {
      this.fail(err);
    }
  }

  /** First-subscription refresh of a long-poll: the hold keeps holding until it applies or drops the answer. */
  async refresh(lastIds: ReadonlyMap<string, string>): Promise<RefreshAnswer | undefined> {
    if (this.isClientGone()) return undefined;
    let answer: OriginAnswer;
    try {
      const originRes = await this.askAgain(lastIds);
      // Answered by a published item or the timeout, or the client went, while the origin was asked.
      if (this.isClientGone() || this.res.writableEnded) {
        originRes.destroy();
        return undefined;
      }
      answer = await this.read(originRes);
    } catch (err) {
      if (this.isClientGone()) return undefined;
      const kg = isKgError(err) ? err : new KgError('KG_ERR_ORIGIN_UNREACHABLE', String(err), { cause: err });
      this.deps.log.warn({ code: kg.code, origin: this.target.url.origin, err: kg.message }, 'refresh failed; still holding');
      return undefined;
    }
    return {
      apply: () => this.send(answer, true),
      drop: () => answer.res.destroy(),
    };
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

  /** The original request again, with the kept body, plus where the client stands (Grip-Last). */
  private askAgain(lastIds: ReadonlyMap<string, string>): Promise<IncomingMessage> {
    return this.deps.origin.request(
      {
        method: this.req.method ?? 'GET', url: this.target.url, headers: [...this.target.headers, ...gripLastHeaders(lastIds)],
        signal: this.cancel.signal,
      },
      Buffer.concat(this.keptBody),
    );
  }

  /** Reads as much of the origin's answer as deciding needs; throws a KgError when its instructions are unusable. */
  private async read(originRes: IncomingMessage): Promise<OriginAnswer> {
    const headers = rawToList(originRes.rawHeaders);
    if (!isGripResponse(headers)) return { type: 'relay', res: originRes };
    if (this.bodyOverLimit) {
      originRes.resume();
      return { type: 'too-large', res: originRes };
    }
    const grip = await readGripResponse(originRes, headers, {
      requestUrl: this.target.url.href, maxBodyBytes: this.deps.limits.maxInstructBodyBytes, use: 'response',
    });
    return { type: 'grip', res: originRes, grip };
  }

  /** The client left while a long-poll's retry was under way: that long-poll's gone link, once. */
  private sendRetryGone(): void {
    const link = this.retryGoneLink;
    this.retryGoneLink = undefined;
    if (link !== undefined) this.deps.responseHolds.gone.notify(link);
  }

  /** Gives the client what the origin answered; `checkPosition`: compare new holds' prev-ids with their channels. */
  private send(answer: OriginAnswer, checkPosition: boolean): void {
    if (this.isClientGone()) {
      // Never a hold (or a response) for a client that has left.
      answer.res.destroy();
      this.deps.metrics.requests.inc({ outcome: 'client_gone' });
      this.sendRetryGone();
      return;
    }
    // The new answer takes over: its own gone link, if any, or none (the origin answered).
    this.retryGoneLink = undefined;
    switch (answer.type) {
      case 'relay':
        this.relay(answer.res);
        return;
      case 'too-large':
        this.sendText(400, REQUEST_TOO_LARGE_TEXT);
        return;
      case 'grip':
        this.apply(answer.grip, checkPosition);
        return;
      default: {
        const never: never = answer;
        throw new Error(`unhandled answer ${String(never)}`);
      }
    }
  }

  private apply({ instruct, body }: GripResponse, checkPosition: boolean): void {
    const hold = instruct.hold;
    const headers = withoutHeaders(instruct.headers, ['content-length']);
    const subMeta = this.subscriptionMeta(instruct.meta);
    if (subMeta === undefined) return;
    const meta = subMeta === NO_META ? undefined : subMeta;
    const goneLink: GoneLink | undefined = instruct.goneLink === undefined ? undefined : { url: instruct.goneLink.url, requestUrl: this.target.url };
    if (hold?.mode === 'response') {
      new ResponseHold(this.deps.responseHolds, this.res, {
        channels: hold.channels,
        meta,
        timeoutSec: hold.timeoutSec,
        // Read whole by readGripResponse (a long-poll's body is its timeout response).
        timeoutResponse: { code: instruct.code, reason: instruct.reason, headers, body: Buffer.isBuffer(body) ? body : EMPTY },
        reask: this,
        checkPosition,
        usage: this.target.connection?.usage,
        ...(goneLink ? { goneLink } : {}),
      });
      // Kept in case the long-poll hands back (retry) and the client leaves meanwhile.
      this.retryGoneLink = goneLink;
      // Keeps listening: the long-poll may retry or refresh, which the client's departure cancels.
      this.deps.metrics.requests.inc({ outcome: 'hold_response' });
      return;
    }
    if (hold?.mode === 'stream' || instruct.nextLink !== undefined) {
      const options = {
        code: instruct.code, reason: instruct.reason, headers,
        initialBody: body,
        channels: this.withLastEventId(hold?.channels ?? []),
        meta,
        ...(hold?.keepAlive ? { keepAlive: hold.keepAlive } : {}),
        ...(instruct.nextLink ? { nextLink: instruct.nextLink } : {}),
        requestUrl: this.target.url,
        usage: this.target.connection?.usage,
        ...(goneLink ? { goneLink } : {}),
      };
      this.finished(); // the stream hold cancels its own origin reads from here
      new StreamHold(this.deps.streamHolds, this.res, options);
      this.deps.metrics.requests.inc({ outcome: hold ? 'hold_stream' : 'paged' });
      return;
    }
    // A plain GRIP answer: read whole by readGripResponse.
    this.finished();
    const bytes = Buffer.isBuffer(body) ? body : EMPTY;
    try {
      this.res.writeHead(instruct.code, instruct.reason, [...flatten(headers), 'Content-Length', String(bytes.length)]);
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message, origin: this.target.url.origin }, 'GRIP response head not writable');
      this.sendText(502, PROXY_ERROR_TEXT);
      return;
    }
    this.res.end(bytes);
    this.deps.metrics.requests.inc({ outcome: 'grip_response' });
  }

  /** The connection's subscription meta from the origin's answer; undefined (502 sent) when it is over the limits. */
  /**
   * None (NO_META) when the origin set no meta: most holds have none, and every held connection
   * would otherwise keep an empty one (the holds create it if a later answer sets some).
   */
  private subscriptionMeta(fields: Readonly<Record<string, string>>): SubscriptionMeta | typeof NO_META | undefined {
    const entries = Object.entries(fields);
    if (entries.length === 0) return NO_META;
    const meta = new SubscriptionMeta({ maxKeys: this.deps.limits.maxMetaKeys, maxBytes: this.deps.limits.maxMetaBytes });
    try {
      meta.apply(entries);
    } catch (err) {
      if (!(err instanceof MetaLimitError)) throw err;
      this.fail(new KgError('KG_ERR_INSTRUCT_INVALID', err.message));
      return undefined;
    }
    return meta;
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

  private relay(originRes: IncomingMessage): void {
    this.finished(); // the listeners below tie the origin response to the client from here
    const code = originRes.statusCode ?? 502;
    const headers = relayResponseHeaders(originRes.rawHeaders);
    const head = writableHead(code, originRes.statusMessage ?? '', headers);
    if (head.problem !== undefined) {
      originRes.destroy();
      this.fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', `origin ${this.target.url.origin} answered a head Node cannot write: ${head.problem}`));
      return;
    }
    try {
      this.res.writeHead(code, head.reason, flatten(headers));
    } catch (err) {
      originRes.destroy();
      this.fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', `origin ${this.target.url.origin} answered a head Node cannot write: ${(err as Error).message}`));
      return;
    }
    originRes.pipe(this.res);
    originRes.once('error', () => this.res.destroy());
    originRes.once('aborted', () => this.res.destroy());
    this.res.once('close', () => { if (!originRes.complete) originRes.destroy(); });
    this.deps.metrics.requests.inc({ outcome: 'relayed' });
  }

  /** Turns a failure into the client-visible answer: Pushpin's text only; what went wrong is logged and counted. */
  private fail(err: unknown): void {
    this.finished();
    const kg = isKgError(err) ? err : new KgError('KG_ERR_ORIGIN_UNREACHABLE', String(err), { cause: err });
    if (this.isClientGone()) {
      // The client left (which may be what cancelled the origin request): nobody to answer.
      this.deps.log.debug({ code: kg.code, origin: this.target.url.origin, err: kg.message }, 'client left before the origin answered');
      this.deps.metrics.requests.inc({ outcome: 'client_gone' });
      return;
    }
    const level = kg.code === 'KG_ERR_INSTRUCT_INVALID' || kg.code === 'KG_ERR_INSTRUCT_TOO_LARGE' ? 'error' : 'warn';
    this.deps.log[level]({ code: kg.code, origin: this.target.url.origin, err: kg.message }, 'request failed');
    this.deps.metrics.requests.inc({ outcome: kg.code });
    if (kg.code === 'KG_ERR_ORIGIN_UNREACHABLE' || kg.code === 'KG_ERR_ORIGIN_TIMEOUT') {
      this.deps.metrics.originErrors.inc({ kind: kg.code === 'KG_ERR_ORIGIN_TIMEOUT' ? 'timeout' : 'unreachable' });
    }
    this.sendText(kg.status || 502, kg.code === 'KG_ERR_REQUEST_TOO_LARGE' ? REQUEST_TOO_LARGE_TEXT : PROXY_ERROR_TEXT);
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
