import { connect, type Msg, type NatsConnection, type NatsError, type Subscription } from 'nats';
import type { Logger } from 'pino';
import type { JetStreamConfig } from '../config.js';
import { KgError, isKgError } from '../errors.js';
import { encodePublishItem, parsePublishItem } from '../grip/publish-item.js';
import type { PublishItem } from '../grip/types.js';
import {
  emitBusEvent, LiveCause, type Bus, type BusEvent, type BusListener, type BusStatus, type History, type ItemHandler,
} from './bus.js';
import { StreamHistory, type StoredItem } from './nats-history.js';
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
// With history (JetStream) the bus subscribes to the republished copy of each channel
// (`grip.js.<token>`), whose headers give the item's stream sequence and the previous sequence on
// its channel. Per channel it keeps the sequence of the last item it handed out:
//
//   live item ──seq ≤ last──▶ dropped (already delivered)
//             ──previous-on-channel > last──▶ gap: read the missing items from the stream first
//             ──otherwise──▶ delivered, last = seq
//   reconnect ──▶ every channel reads from last + 1 (channel-live cause `resumed`, no origin refresh)
//
// While a channel is read from the stream its live items wait (held) and are then delivered
// in order without repeats, so nothing published during an outage is lost or duplicated.
//
// Subscription events: with `events`, a channel's first local interest and its release are
// announced on `<events.prefix><token>` (docs/nats.md), and re-announced after a reconnect.
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
  /** Announce subscribed / unsubscribed channels on `prefix` + token, naming this process `instance`. */
  events?: { prefix: string; instance: string };
  /** Keep history in JetStream and deliver from its republished copy (see above). */
  history?: JetStreamConfig;
}

/** What a subscription event says (docs/nats.md, "Subscription events"). */
export interface SubscriptionEvent {
  channel: string;
  event: 'subscribed' | 'unsubscribed';
  instance: string;
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
  // History only:
  /** The channel's subject in the stream (the subscription is on the republished copy). */
  readonly storedSubject: string;
  /** Stream sequence of the last item handed out. */
  lastSeq: number | undefined;
  /** The stream's last sequence when the channel went live, to resume from if nothing came before an outage. */
  baselineSeq: number | undefined;
  /** Live items waiting while missed ones are read from the stream. */
  held: StoredItem[] | undefined;
  /** More live items came during a read than are kept: read the stream again (they are stored). */
  isHeldTruncated: boolean;
  /** Identifies the read in progress; a newer read replaces it. */
  readToken: object | undefined;
  /** Recent item ids with their sequence, to find a client's last id without a scan. */
  recentSeqs: Map<string, number> | undefined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/** Live items held per channel during a read; beyond it they are dropped and read from the stream. */
const MAX_HELD = 10_000;
/** Item ids remembered per channel (history): a client's last id among them is found without a scan. */
const MAX_RECENT_IDS = 4096;
const MAX_READ_ATTEMPTS = 5;
/** Longest wait at close for the server to confirm what was last sent. */
const CLOSE_FLUSH_MS = 1000;
const INVALID_LOG_WINDOW_MS = 1000;
const INVALID_LOG_MAX_PER_WINDOW = 10;

export class NatsBus implements Bus {
  readonly history: History | undefined;
  private readonly channels = new Map<string, ChannelEntry>();
  private store: StreamHistory | undefined;
  /** Full scans of a channel's history in progress, shared by the catch-ups that need one. */
  private readonly scans = new Map<string, Promise<StoredItem[]>>();
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
    this.history = options.history === undefined ? undefined : { itemsAfter: (channel, afterId) => this.itemsAfter(channel, afterId) };
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
      this.announce(entry, 'subscribed');
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
      if (this.store !== undefined) {
        // Stored before we answer: a sidecar that was disconnected will find them in history.
        await this.store.publish(subjects, payloads);
        return;
      }
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
      this.announce(entry, 'unsubscribed');
      entry.readToken = undefined;
    }
    this.channels.clear();
    this.toConfirm.clear();
    const nc = this.nc;
    this.nc = undefined;
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
    if (this.options.history !== undefined) {
      this.store = new StreamHistory(nc, this.options.history, this.options.subjectPrefix, this.log,
        (subject, cause) => this.onInvalidPayload(subject, cause));
    }
    for (const entry of this.channels.values()) {
      entry.sub = nc.subscribe(entry.subject, { callback: entry.onMessage });
      this.announce(entry, 'subscribed');
    }
    void this.watchStatus(nc);
    void nc.closed().then((err) => this.onClosed(nc, err));
    // Connected (and ready for publishes) once the server has the subscriptions made so far.
    const epoch = this.epoch;
    nc.flush().then(
      () => this.whenReady(nc, epoch, 'nats connected'),
      () => {}, // lost at once: the reconnect confirms them
    );
  }

  /**
   * The server has our subscriptions (and, with history, the stream exists): connected, and
   * every channel live again, resumed from history where the bus knows its position.
   */
  private async whenReady(nc: NatsConnection, epoch: number, message: string): Promise<void> {
    if (!(await this.ensureStream(nc, epoch))) return;
    if (epoch !== this.epoch || this.nc !== nc || this.isClosing) return;
    this.log.info({ server: nc.getServer(), channels: this.channels.size }, message);
    this.setStatus({ type: 'connected' });
    const fresh: ChannelEntry[] = [];
    for (const entry of this.channels.values()) {
      if (entry.sub === undefined) continue;
      const from = entry.lastSeq ?? entry.baselineSeq;
      if (this.store !== undefined && from !== undefined && entry.wasLive) {
        this.markLive(entry, LiveCause.Resumed);
        void this.readMissed(entry, 'reconnect');
      } else {
        if (!entry.wasLive) fresh.push(entry);
        this.markLive(entry);
      }
    }
    void this.recordBaseline(fresh);
  }

  /** With history, waits until the stream is set up (retrying while this connection lasts); false if it ended. */
  private async ensureStream(nc: NatsConnection, epoch: number): Promise<boolean> {
    const store = this.store;
    if (store === undefined) return true;
    for (let failures = 0; ; failures++) {
      if (epoch !== this.epoch || this.nc !== nc || this.isClosing) return false;
      try {
        await store.ensureStream();
        return true;
      } catch (err) {
        const error = errorText(err);
        if (failures === 0) this.log.error({ code: 'KG_ERR_HISTORY_UNAVAILABLE', error }, 'jetstream history unavailable, retrying');
        this.setStatus({ type: 'connecting', error });
        await new Promise((resolve) => setTimeout(resolve, this.options.reconnectWaitMs));
      }
    }
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
    // Events published while disconnected may be lost: tell backends again what we hold.
    for (const entry of this.channels.values()) this.announce(entry, 'subscribed');
    nc.flush().then(
      () => this.whenReady(nc, epoch, 'nats reconnected'),
      () => {}, // lost again: the next reconnect starts over
    );
  }

  private onClosed(nc: NatsConnection, err: void | Error): void {
    if (this.nc !== nc || this.isClosing) return;
    // Only happens when nats.js gives up (e.g. the server rejects our credentials): start over.
    this.log.error({ error: err ? errorText(err) : undefined }, 'nats connection closed, reconnecting');
    this.nc = undefined;
    this.store = undefined;
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
    const history = this.options.history;
    const storedSubject = channelToSubject(this.options.subjectPrefix, channel);
    const entry: ChannelEntry = {
      channel,
      subject: history === undefined ? storedSubject : channelToSubject(history.republishPrefix, channel),
      handlers: new Set(),
      sub: undefined,
      isLive: false,
      wasLive: false,
      lingerTimer: undefined,
      onMessage: history === undefined ? (err, msg) => this.onMessage(entry, err, msg) : (err, msg) => this.onStoredMessage(entry, err, msg),
      storedSubject,
      lastSeq: undefined,
      baselineSeq: undefined,
      held: undefined,
      isHeldTruncated: false,
      readToken: undefined,
      recentSeqs: history === undefined ? undefined : new Map(),
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
        // Not before the stream is set up (whenReady marks them then).
        if (this.current.type !== 'connected') return;
        const live: ChannelEntry[] = [];
        for (const entry of batch) {
          if (this.channels.get(entry.channel) === entry && entry.sub !== undefined) {
            this.markLive(entry);
            live.push(entry);
          }
        }
        void this.recordBaseline(live);
      },
      () => {},
    );
  }

  private markLive(entry: ChannelEntry, cause?: LiveCause): void {
    if (entry.isLive) return;
    entry.isLive = true;
    const why = cause ?? (entry.wasLive ? LiveCause.Resubscribed : LiveCause.Subscribed);
    entry.wasLive = true;
    this.emit({ type: 'channel-live', channel: entry.channel, cause: why });
  }

  private release(entry: ChannelEntry): void {
    entry.lingerTimer = undefined;
    if (entry.handlers.size > 0 || this.channels.get(entry.channel) !== entry) return;
    this.channels.delete(entry.channel);
    this.toConfirm.delete(entry);
    entry.isLive = false;
    entry.readToken = undefined;
    entry.held = undefined;
    this.announce(entry, 'unsubscribed');
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

  // --- history (JetStream) ------------------------------------------------------------------------

  /** A republished stored item: its headers carry the stream sequence and the channel's previous one. */
  private onStoredMessage(entry: ChannelEntry, err: NatsError | null, msg: Msg): void {
    if (err !== null) {
      this.log.error({ subject: entry.subject, error: errorText(err) }, 'nats subscription error');
      return;
    }
    const headers = msg.headers;
    const seq = Number(headers?.get('Nats-Sequence'));
    const lastSubjectSeq = Number(headers?.get('Nats-Last-Sequence'));
    if (!Number.isSafeInteger(seq) || seq <= 0 || !Number.isSafeInteger(lastSubjectSeq) || lastSubjectSeq < 0) {
      this.onInvalidPayload(msg.subject, new Error('no Nats-Sequence / Nats-Last-Sequence headers: only the JetStream republish may publish here'));
      return;
    }
    const item = this.store?.parse(msg.subject, entry.channel, msg.data);
    if (item === undefined) return;
    item.seq = seq;
    this.acceptStored(entry, { seq, lastSubjectSeq, item }, 0);
  }

  /**
   * Delivers a stored item once and in order; a gap before it (above `readTo`, up to which the
   * stream was just read) starts a read from the stream.
   */
  private acceptStored(entry: ChannelEntry, stored: StoredItem, readTo: number): void {
    const held = entry.held;
    if (held !== undefined) {
      if (held.length < MAX_HELD) held.push(stored);
      else entry.isHeldTruncated = true;
      return;
    }
    const last = entry.lastSeq;
    if (last !== undefined) {
      if (stored.seq <= last) {
        this.emit({ type: 'history-duplicate', channel: entry.channel });
        return;
      }
      if (stored.lastSubjectSeq !== undefined && stored.lastSubjectSeq > last && stored.lastSubjectSeq > readTo) {
        entry.held = [stored];
        void this.readMissed(entry, 'gap');
        return;
      }
    }
    this.handOut(entry, stored);
  }

  private handOut(entry: ChannelEntry, stored: StoredItem): void {
    entry.lastSeq = stored.seq;
    const id = stored.item.id;
    const recent = entry.recentSeqs;
    if (id !== undefined && recent !== undefined) {
      recent.delete(id);
      recent.set(id, stored.seq);
      if (recent.size > MAX_RECENT_IDS) recent.delete(recent.keys().next().value as string);
    }
    for (const handler of entry.handlers) {
      try {
        handler(stored.item);
      } catch (handlerErr) {
        this.log.error({ err: handlerErr, channel: entry.channel }, 'item handler failed');
      }
    }
  }

  /**
   * Reads the channel's items after the last one handed out (or after the baseline) from the
   * stream, then the live items held meanwhile. Abandoned when the connection drops: the
   * reconnect starts a new read.
   */
  private async readMissed(entry: ChannelEntry, cause: 'reconnect' | 'gap'): Promise<void> {
    const store = this.store;
    if (store === undefined) return;
    const token = {};
    entry.readToken = token;
    entry.held ??= [];
    const epoch = this.epoch;
    const isCurrent = (): boolean => entry.readToken === token && this.channels.get(entry.channel) === entry;
    let count = 0;
    /** Sequences up to this one were read (or are gone): a gap at or below it is not read again. */
    let coveredTo = Number.POSITIVE_INFINITY;
    for (let attempt = 1; ; attempt++) {
      try {
        do {
          entry.isHeldTruncated = false;
          coveredTo = Number.POSITIVE_INFINITY;
          const from = (entry.lastSeq ?? entry.baselineSeq ?? 0) + 1;
          for await (const stored of store.readFrom(entry.storedSubject, entry.channel, from)) {
            if (!isCurrent()) return;
            // The live items held from here on continue the read: stop, so a busy channel's
            // read ends at the first held item instead of chasing the stream's end.
            const firstHeld = entry.held?.[0]?.seq;
            if (firstHeld !== undefined && !entry.isHeldTruncated && stored.seq >= firstHeld) {
              coveredTo = firstHeld - 1;
              break;
            }
            if (entry.lastSeq !== undefined && stored.seq <= entry.lastSeq) continue;
            this.handOut(entry, stored);
            count++;
          }
          if (!isCurrent()) return;
          // Live items were dropped while reading (too many held): they are stored, read again.
        } while (entry.isHeldTruncated);
        break;
      } catch (err) {
        if (!isCurrent() || epoch !== this.epoch || this.isClosing) return;
        if (attempt >= MAX_READ_ATTEMPTS) {
          // Hand out what we have; the channel's holds ask the origin (first-subscription refresh).
          this.log.error({ channel: entry.channel, code: 'KG_ERR_HISTORY_UNAVAILABLE', error: errorText(err) }, 'history read failed; refreshing from the origin');
          this.emit({ type: 'channel-live', channel: entry.channel, cause: LiveCause.Resubscribed });
          coveredTo = Number.POSITIVE_INFINITY;
          break;
        }
        this.log.warn({ channel: entry.channel, error: errorText(err), attempt }, 'history read failed, retrying');
        await new Promise((resolve) => setTimeout(resolve, this.options.reconnectWaitMs));
        if (!isCurrent() || epoch !== this.epoch) return;
      }
    }
    // Live items that came meanwhile, in order, once. A gap before one of them within what the
    // read covered is an item the stream no longer has: it is not read again (no loop).
    const held = entry.held ?? [];
    entry.held = undefined;
    entry.readToken = undefined;
    for (const stored of held) this.acceptStored(entry, stored, coveredTo);
    this.log.debug({ channel: entry.channel, cause, items: count }, 'channel resumed from history');
    this.emit({ type: 'channel-resumed', channel: entry.channel, cause, items: count });
  }

  /** Where to resume channels that have not received anything yet: the stream's end when they went live. */
  private async recordBaseline(entries: readonly ChannelEntry[]): Promise<void> {
    const store = this.store;
    if (store === undefined || entries.length === 0) return;
    try {
      const last = await store.lastSequence();
      for (const entry of entries) if (entry.lastSeq === undefined && entry.baselineSeq === undefined) entry.baselineSeq = last;
    } catch (err) {
      // Those channels are refreshed from the origin after an outage instead.
      this.log.warn({ error: errorText(err), channels: entries.length }, 'history position unknown for new channels');
    }
  }

  /**
   * History.itemsAfter: from the remembered sequence of `afterId`; else nothing when it is the
   * channel's newest item; else from a scan of the channel's retained items.
   */
  private async itemsAfter(channel: string, afterId: string): Promise<PublishItem[] | undefined> {
    const store = this.store;
    const entry = this.channels.get(channel);
    if (store === undefined || entry === undefined || this.current.type !== 'connected') {
      throw new KgError('KG_ERR_HISTORY_UNAVAILABLE', `history of ${channel} cannot be read now (NATS ${this.current.type})`);
    }
    const known = entry.recentSeqs?.get(afterId);
    if (known !== undefined) {
      const items: PublishItem[] = [];
      for await (const stored of store.readFrom(entry.storedSubject, channel, known + 1)) items.push(stored.item);
      return items;
    }
    // Most clients are in step with the channel: one lookup says so, no scan.
    const last = await store.lastOf(entry.storedSubject, channel);
    if (last === undefined) return undefined;
    if (last.item.id === afterId) return [];
    let scan = this.scans.get(channel);
    if (scan === undefined) {
      scan = this.scan(store, entry);
      this.scans.set(channel, scan);
      const done = scan;
      void done.then(() => this.scans.delete(channel), () => this.scans.delete(channel));
    }
    const all = await scan;
    for (let i = all.length - 1; i >= 0; i--) {
      if (all[i]!.item.id === afterId) return all.slice(i + 1).map((s) => s.item);
    }
    return undefined;
  }

  /** Every retained item of a channel (at most maxMessagesPerChannel); their ids are remembered. */
  private async scan(store: StreamHistory, entry: ChannelEntry): Promise<StoredItem[]> {
    const all: StoredItem[] = [];
    for await (const stored of store.readFrom(entry.storedSubject, entry.channel, 1)) all.push(stored);
    const recent = entry.recentSeqs;
    if (recent !== undefined && this.channels.get(entry.channel) === entry) {
      for (const { seq, item } of all.slice(-MAX_RECENT_IDS)) {
        if (item.id === undefined || recent.has(item.id)) continue;
        recent.set(item.id, seq);
        if (recent.size > MAX_RECENT_IDS) recent.delete(recent.keys().next().value as string);
      }
    }
    return all;
  }

  // --- subscription events ----------------------------------------------------------------------

  private announce(entry: ChannelEntry, event: SubscriptionEvent['event']): void {
    const events = this.options.events;
    const nc = this.nc;
    if (events === undefined || nc === undefined || nc.isClosed()) return;
    const body: SubscriptionEvent = { channel: entry.channel, event, instance: events.instance };
    try {
      nc.publish(channelToSubject(events.prefix, entry.channel), JSON.stringify(body));
    } catch (err) {
      this.log.debug({ channel: entry.channel, event, error: errorText(err) }, 'subscription event not published');
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
