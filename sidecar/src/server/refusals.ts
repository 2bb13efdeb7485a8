import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { KgError } from '../errors.js';

// Every answer the client server gives before a request reaches the origin, written once for
// plain requests (a ServerResponse) and WebSocket upgrades (the raw socket) alike.

export interface Refusal {
  status: number;
  /** The body, ending in a newline. */
  text: string;
  /** Extra response headers, as a flat [name, value, …] list. */
  headers: readonly string[];
  /** The `outcome` label of kong_grip_requests_total. */
  outcome: string;
}

export const SHUTTING_DOWN: Refusal = {
  status: 503, text: 'Service Unavailable: shutting down.\n',
  headers: ['Retry-After', '1', 'Connection', 'close'], outcome: 'KG_ERR_SHUTTING_DOWN',
};

/** KG_ERR_TOO_MANY_CONNECTIONS in docs/errors.md; the metric keeps its historical label. */
export const CONNECTION_LIMIT: Refusal = {
  status: 503, text: 'Service Unavailable: connection limit reached.\n',
  headers: ['Retry-After', '1'], outcome: 'over_limit',
};

/** A request head not complete within limits.headerTimeoutMs of the connection becoming idle. */
export const HEADER_TIMEOUT: Refusal = {
  status: 408, text: 'Request Timeout: request head not received in time.\n',
  headers: ['Connection', 'close'], outcome: 'header_timeout',
};

/**
 * Counted, not answered by us: a request body not complete in time gets Node's own 408 (or only
 * a close once its response has started); see ClientServer.
 */
export const BODY_TIMEOUT_OUTCOME = 'body_timeout';
/** Counted: an idle connection closed without an answer because limits.maxIdleConnections was reached. */
export const IDLE_LIMIT_OUTCOME = 'idle_limit';

export const HANDOFF_REFUSED_TEXT = 'Unauthorized: missing or invalid Kong handoff.';
export const HANDOFF_CAPACITY_TEXT = 'Service Unavailable: too many new requests, retry.';
export const HANDOFF_STORE_TEXT = 'Service Unavailable: the handoff check is unavailable, retry.';

/** A KgError raised while routing a request (handoff, origin), as the client sees it. */
export function refusalFor(err: KgError): Refusal {
  const headers = err.code === 'KG_ERR_HANDOFF_INVALID' ? ['WWW-Authenticate', 'Kong-Grip-Handoff']
    : err.code === 'KG_ERR_HANDOFF_CAPACITY' || err.code === 'KG_ERR_HANDOFF_STORE' ? ['Retry-After', '1'] : [];
  return { status: err.status || 400, text: `${err.message}\n`, headers, outcome: err.code ?? 'error' };
}

export function writeRefusal(res: ServerResponse, refusal: Refusal): void {
  res.writeHead(refusal.status, ['Content-Type', 'text/plain; charset=utf-8', ...refusal.headers]);
  res.end(refusal.text);
}

/** An upgrade request has no ServerResponse: the answer is written to the socket, which then closes. */
export function writeRefusalToSocket(socket: Duplex, refusal: Refusal): void {
  socket.on('error', () => undefined);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = Buffer.from(refusal.text);
  let head = `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\n`;
  for (let i = 0; i < refusal.headers.length; i += 2) {
    if ((refusal.headers[i] as string).toLowerCase() !== 'connection') head += `${refusal.headers[i]}: ${refusal.headers[i + 1]}\r\n`;
  }
  head += `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
}
