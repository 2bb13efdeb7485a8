import { connect, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { KgError } from '../errors.js';
import { emitBusEvent, type BusEvent, type BusListener, type BusStatus } from './bus.js';
import { errorText, LogThrottle, redact } from './nats-log.js';

// The connection layer of the NATS bus: dials NATS, follows nats.js's status, says when the bus
// is connected, and fans bus events out to listeners. It knows nothing of channels: the layer
// above registers ConnectionHooks and is told when to subscribe and when subscriptions hold.
//
//   connecting ──first connect──▶ connected ──lost──▶ disconnected ──nats.js reconnects──▶ connected
//       ▲  └─ retry every reconnectWaitMs               (subscriptions resent by nats.js, then
//       └────────── connection closed for good ◀───────   confirmed by a flush: channel-live)
//   any state ──close()──▶ closed
//
// nats.js's `waitOnFirstConnect` cannot be cancelled (close() before the first connection would
// leave it dialling forever and keep the process alive), so the first connection is retried here,
// with a timer that close() clears; after that nats.js reconnects forever by itself.

export interface ConnectionOptions {
  /**
   * Server URLs, e.g. `nats://10.0.0.1:4222`; nats.js picks among them and fails over. User info
   * in a URL (`nats://user:password@host:4222`, or `nats://token@host:4222`) is the connection's
   * credentials (serverCredentials); nats.js itself ignores it.
   */
  servers: readonly string[];
  /** Wait between connection attempts, first connect and reconnects alike. */
  reconnectWaitMs: number;
  /** Limit for one connection attempt (TCP connect plus the server's first PONG). */
  connectTimeoutMs: number;
  /** Interval of client PINGs; two unanswered ones mark a dead connection. */
  pingIntervalMs: number;
  /** Connection name shown in NATS monitoring. */
  name: string;
  log: Logger;
}

/** What the connection tells the layer above, which owns the subscriptions. */
export interface ConnectionHooks {
  /** Channels with local interest, for the connect log line. */
  readonly size: number;
  /** A new connection (the first, or after nats.js gave up): subscribe on it. */
  attached(nc: NatsConnection): void;
  /** Lost; nats.js reconnects and resends the subscriptions itself. */
  disconnected(): void;
  /** nats.js reconnected; the server has not yet confirmed the subscriptions. */
  reconnected(): void;
  /** The server has every subscription made so far and the bus is connected: channels go live. */
  ready(): void;
  /** The connection is gone for good (a new one is dialled), its subscriptions with it. */
  lost(): void;
  /** close() began: last words (subscription events) go out before the connection closes. */
  closing(): void;
}

/**
 * Runs after the server confirmed the subscriptions, before the bus says connected (history:
 * the stream exists). Resolves false when the connection ended meanwhile.
 */
export type ReadyStep = (nc: NatsConnection, epoch: number) => Promise<boolean>;

/** Longest wait at close for the server to confirm what was last sent. */
const CLOSE_FLUSH_MS = 1000;
const INVALID_LOG_WINDOW_MS = 1000;
const INVALID_LOG_MAX_PER_WINDOW = 10;

export class BusConnection {
  readonly log: Logger;
  private readonly listeners = new Set<BusListener>();
  private hooks: ConnectionHooks | undefined;
  private readyStep: ReadyStep | undefined;
  private current: BusStatus = { type: 'connecting' };
  private nats: NatsConnection | undefined;
  private isClosingNow = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  /** Bumped on every disconnect so a flush that straddles one cannot mark channels live. */
  private epochNow = 0;
  /** The running connect loop, awaited by close(). */
  private connecting: Promise<void> = Promise.resolve();
  private invalidPayloads = 0;
  private readonly invalidLog = new LogThrottle(INVALID_LOG_WINDOW_MS, INVALID_LOG_MAX_PER_WINDOW);

  constructor(private readonly options: ConnectionOptions) {
    this.log = options.log;
  }

  /** Starts dialling; `hooks` hear about the connection from here on. */
  start(hooks: ConnectionHooks, readyStep?: ReadyStep): void {
    this.hooks = hooks;
    this.readyStep = readyStep;
    this.connecting = this.connectLoop();
  }

  /** The connection while there is one (also while nats.js reconnects it). */
  get nc(): NatsConnection | undefined {
    return this.nats;
  }

  get epoch(): number {
    return this.epochNow;
  }

  get isClosing(): boolean {
    return this.isClosingNow;
  }

  get reconnectWaitMs(): number {
    return this.options.reconnectWaitMs;
  }

  get status(): BusStatus {
    return this.current;
  }

  get invalidPayloadCount(): number {
    return this.invalidPayloads;
  }

  /** Whether `nc` at `epoch` is still the connection in use (no disconnect, no close since). */
  isCurrent(nc: NatsConnection, epoch: number): boolean {
    return epoch === this.epochNow && this.nats === nc && !this.isClosingNow;
  }

  listen(listener: BusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: BusEvent): void {
    emitBusEvent(this.listeners, event, (err) => this.log.error({ err, event: event.type }, 'bus listener failed'));
  }

  setStatus(status: BusStatus): void {
    if (sameStatus(this.current, status)) return;
    this.current = status;
    this.emit({ type: 'status', status });
  }

  /** A message that was not a valid item was dropped: counted, reported, and logged at a bounded rate. */
  reportInvalid(error: KgError, subject: string): void {
    this.invalidPayloads++;
    this.emit({ type: 'payload-invalid', subject, error });
    // Logged per message, but at most a few lines a second so a broken publisher cannot flood logs.
    const suppressed = this.invalidLog.admit(Date.now());
    if (suppressed !== undefined) this.log.warn({ subject, code: error.code, error: error.message, suppressed }, 'nats payload invalid');
  }

  async close(): Promise<void> {
    if (this.isClosingNow) return this.connecting;
    this.isClosingNow = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    this.hooks?.closing();
    const nc = this.nats;
    this.nats = undefined;
    await this.connecting;
    if (nc !== undefined) {
      try {
        // close() does not send what nats.js still buffers (the last subscription events):
        // flush first, but do not wait long for a server that is not answering.
        if (this.current.type === 'connected') {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([nc.flush().catch(() => undefined), new Promise((resolve) => { timer = setTimeout(resolve, CLOSE_FLUSH_MS); })]);
          clearTimeout(timer);
        }
        await nc.close();
      } catch (err) {
        this.log.warn({ err }, 'nats close failed');
      }
    }
    this.setStatus({ type: 'closed' });
    this.listeners.clear();
  }

  private async connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.isClosingNow) {
      try {
        const { servers, credentials } = serverCredentials(this.options.servers);
        const nc = await connect({
          servers,
          ...credentials,
          name: this.options.name,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.options.reconnectWaitMs,
          pingInterval: this.options.pingIntervalMs,
          maxPingOut: 2,
          waitOnFirstConnect: false,
          timeout: this.options.connectTimeoutMs,
        });
        if (this.isClosingNow) {
          await nc.close();
          return;
        }
        this.attach(nc);
        return;
      } catch (err) {
        failures++;
        const error = errorText(err);
        // Edge-triggered: one warning when connecting starts failing, then quiet retries.
        if (failures === 1) this.log.warn({ servers: redact(this.options.servers), error }, 'nats unreachable, retrying');
        else this.log.debug({ error, failures }, 'nats connect retry failed');
        this.setStatus({ type: 'connecting', error });
        await new Promise<void>((resolve) => {
          this.wakeRetry = resolve;
          this.retryTimer = setTimeout(resolve, this.options.reconnectWaitMs);
        });
        this.wakeRetry = undefined;
        this.retryTimer = undefined;
      }
    }
  }

  private attach(nc: NatsConnection): void {
    this.nats = nc;
    this.hooks?.attached(nc);
    void this.watchStatus(nc);
    void nc.closed().then((err) => this.onClosed(nc, err));
    // Connected (and ready for publishes) once the server has the subscriptions made so far.
    const epoch = this.epochNow;
    nc.flush().then(
      () => this.whenReady(nc, epoch, 'nats connected'),
      () => {}, // lost at once: the reconnect confirms them
    );
  }

  /** The server has our subscriptions and the ready step passed: connected, channels live again. */
  private async whenReady(nc: NatsConnection, epoch: number, message: string): Promise<void> {
    if (!(await this.runReadyStep(nc, epoch))) return;
    if (!this.isCurrent(nc, epoch)) return;
    this.log.info({ server: nc.getServer(), channels: this.hooks?.size ?? 0 }, message);
    this.setStatus({ type: 'connected' });
    this.hooks?.ready();
  }

  private async runReadyStep(nc: NatsConnection, epoch: number): Promise<boolean> {
    return this.readyStep === undefined ? true : this.readyStep(nc, epoch);
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.onDisconnect(String(s.data));
          break;
        case 'reconnect':
          this.onReconnect(nc);
          break;
        case 'error':
          this.log.error({ error: String(s.data), permission: s.permissionContext }, 'nats async error');
          break;
        case 'ldm':
          this.log.info({ server: String(s.data) }, 'nats server entering lame duck mode');
          break;
        default:
          break; // cluster updates and debug events carry nothing we act on
      }
    }
  }

  private onDisconnect(server: string): void {
    this.epochNow++;
    this.log.warn({ server: redact([server])[0] }, 'nats disconnected');
    this.hooks?.disconnected();
    this.setStatus({ type: 'disconnected', error: 'connection lost, reconnecting' });
  }

  private onReconnect(nc: NatsConnection): void {
    // nats.js has resent every open subscription on the new connection; once the server answers
    // our PING it has processed them, and the channels are live again.
    const epoch = this.epochNow;
    this.hooks?.reconnected();
    nc.flush().then(
      () => this.whenReady(nc, epoch, 'nats reconnected'),
      () => {}, // lost again: the next reconnect starts over
    );
  }

  private onClosed(nc: NatsConnection, err: void | Error): void {
    if (this.nats !== nc || this.isClosingNow) return;
    // Only happens when nats.js gives up (e.g. the server rejects our credentials): start over.
    this.log.error({ error: err ? errorText(err) : undefined }, 'nats connection closed, reconnecting');
    this.nats = undefined;
    this.epochNow++;
    this.hooks?.lost();
    this.setStatus({ type: 'connecting', error: err ? errorText(err) : 'connection closed' });
    this.connecting = this.connectLoop();
  }
}

/**
 * The server URLs without user info, and the credentials it gave: `user:password@` (percent-
 * encoded as in any URL) or a lone `token@`. One connection has one set of credentials, so the
 * first URL that has user info gives them for every server.
 */
export function serverCredentials(urls: readonly string[]): { servers: string[]; credentials: { user?: string; pass?: string; token?: string } } {
  let credentials: { user?: string; pass?: string; token?: string } | undefined;
  const servers = urls.map((url) => {
    const found = /^([a-z]+:\/\/)([^@/]*)@/i.exec(url);
    if (found === null) return url;
    if (credentials === undefined) {
      const info = found[2]!;
      const colon = info.indexOf(':');
      credentials = colon < 0
        ? { token: decodeURIComponent(info) }
        : { user: decodeURIComponent(info.slice(0, colon)), pass: decodeURIComponent(info.slice(colon + 1)) };
    }
    return found[1]! + url.slice(found[0].length);
  });
  return { servers, credentials: credentials ?? {} };
}

function sameStatus(a: BusStatus, b: BusStatus): boolean {
  switch (a.type) {
    case 'connected':
    case 'closed':
      return a.type === b.type;
    case 'connecting':
    case 'disconnected':
      return a.type === b.type && a.error === b.error;
    default: {
      const unreachable: never = a;
      return unreachable;
    }
  }
}
