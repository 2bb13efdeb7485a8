import { connect, type Msg, type NatsConnection, type NatsError, type Subscription } from 'nats';
import type { Logger } from 'pino';
import { KgError, isKgError } from '../errors.js';
import { encodePublishItem, parsePublishItem } from '../grip/publish-item.js';
import type { PublishItem } from '../grip/types.js';
import {
  emitBusEvent, LiveCause, type Bus, type BusEvent, type BusListener, type BusStatus, type ItemHandler,
} from './bus.js';
import { channelToSubject } from './subject.js';

// The bus over NATS core. One NATS subscription per channel with local interest, like Pushpin's
// SUB filter; its handlers are reference counted and the subscription lingers briefly after the
// last one leaves, so long-poll clients that re-poll at once do not churn interest.
//
//   connecting ──first connect──▶ connected ──lost──▶ disconnected ──nats.js reconnects──▶ connected
//       ▲  └─ retry every reconnectWaitMs               (subscriptions resent by nats.js, then
//       └────────── connection closed for good ◀───────   confirmed by a flush: channel-live)
//   any state ──close()──▶ closed
//
// A channel becomes live only once the server has confirmed its SUB (a flush round trip); that
// is the `channel-live` event holds use for the first-subscription refresh (spec 3.5). After a
// reconnect every channel goes live again with cause `resubscribed`: items published during the
// outage were not received.
//
// nats.js's `waitOnFirstConnect` cannot be cancelled (close() before the first connection would
// leave it dialling forever and keep the process alive), so the first connection is retried here,
// with a timer that close() clears; after that nats.js reconnects forever by itself.

export interface NatsBusOptions {
  /** Server URLs, e.g. `nats://10.0.0.1:4222`; nats.js picks among them and fails over. */
  servers: readonly string[];
  /** Normalised subject prefix (ends in `.`), e.g. `grip.ch.`. */
  subjectPrefix: string;
  /** How long a channel's NATS subscription outlives its last local subscriber. */
  lingerMs: number;
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

interface ChannelEntry {
  readonly channel: string;
  readonly subject: string;
  readonly handlers: Set<ItemHandler>;
  sub: Subscription | undefined;
  isLive: boolean;
  /** Has been live before on this connection, so going live again is a resubscription. */
  wasLive: boolean;
  lingerTimer: NodeJS.Timeout | undefined;
  /** Created once per entry, not per message. */
  readonly onMessage: (err: NatsError | null, msg: Msg) => void;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const INVALID_LOG_WINDOW_MS = 1000;
const INVALID_LOG_MAX_PER_WINDOW = 10;

export class NatsBus implements Bus {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly listeners = new Set<BusListener>();
  private readonly log: Logger;
  private nc: NatsConnection | undefined;
  private current: BusStatus = { type: 'connecting' };
  private isClosing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  /** Bumped on every disconnect so a flush that straddles one cannot mark channels live. */
  private epoch = 0;
  private readonly toConfirm = new Set<ChannelEntry>();
  private isConfirmScheduled = false;
  private invalidPayloads = 0;
  private invalidLogWindowStart = 0;
  private invalidLoggedInWindow = 0;
  private invalidSuppressed = 0;
  /** The running connect loop, awaited by close(). */
  private connecting: Promise<void>;

  constructor(private readonly options: NatsBusOptions) {
    this.log = options.log;
    this.connecting = this.connectLoop();
  }

  /** Messages dropped because they were not valid publish items (also counted by metrics via events). */
  get invalidPayloadCount(): number {
    return this.invalidPayloads;
  }

  subscribe(channel: string, onItem: ItemHandler): () => void {
    if (this.isClosing) return () => {};
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = this.createEntry(channel);
      this.channels.set(channel, entry);
      this.subscribeUpstream(entry);
    } else if (entry.lingerTimer !== undefined) {
      clearTimeout(entry.lingerTimer);
      entry.lingerTimer = undefined;
    }
    // A wrapper keeps two subscriptions with the same handler independent.
    const handler: ItemHandler = (item) => onItem(item);
    const owner = entry;
    owner.handlers.add(handler);
    return () => {
      if (!owner.handlers.delete(handler) || owner.handlers.size > 0 || this.isClosing) return;
      if (this.options.lingerMs <= 0) {
        this.release(owner);
        return;
      }
      owner.lingerTimer = setTimeout(() => this.release(owner), this.options.lingerMs);
      owner.lingerTimer.unref();
    };
  }

  isLive(channel: string): boolean {
    return this.channels.get(channel)?.isLive === true;
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    const nc = this.nc;
    if (this.isClosing || nc === undefined || this.current.type !== 'connected') {
      throw new KgError('KG_ERR_BUS_UNAVAILABLE', `NATS is not connected (${this.current.type}); the publish was not accepted`);
    }
    // Encode everything first: all items go out, or none does.
    const maxPayload = nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
    const subjects: string[] = [];
    const payloads: Buffer[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const payload = Buffer.from(JSON.stringify(encodePublishItem(item, false)), 'utf8');
      if (payload.length > maxPayload) {
        throw new KgError(
          'KG_ERR_PUBLISH_INVALID',
          `items[${i}]: encoded item is ${payload.length} bytes, more than the NATS server's max_payload of ${maxPayload}`,
        );
      }
      subjects.push(channelToSubject(this.options.subjectPrefix, item.channel));
      payloads.push(payload);
    }
    try {
      for (let i = 0; i < subjects.length; i++) nc.publish(subjects[i]!, payloads[i]!);
      // The PONG after our PUBs means the server has routed them to every current subscriber.
      await nc.flush();
    } catch (err) {
      throw new KgError('KG_ERR_BUS_UNAVAILABLE', 'the NATS connection was lost before the server confirmed the publish; items may be partly delivered', { cause: err });
    }
  }

  status(): BusStatus {
    return this.current;
  }

  listen(listener: BusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.isClosing) return this.connecting;
    this.isClosing = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    for (const entry of this.channels.values()) {
      if (entry.lingerTimer !== undefined) clearTimeout(entry.lingerTimer);
    }
    this.channels.clear();
    this.toConfirm.clear();
    const nc = this.nc;
    this.nc = undefined;
    await this.connecting;
    if (nc !== undefined) {
      try {
        await nc.close();
      } catch (err) {
        this.log.warn({ err }, 'nats close failed');
      }
    }
    this.setStatus({ type: 'closed' });
    this.listeners.clear();
  }

  // --- connection -------------------------------------------------------------------------------

  private async connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.isClosing) {
      try {
        const nc = await connect({
          servers: [...this.options.servers],
          name: this.options.name,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.options.reconnectWaitMs,
          pingInterval: this.options.pingIntervalMs,
          maxPingOut: 2,
          waitOnFirstConnect: false,
          timeout: this.options.connectTimeoutMs,
        });
        if (this.isClosing) {
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
    this.nc = nc;
    for (const entry of this.channels.values()) {
      entry.sub = nc.subscribe(entry.subject, { callback: entry.onMessage });
    }
    void this.watchStatus(nc);
    void nc.closed().then((err) => this.onClosed(nc, err));
    // Connected (and ready for publishes) once the server has the subscriptions made so far.
    const epoch = this.epoch;
    nc.flush().then(
      () => {
        if (epoch !== this.epoch || this.nc !== nc || this.isClosing) return;
        this.log.info({ server: nc.getServer(), channels: this.channels.size }, 'nats connected');
        this.setStatus({ type: 'connected' });
        for (const entry of this.channels.values()) {
          if (entry.sub !== undefined) this.markLive(entry);
        }
      },
      () => {}, // lost at once: the reconnect confirms them
    );
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
    this.epoch++;
    this.log.warn({ server: redact([server])[0] }, 'nats disconnected');
    for (const entry of this.channels.values()) {
      entry.isLive = false;
    }
    this.setStatus({ type: 'disconnected', error: 'connection lost, reconnecting' });
  }

  private onReconnect(nc: NatsConnection): void {
    // nats.js has resent every open subscription on the new connection; once the server answers
    // our PING it has processed them, and the channels are live again.
    const epoch = this.epoch;
    nc.flush().then(
      () => {
        if (epoch !== this.epoch || this.nc !== nc || this.isClosing) return;
        this.log.info({ server: nc.getServer(), channels: this.channels.size }, 'nats reconnected');
        this.setStatus({ type: 'connected' });
        for (const entry of this.channels.values()) {
          if (entry.sub !== undefined) this.markLive(entry);
        }
      },
      () => {}, // lost again: the next reconnect starts over
    );
  }

  private onClosed(nc: NatsConnection, err: void | Error): void {
    if (this.nc !== nc || this.isClosing) return;
    // Only happens when nats.js gives up (e.g. the server rejects our credentials): start over.
    this.log.error({ error: err ? errorText(err) : undefined }, 'nats connection closed, reconnecting');
    this.nc = undefined;
    this.epoch++;
    for (const entry of this.channels.values()) {
      entry.sub = undefined;
      entry.isLive = false;
    }
    this.setStatus({ type: 'connecting', error: err ? errorText(err) : 'connection closed' });
    this.connecting = this.connectLoop();
  }

  // --- channels ---------------------------------------------------------------------------------

  private createEntry(channel: string): ChannelEntry {
    const entry: ChannelEntry = {
      channel,
      subject: channelToSubject(this.options.subjectPrefix, channel),
      handlers: new Set(),
      sub: undefined,
      isLive: false,
      wasLive: false,
      lingerTimer: undefined,
      onMessage: (err, msg) => this.onMessage(entry, err, msg),
    };
    return entry;
  }

  private subscribeUpstream(entry: ChannelEntry): void {
    const nc = this.nc;
    if (nc === undefined) return; // subscribed on connect
    entry.sub = nc.subscribe(entry.subject, { callback: entry.onMessage });
    this.toConfirm.add(entry);
    if (!this.isConfirmScheduled) {
      this.isConfirmScheduled = true;
      // One flush confirms every subscription made in the same tick.
      queueMicrotask(() => this.confirmSubscriptions());
    }
  }

  private confirmSubscriptions(): void {
    this.isConfirmScheduled = false;
    const nc = this.nc;
    if (nc === undefined || this.toConfirm.size === 0) return;
    const batch = [...this.toConfirm];
    this.toConfirm.clear();
    const epoch = this.epoch;
    nc.flush().then(
      () => {
        if (epoch !== this.epoch || this.nc !== nc) return; // a reconnect confirms them instead
        for (const entry of batch) {
          if (this.channels.get(entry.channel) === entry && entry.sub !== undefined) this.markLive(entry);
        }
      },
      () => {},
    );
  }

  private markLive(entry: ChannelEntry): void {
    if (entry.isLive) return;
    entry.isLive = true;
    const cause = entry.wasLive ? LiveCause.Resubscribed : LiveCause.Subscribed;
    entry.wasLive = true;
    this.emit({ type: 'channel-live', channel: entry.channel, cause });
  }

  private release(entry: ChannelEntry): void {
    entry.lingerTimer = undefined;
    if (entry.handlers.size > 0 || this.channels.get(entry.channel) !== entry) return;
    this.channels.delete(entry.channel);
    this.toConfirm.delete(entry);
    entry.isLive = false;
    const sub = entry.sub;
    entry.sub = undefined;
    const nc = this.nc;
    if (sub === undefined || nc === undefined || this.current.type !== 'connected') {
      sub?.unsubscribe(); // nats.js forgets it, so a reconnect does not resend it
      this.emit({ type: 'channel-released', channel: entry.channel });
      return;
    }
    sub.unsubscribe();
    nc.flush().then(
      () => this.emit({ type: 'channel-released', channel: entry.channel }),
      () => this.emit({ type: 'channel-released', channel: entry.channel }), // the server dropped it with the connection
    );
  }

  // --- delivery (hot path) ----------------------------------------------------------------------

  private onMessage(entry: ChannelEntry, err: NatsError | null, msg: Msg): void {
    if (err !== null) {
      this.log.error({ subject: entry.subject, error: errorText(err) }, 'nats subscription error');
      return;
    }
    let item: PublishItem;
    try {
      item = parsePublishItem(JSON.parse(strictUtf8.decode(msg.data)), 'payload', { channel: entry.channel });
    } catch (cause) {
      this.onInvalidPayload(msg.subject, cause);
      return;
    }
    for (const handler of entry.handlers) {
      try {
        handler(item);
      } catch (handlerErr) {
        this.log.error({ err: handlerErr, channel: entry.channel }, 'item handler failed');
      }
    }
  }

  private onInvalidPayload(subject: string, cause: unknown): void {
    this.invalidPayloads++;
    const detail = isKgError(cause) ? cause.message : `payload is not UTF-8 JSON: ${errorText(cause)}`;
    const error = new KgError('KG_ERR_NATS_PAYLOAD_INVALID', `NATS message on ${subject}: ${detail}`, { cause });
    this.emit({ type: 'payload-invalid', subject, error });
    // Logged per message, but at most a few lines a second so a broken publisher cannot flood logs.
    const now = Date.now();
    if (now - this.invalidLogWindowStart >= INVALID_LOG_WINDOW_MS) {
      this.invalidLogWindowStart = now;
      this.invalidLoggedInWindow = 0;
    }
    if (this.invalidLoggedInWindow >= INVALID_LOG_MAX_PER_WINDOW) {
      this.invalidSuppressed++;
      return;
    }
    this.invalidLoggedInWindow++;
    const suppressed = this.invalidSuppressed;
    this.invalidSuppressed = 0;
    this.log.warn({ subject, code: error.code, error: error.message, suppressed }, 'nats payload invalid');
  }

  private setStatus(status: BusStatus): void {
    if (sameStatus(this.current, status)) return;
    this.current = status;
    this.emit({ type: 'status', status });
  }

  private emit(event: BusEvent): void {
    emitBusEvent(this.listeners, event, (err) => this.log.error({ err, event: event.type }, 'bus listener failed'));
  }
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

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || ('code' in err ? String(err.code) : err.name);
  return String(err);
}

/** Server URLs without user info, for logs. */
function redact(servers: readonly string[]): string[] {
  return servers.map((s) => s.replace(/\/\/[^@/]*@/, '//'));
}
