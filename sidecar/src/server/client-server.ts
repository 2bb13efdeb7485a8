import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Limits } from '../config.js';
import { isKgError } from '../errors.js';
import type { Clock } from '../holds/clock.js';
import type { HoldRegistry } from '../holds/hold-registry.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { IdleConnections, type Admission } from './admission.js';
import {
  BODY_TIMEOUT_OUTCOME, HEADER_TIMEOUT, IDLE_LIMIT_OUTCOME, refusalFor, writeRefusal, writeRefusalToSocket, type Refusal,
} from './refusals.js';
import type { RequestTarget, TargetConnection } from './request-target.js';
import type { WsUpgradeHandler } from './ws-upgrade.js';

// The client-facing HTTP server: admits each request or WebSocket upgrade (Admission), routes
// it (RequestTarget), hands it on (a session for plain requests, WsUpgradeHandler for
// upgrades), and drains on shutdown. What happens to a request after that is not its business.
//
// Time limits on what a client sends (connection tracking: TrackedConnection, end of file):
// - the request head: limits.headerTimeoutMs from when the connection became idle (opened, or
//   its last response done), kept by IdleConnections however slowly the bytes trickle in. Node's
//   own headersTimeout is off: it runs from a request's first byte, so on a kept-alive
//   connection it would start only after keepAliveTimeout (+1 s) of silence.
// - the request body: Node's requestTimeout, which Node 20 measures from a request's first byte
//   to its last and checks every connectionsCheckingInterval. It ends with the request: a held
//   stream's response and an upgraded WebSocket are not cut by it (the previous comment here
//   said otherwise; test/integration/admission.test.ts shows it on Node 20).
//   Set to headerTimeoutMs + requestBodyTimeoutMs, a body gets at least requestBodyTimeoutMs
//   after its head. The client gets Node's 408 (only a close once its response has started);
//   the session sees its client go, as for any client that leaves.

export interface ClientServerOptions {
  host: string;
  port: number;
  admission: Admission;
  limits: Pick<Limits, 'maxIdleConnections' | 'headerTimeoutMs' | 'requestBodyTimeoutMs'>;
  /** The idle deadline's timer. */
  clock: Clock;
  /** Asynchronous in Kong mode (the fleet-wide nonce claim); rejects with a KgError to refuse. */
  resolveTarget: (req: IncomingMessage) => RequestTarget | Promise<RequestTarget>;
  /** Carries out one admitted plain request; its response's 'close' ends the admission. */
  handleRequest: (req: IncomingMessage, res: ServerResponse, target: RequestTarget) => Promise<void>;
  wsUpgrades: WsUpgradeHandler;
  /** Held long-polls and streams, ended first when draining. */
  holds: HoldRegistry;
  metrics: Metrics;
  log: Logger;
}

export class ClientServer {
  private readonly server: Server;
  private closed: Promise<void> | undefined;
  private isSweepScheduled = false;
  /** Connections with no complete request yet (limits.maxIdleConnections, limits.headerTimeoutMs). */
  private readonly idle: IdleConnections<TrackedSocket>;

  private constructor(private readonly options: ClientServerOptions) {
    const { headerTimeoutMs, requestBodyTimeoutMs, maxIdleConnections } = options.limits;
    const requestTimeout = Math.min(headerTimeoutMs + requestBodyTimeoutMs, MAX_TIMER_MS);
    this.server = http.createServer({
      keepAlive: true,
      requestTimeout,
      headersTimeout: 0,
      // Announced to clients (Keep-Alive: timeout=…); Node's own idle timer (this plus 1 s)
      // comes after the idle deadline.
      keepAliveTimeout: headerTimeoutMs,
      // How often Node checks requestTimeout: a tenth of it, between 10 ms and 1 s.
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(requestTimeout / 10))),
    }, this.onRequest);
    this.server.on('upgrade', this.onUpgrade);
    this.server.on('connection', this.onConnection);
    this.idle = new IdleConnections<TrackedSocket>({
      max: maxIdleConnections, timeoutMs: headerTimeoutMs, clock: options.clock,
      onEvicted: this.onIdleEvicted, onTimedOut: this.onIdleTimedOut,
    });
    options.metrics.readClientConnections = () => ({ active: options.admission.count(), idle: this.idle.size });
  }

  static async start(options: ClientServerOptions): Promise<ClientServer> {
    const clientServer = new ClientServer(options);
    await listen(clientServer.server, options.host, options.port);
    return clientServer;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Plain requests in progress, held ones included. */
  get openRequests(): number {
    return this.options.admission.count('http');
  }

  /**
   * Shutdown, first step: stop accepting, close connections with nothing in progress, end every
   * held connection so its client reconnects elsewhere. Resolves once every client has gone.
   */
  drain(): Promise<void> {
    if (this.closed === undefined) {
      this.options.admission.startDrain();
      this.closed = new Promise((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      this.options.holds.drainAll();
    }
    return Promise.all([this.closed, this.options.wsUpgrades.drain()]).then(() => undefined);
  }

  /** Shutdown, last step: cut whatever is still open. */
  async cut(): Promise<void> {
    const closed = this.closed ?? this.drain();
    this.server.closeAllConnections();
    await this.options.wsUpgrades.close(0);
    await closed;
    this.idle.close();
  }

  /** A new client connection: idle until its first request head is complete. */
  private readonly onConnection = (socket: TrackedSocket): void => {
    socket[kConnection] = { owner: this, open: 0, bytesWhenIdle: 0 };
    socket.on('close', onTrackedSocketClosed);
    socket.on('error', onTrackedSocketError);
    this.idle.add(socket);
  };

  /** A request head is complete: the connection is busy until its responses are done. */
  private requestStarted(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as TrackedSocket;
    const connection = socket[kConnection];
    if (connection === undefined) return;
    connection.open++;
    this.idle.remove(socket);
    res.on('close', onTrackedResponseClosed);
  }

  /** Its last response is done and it stays open: idle again, with a new head deadline. */
  connectionIdle(socket: TrackedSocket, connection: TrackedConnection): void {
    connection.bytesWhenIdle = socket.bytesRead;
    this.idle.add(socket);
  }

  connectionClosed(socket: TrackedSocket): void {
    this.idle.remove(socket);
  }

  /** Node's requestTimeout fired: it answers 408 or closes (socketOnError); counted here. */
  bodyTimedOut(): void {
    this.options.metrics.requests.inc({ outcome: BODY_TIMEOUT_OUTCOME });
  }

  private readonly onIdleEvicted = (socket: TrackedSocket): void => {
    this.options.metrics.requests.inc({ outcome: IDLE_LIMIT_OUTCOME });
    socket.destroy();
  };

  private readonly onIdleTimedOut = (socket: TrackedSocket): void => {
    const connection = socket[kConnection];
    // Part of a request head came: answer 408. Nothing came (new, or kept alive): just close,
    // as a keep-alive timeout does.
    if (connection !== undefined && socket.bytesRead > connection.bytesWhenIdle) {
      this.options.metrics.requests.inc({ outcome: HEADER_TIMEOUT.outcome });
      writeRefusalToSocket(socket, HEADER_TIMEOUT);
    } else {
      socket.destroy();
    }
  };

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const { admission, log } = this.options;
    this.requestStarted(req, res);
    const refusal = admission.admit('http');
    if (refusal !== undefined) {
      this.refuse(req, res, refusal);
      return;
    }
    // Registered before routing: a client that leaves while its handoff is being claimed still
    // releases its admission.
    res.on('close', this.onResponseClosed); // emitted once; on() needs no wrapper per response
    this.target(req).then((target) => {
      // The client left while the target was resolved: its 'close' already released the slot.
      if (res.destroyed || req.socket.destroyed) {
        target.connection?.end();
        return;
      }
      if (target.connection !== undefined) {
        (res as ResponseWithConnection)[kTargetConnection] = target.connection;
        res.on('close', onTargetResponseClosed);
      }
      this.handle(req, res, target);
    }, (err: unknown) => {
      if (res.destroyed) return;
      if (isKgError(err)) {
        this.refuse(req, res, refusalFor(err));
        return;
      }
      log.error({ err }, 'request routing failed');
      this.refuse(req, res, { status: 500, text: 'Internal Server Error\n', headers: ['Connection', 'close'], outcome: 'error' });
    });
  };

  /** The resolver's answer as a promise, a synchronous throw included. */
  private target(req: IncomingMessage): Promise<RequestTarget> {
    return new Promise((resolve) => resolve(this.options.resolveTarget(req)));
  }

  private handle(req: IncomingMessage, res: ServerResponse, target: RequestTarget): void {
    const { log } = this.options;
    this.options.handleRequest(req, res, target).catch((err: unknown) => {
      log.error({ err }, 'request handling failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      try {
        // The reason is given: a bad one left on the response by the failure must not throw again.
        res.writeHead(500, 'Internal Server Error', ['Content-Type', 'text/plain; charset=utf-8', 'Connection', 'close']);
        res.end('Internal Server Error\n');
      } catch {
        res.destroy();
      }
    });
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const { admission, metrics, log, wsUpgrades } = this.options;
    // The socket is the upgrade's from now on: neither idle nor a plain request any more.
    const upgraded = req.socket as TrackedSocket;
    this.idle.remove(upgraded);
    upgraded[kConnection] = undefined;
    const problem = wsUpgrades.handshakeProblem(req);
    if (problem !== undefined) {
      log.info({ problem }, 'bad WebSocket handshake');
      writeRefusalToSocket(socket, { status: 400, text: `${problem}\n`, headers: [], outcome: 'bad_handshake' });
      return;
    }
    const refusal = admission.admit('ws');
    if (refusal !== undefined) {
      metrics.requests.inc({ outcome: refusal.outcome });
      writeRefusalToSocket(socket, refusal);
      return;
    }
    // Node stops reading an upgraded socket (readableFlowing = null): what the client sends
    // meanwhile waits in the socket for the upgrade handler.
    this.target(req).then((target) => {
      if (socket.destroyed) {
        admission.release('ws'); // the client left while its handoff was being claimed
        target.connection?.end();
        return;
      }
      wsUpgrades.start(req, socket, head, target);
    }, (err: unknown) => {
      admission.release('ws');
      if (!isKgError(err)) {
        log.error({ err }, 'upgrade routing failed');
        socket.destroy();
        return;
      }
      const routed = refusalFor(err);
      metrics.requests.inc({ outcome: routed.outcome });
      writeRefusalToSocket(socket, routed);
    });
  };

  private refuse(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
    this.options.metrics.requests.inc({ outcome: refusal.outcome });
    writeRefusal(res, refusal);
    req.resume();
  }

  // One listener shared by every response, not a closure per request.
  private readonly onResponseClosed = (): void => {
    this.options.admission.release('http');
    // While draining, connections are closed as soon as they have nothing in progress.
    if (this.closed !== undefined && !this.isSweepScheduled) {
      this.isSweepScheduled = true;
      setImmediate(this.sweepIdle);
    }
  };

  private readonly sweepIdle = (): void => {
    this.isSweepScheduled = false;
    this.server.closeIdleConnections();
  };
}

/** Node timers and its connections checker take at most 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const kConnection = Symbol('kong-grip.connection');

/** What the client server keeps on each plain HTTP connection (none once upgraded). */
interface TrackedConnection {
  owner: ClientServer;
  /** Requests whose head is complete and whose response has not closed (more than 1 when pipelined). */
  open: number;
  /** socket.bytesRead when it last became idle: more means part of a request head has come. */
  bytesWhenIdle: number;
}

type TrackedSocket = Socket & { [kConnection]?: TrackedConnection | undefined };

// Listeners shared by every connection and response, not closures per connection.

function onTrackedSocketClosed(this: TrackedSocket): void {
  this[kConnection]?.owner.connectionClosed(this);
}

function onTrackedSocketError(this: TrackedSocket, err: NodeJS.ErrnoException): void {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') this[kConnection]?.owner.bodyTimedOut();
}

const kTargetConnection = Symbol('kong-grip.targetConnection');
type ResponseWithConnection = ServerResponse & { [kTargetConnection]?: TargetConnection };

/** A counted or metered request's response closed: its quota slot and meter end with it. */
function onTargetResponseClosed(this: ResponseWithConnection): void {
  this[kTargetConnection]?.end();
}

function onTrackedResponseClosed(this: ServerResponse): void {
  const socket = this.req.socket as TrackedSocket;
  const connection = socket[kConnection];
  if (connection === undefined || --connection.open > 0) return;
  // Closed with it (client gone, or Connection: close): nothing left to keep idle.
  if (socket.destroyed || !socket.writable) return;
  connection.owner.connectionIdle(socket, connection);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
