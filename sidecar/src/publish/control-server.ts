import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import { isKgError } from '../errors.js';
import { textNestingExceeds } from '../grip/json-input.js';
import { parsePublishRequest } from '../grip/publish-item.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

// The control port: the Pushpin-compatible publish API (docs/grip.md, "Publishing"), /healthz, /readyz, /metrics.
// Texts and statuses follow Pushpin so GRIP publisher libraries behave as they do there. The
// publish token, when set, guards the publish API and /metrics; /healthz and /readyz stay open
// and then show only the status to a caller without it.

/** What /healthz and /readyz report; ready means publishes and deliveries work now. */
export interface HealthReport {
  ready: boolean;
  details: Record<string, unknown>;
}

/**
 * Publishes in progress, so a shutdown can refuse new ones (503) and still hand every accepted
 * one to the bus before the bus closes. A publish counts from its first byte to the bus's answer.
 */
export class PublishGate {
  private inFlight = 0;
  private draining = false;
  private waiters: Array<() => void> = [];

  /** False once draining: the publish is refused. */
  enter(): boolean {
    if (this.draining) return false;
    this.inFlight++;
    return true;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.draining) this.wake();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Refuses new publishes; resolves once those in progress are answered. */
  drain(): Promise<void> {
    this.draining = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export interface ControlDeps {
  /** Publishes go here. */
  bus: Bus;
  health: () => HealthReport;
  /** The /metrics exposition; in cluster mode the primary aggregates its workers'. */
  renderMetrics: () => Promise<{ contentType: string; text: string }>;
  metrics: Metrics;
  log: Logger;
  publishToken?: string;
  maxPublishBodyBytes: number;
  /** Shared with the shutdown; a private one when absent. */
  gate?: PublishGate;
}

type Format = 'text' | 'json';

/** Pushpin's Accept negotiation: text/plain by default, JSON on request, 406 otherwise. */
function negotiate(accept: string | undefined): Format | undefined {
  if (accept === undefined || accept.trim() === '') return 'text';
  for (const part of accept.split(',')) {
    const type = (part.split(';')[0] ?? '').trim().toLowerCase();
    if (type === 'text/plain' || type === 'text/*' || type === '*/*' || type === '*') return 'text';
    if (type === 'application/json' || type === 'application/*') return 'json';
  }
  return undefined;
}

function reply(res: ServerResponse, status: number, format: Format, message: string, extra: string[] = []): void {
  const body = format === 'json' ? `${JSON.stringify({ message })}\n` : `${message}\n`;
  res.writeHead(status, [
    'Content-Type', format === 'json' ? 'application/json' : 'text/plain; charset=utf-8',
    'Content-Length', String(Buffer.byteLength(body)), ...extra,
  ]);
  res.end(body);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from((m[1] as string).trim());
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export interface ControlServer {
  readonly port: number;
  /** Refuses new publishes (503) and resolves once those in progress were handed to the bus. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** The control port's HTTP server, listening. */
export async function startControlServer(deps: ControlDeps, at: { host: string; port: number }): Promise<ControlServer> {
  const gate = deps.gate ?? new PublishGate();
  const handler = createControlHandler({ ...deps, gate });
  const server = http.createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      deps.log.error({ err }, 'control request failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    drain: () => gate.drain(),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export function createControlHandler(deps: ControlDeps) {
  return async function handleControl(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    // With a publish token the whole port is the publisher's, except the status orchestrators
    // probe: /healthz and /readyz stay open, but their details (bus errors naming NATS servers,
    // channel counts, worker pids) only go to a caller with the token.
    const isAuthorized = deps.publishToken === undefined || tokenMatches(req.headers.authorization, deps.publishToken);
    if (path === '/healthz' || path === '/readyz') {
      const { ready, details } = deps.health();
      const body = JSON.stringify({ status: ready ? 'ok' : 'degraded', ...(isAuthorized ? details : {}) });
      // Liveness holds while the process serves; readiness needs the bus.
      res.writeHead(ready || path === '/healthz' ? 200 : 503, ['Content-Type', 'application/json']);
      res.end(body);
      return;
    }
    if (path === '/metrics') {
      if (!isAuthorized) {
        req.resume();
        reply(res, 401, negotiate(req.headers.accept) ?? 'text', 'Unauthorized.', ['WWW-Authenticate', 'Bearer realm="kong-grip metrics"']);
        return;
      }
      const { contentType, text } = await deps.renderMetrics();
      res.writeHead(200, ['Content-Type', contentType]);
      res.end(text);
      return;
    }
    const format = negotiate(req.headers.accept);
    if (format === undefined) {
      reply(res, 406, 'text', 'Not Acceptable. Supported formats are text/plain and application/json.');
      req.resume();
      return;
    }
    if (path === '/' && req.method === 'GET') {
      reply(res, 200, format, 'kong-grip API');
      return;
    }
    if (path !== '/publish' && path !== '/publish/') {
      req.resume();
      reply(res, 404, format, 'Not Found');
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      reply(res, 405, format, `Method not allowed: ${req.method}.`, ['Allow', 'POST']);
      return;
    }
    if (!isAuthorized) {
      req.resume();
      deps.metrics.publishRejected.inc({ reason: 'unauthorized' });
      reply(res, 401, format, 'Unauthorized.', ['WWW-Authenticate', 'Bearer realm="kong-grip publish"']);
      return;
    }
    const gate = deps.gate;
    if (gate !== undefined && !gate.enter()) {
      req.resume();
      deps.metrics.publishRejected.inc({ reason: 'shutting_down' });
      reply(res, 503, format, 'Publish refused: the sidecar is shutting down; publish to another instance.', ['Retry-After', '1', 'Connection', 'close']);
      return;
    }
    try {
      await handlePublish(req, res, format, deps);
    } finally {
      gate?.leave();
    }
  };
}

async function handlePublish(req: IncomingMessage, res: ServerResponse, format: Format, deps: ControlDeps): Promise<void> {
  const lengthHeader = req.headers['content-length'];
  if (lengthHeader === undefined) {
    req.resume();
    reply(res, 411, format, 'Request requires Content-Length.');
    return;
  }
  if (Number(lengthHeader) > deps.maxPublishBodyBytes) {
    req.resume();
    deps.metrics.publishRejected.inc({ reason: 'too_large' });
    reply(res, 400, format, 'Request body too large.');
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  let doc: unknown;
  try {
    const text = Buffer.concat(chunks).toString('utf8');
    // Pushpin's JSON parser (Qt's) takes only an object or an array at the top, nested at most
    // 1024 levels; anything else is "not valid JSON" there [observed 1.36], so here too.
    if (textNestingExceeds(text)) throw new Error('nested too deeply');
    doc = JSON.parse(text);
    if (typeof doc !== 'object' || doc === null) throw new Error('not an object or array');
  } catch {
    deps.metrics.publishRejected.inc({ reason: 'invalid' });
    reply(res, 400, format, 'Body is not valid JSON.');
    return;
  }
  try {
    const items = parsePublishRequest(doc);
    await deps.bus.publish(items);
    deps.metrics.publishItems.inc({ source: 'http' }, items.length);
    deps.log.debug({ items: items.length }, 'publish received');
    reply(res, 200, format, 'Published');
  } catch (err) {
    if (isKgError(err, 'KG_ERR_PUBLISH_INVALID')) {
      deps.metrics.publishRejected.inc({ reason: 'invalid' });
      reply(res, 400, format, err.message);
      return;
    }
    deps.metrics.publishRejected.inc({ reason: 'bus_unavailable' });
    deps.log.error({ err: (err as Error).message }, 'publish could not be handed to the bus');
    reply(res, 503, format, `Publish failed: the bus did not accept it (${(err as Error).message}).`);
  }
}

