import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { isKgError, type KgError } from '../errors.js';
import type { HoldRegistry } from '../holds/hold-registry.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Admission } from './admission.js';
import { refusalFor, writeRefusal, writeRefusalToSocket, type Refusal } from './refusals.js';
import type { RequestTarget } from './request-target.js';
import type { WsUpgradeHandler } from './ws-upgrade.js';

// The client-facing HTTP server: admits each request or WebSocket upgrade (Admission), routes
// it (RequestTarget), hands it on (a session for plain requests, WsUpgradeHandler for
// upgrades), and drains on shutdown. What happens to a request after that is not its business.

export interface ClientServerOptions {
  host: string;
  port: number;
  admission: Admission;
  resolveTarget: (req: IncomingMessage) => RequestTarget;
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

  private constructor(private readonly options: ClientServerOptions) {
    this.server = http.createServer({ keepAlive: true }, this.onRequest);
    this.server.on('upgrade', this.onUpgrade);
    // Long-lived streams must not be cut by Node's default request timeouts.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
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
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const { admission, metrics, log } = this.options;
    const refusal = admission.admit('http');
    if (refusal !== undefined) {
      this.refuse(req, res, refusal);
      return;
    }
    res.on('close', this.onResponseClosed); // emitted once; on() needs no wrapper per response
    let target: RequestTarget;
    try {
      target = this.options.resolveTarget(req);
    } catch (err) {
      this.refuse(req, res, refusalFor(err as KgError));
      return;
    }
    this.options.handleRequest(req, res, target).catch((err: unknown) => {
      log.error({ err }, 'request handling failed');
      if (!res.headersSent) res.writeHead(500);
      res.destroy();
    });
  };

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const { admission, metrics, log, wsUpgrades } = this.options;
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
    let target: RequestTarget;
    try {
      target = this.options.resolveTarget(req);
    } catch (err) {
      admission.release('ws');
      if (!isKgError(err)) throw err;
      const routed = refusalFor(err);
      metrics.requests.inc({ outcome: routed.outcome });
      writeRefusalToSocket(socket, routed);
      return;
    }
    wsUpgrades.start(req, socket, head, target);
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

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
