import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { KgError } from '../errors.js';
import type { GripSigner } from './grip-sig.js';
import { GRIP_FEATURES } from '../grip/headers.js';
import type { HeaderList } from '../grip/types.js';

// Requests to the origin: the forwarded client request, retries, next-link fetches and
// WebSocket-over-HTTP events. Adds Grip-Sig and Grip-Feature, keeps connections alive, and
// turns "no answer" into a KgError instead of a request that hangs forever.

export interface OriginRequest {
  method: string;
  url: URL;
  headers: HeaderList;
  /**
   * The client has gone: aborting destroys the request, or its response while the body is still
   * arriving (the connection is not reused), and a pending response rejects.
   */
  signal?: AbortSignal;
}

export interface OriginCall {
  /** Write the body (if any) and end it. */
  outgoing: ClientRequest;
  /** Resolves with the response head; rejects with KG_ERR_ORIGIN_UNREACHABLE or KG_ERR_ORIGIN_TIMEOUT. */
  response: Promise<IncomingMessage>;
}

/** The origin as its callers see it (OriginClient; a fake in unit tests). */
export interface OriginPort {
  /** A request whose body the caller streams (outgoing) before the response comes. */
  start(req: OriginRequest): Promise<OriginCall>;
  /** A complete request with an in-memory body. */
  request(req: OriginRequest, body?: Buffer): Promise<IncomingMessage>;
}

const FEATURE_VALUE = GRIP_FEATURES.join(', ');

/**
 * Failures of a request sent on a kept-alive connection that the origin closed meanwhile (its
 * idle timeout raced our reuse): the origin most likely dropped the request unread, so an
 * idempotent one, whose repeat is harmless either way, is sent once more instead of a 502.
 */
const staleConnectionFailures = new WeakSet<KgError>();
const STALE_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * How long a kept-alive origin connection may sit unused before we close it. Below the 5 s that
 * Node's and Apache's servers keep idle connections, so we close first; Node's agent also honours
 * a shorter `Keep-Alive: timeout=` from the origin, but only when this is set (without it idle
 * connections wait for the origin to close them, and a request sent as it does fails).
 */
export const ORIGIN_IDLE_SOCKET_MS = 4000;

export class OriginClient implements OriginPort {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly options: { signer?: GripSigner; timeoutMs: number; idleSocketMs?: number; bodyTimeoutMs?: number }) {
    // `timeout` acts on idle pooled sockets only: Node's agent destroys a free socket on timeout,
    // and a request in progress merely gets a 'timeout' event, which nothing here listens to.
    const pool = { keepAlive: true, maxSockets: 1024, maxFreeSockets: 256, timeout: options.idleSocketMs ?? ORIGIN_IDLE_SOCKET_MS };
    this.httpAgent = new http.Agent(pool);
    this.httpsAgent = new https.Agent(pool);
  }

  async start(req: OriginRequest): Promise<OriginCall> {
    const headers: string[] = [];
    let hasHost = false;
    for (const [k, v] of req.headers) {
      headers.push(k, v);
      if (!hasHost && k.length === 4 && k.toLowerCase() === 'host') hasHost = true;
    }
    // Node adds no Host of its own when headers are given as a raw list.
    if (!hasHost) headers.push('Host', req.url.host);
    if (this.options.signer) headers.push('Grip-Sig', await this.options.signer.token());
    headers.push('Grip-Feature', FEATURE_VALUE);
    const isHttps = req.url.protocol === 'https:';
    const outgoing = (isHttps ? https : http).request({
      method: req.method,
      protocol: req.url.protocol,
      hostname: req.url.hostname.replace(/^\[|\]$/g, ''),
      port: req.url.port || (isHttps ? 443 : 80),
      path: req.url.pathname + req.url.search,
      headers,
      agent: isHttps ? this.httpsAgent : this.httpAgent,
    });
    const target = req.url.origin;
    const signal = req.signal;
    let originRes: IncomingMessage | undefined;
    const onAbort = (): void => {
      if (originRes === undefined) outgoing.destroy(new KgError('KG_ERR_ORIGIN_UNREACHABLE', `request to origin ${target} cancelled: the client left`));
      else if (!originRes.complete) originRes.destroy();
    };
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new KgError('KG_ERR_ORIGIN_TIMEOUT', `origin ${target} sent no response within ${this.options.timeoutMs} ms`));
        outgoing.destroy();
      }, this.options.timeoutMs);
      outgoing.on('response', (res) => { // emitted once
        clearTimeout(timer);
        originRes = res;
        if (this.options.bodyTimeoutMs !== undefined) watchBodyIdle(res, this.options.bodyTimeoutMs, target);
        resolve(res);
      });
      outgoing.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const failure = err instanceof KgError ? err : new KgError('KG_ERR_ORIGIN_UNREACHABLE', `origin ${target} failed: ${err.message}`, { cause: err });
        if (outgoing.reusedSocket && STALE_CONNECTION_CODES.has(err.code ?? '')) staleConnectionFailures.add(failure);
        reject(failure);
      });
    });
    if (signal !== undefined) {
      if (signal.aborted) {
        onAbort();
      } else {
        signal.addEventListener('abort', onAbort, { once: true });
        // Until the exchange is over: the request failed, or the response ended or was destroyed.
        const forget = (): void => signal.removeEventListener('abort', onAbort);
        outgoing.once('close', () => { if (originRes === undefined) forget(); else if (originRes.complete || originRes.destroyed) forget(); else originRes.once('close', forget); });
      }
    }
    // An unobserved rejection (caller already gave up) must not crash the process.
    response.catch(() => undefined);
    return { outgoing, response };
  }

  /** A complete request with an in-memory body. */
  async request(req: OriginRequest, body?: Buffer): Promise<IncomingMessage> {
    const call = await this.start(req);
    call.outgoing.end(body);
    try {
      return await call.response;
    } catch (err) {
      if (!(err instanceof KgError) || !staleConnectionFailures.has(err) || !IDEMPOTENT_METHODS.has(req.method.toUpperCase())) throw err;
      if (req.signal?.aborted === true) throw err;
      const again = await this.start(req);
      again.outgoing.end(body);
      return again.response;
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/**
 * The origin may go `idleMs` without sending body bytes the sidecar waits for (limits.originBodyTimeoutMs);
 * then the response is destroyed with KG_ERR_ORIGIN_UNREACHABLE, so whoever reads it fails as for
 * any origin failure mid-body (a 502 before the client's headers were sent; the client's response
 * closed after). Every body is watched: a buffered GRIP body, a stream hold's initial body and
 * next-link pages, and a relayed non-GRIP body too. That last one is a choice: a stalled plain
 * response would otherwise keep its client and a connection slot for ever; the price is that a
 * relayed long-lived non-GRIP stream silent for that long is cut (docs/security.md, limits).
 * Bytes arriving on the socket restart the timer; so does data received but not yet read on our side (a slow
 * client, not a stalled origin). No 'data' listener on the response, so its flowing state is left alone.
 */
function watchBodyIdle(res: IncomingMessage, idleMs: number, target: string): void {
  if (res.complete) return;
  const socket = res.socket;
  const timer = setTimeout(() => {
    if (res.complete || res.destroyed) return;
    if (res.readableLength > 0) {
      timer.refresh();
      return;
    }
    res.destroy(new KgError('KG_ERR_ORIGIN_UNREACHABLE', `origin ${target} sent no body bytes for ${idleMs} ms`));
  }, idleMs);
  timer.unref();
  const onData = (): void => { timer.refresh(); };
  const stop = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    res.off('end', stop);
    res.off('close', stop);
  };
  socket.on('data', onData);
  res.once('end', stop);
  res.once('close', stop);
}

/** Reads a body fully, failing once it passes `limit` bytes. */
export function readBody(stream: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: KgError): void => {
      if (settled) return;
      settled = true;
      reject(err);
      stream.destroy();
    };
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) fail(new KgError('KG_ERR_INSTRUCT_TOO_LARGE', `origin body exceeded ${limit} bytes`));
      else chunks.push(chunk);
    });
    stream.once('end', () => {
      if (settled) return;
      settled = true;
      resolve(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks));
    });
    stream.once('error', (err) => fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', `origin body failed: ${err.message}`, { cause: err })));
    stream.once('aborted', () => fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'origin closed the connection mid-body')));
  });
}
