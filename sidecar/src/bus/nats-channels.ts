import type { Msg, NatsConnection, NatsError, Subscription } from 'nats';
import { KgError } from '../errors.js';
import { deliverItem, LiveCause, type ItemHandler } from './bus.js';
import type { HistoryChannel } from './history-channel.js';
import { addSubscriber, stopLinger, type Interest, type InterestOwner } from './interest.js';
import type { BusConnection, ConnectionHooks } from './nats-connection.js';
import { errorText } from './nats-log.js';
import type { ChannelHistory } from './nats-history.js';
import { parseNatsPayload } from './payload.js';
import { channelToSubject } from './subject.js';

// The channels layer of the bus over NATS core. One NATS subscription per channel with local
// interest, like Pushpin's SUB filter; its handlers are reference counted and the subscription
// lingers briefly after the last one leaves, so long-poll clients that re-poll at once do not
// churn interest.
//
// A channel becomes live only once the server has confirmed its SUB (a flush round trip); that
// is the `channel-live` event holds use for the first-subscription refresh (docs/grip.md, "Reliability"). After a
// reconnect every channel goes live again with cause `resubscribed`: items published during the
// outage were not received. With history, a channel whose stream position is known goes live
// with cause `resumed` instead and its history reads what was missed (history-channel.ts).
//
// Subscription events: with `events`, a channel's first local interest and its release are
// announced on `<events.prefix><token>` (docs/nats.md), and re-announced after a reconnect.

export interface ChannelOptions {
  /** Normalised subject prefix (ends in `.`), e.g. `grip.ch.`. */
  subjectPrefix: string;
  /** How long a channel's NATS subscription outlives its last local subscriber. */
  lingerMs: number;
  /** Announce subscribed / unsubscribed channels on `prefix` + token, naming this process `instance`. */
  events?: { prefix: string; instance: string };
}

/** What a subscription event says (docs/nats.md, "Subscription events"). */
export interface SubscriptionEvent {
  channel: string;
  event: 'subscribed' | 'unsubscribed';
  instance: string;
}

interface ChannelEntry extends Interest {
  readonly channel: string;
  readonly subject: string;
  sub: Subscription | undefined;
  isLive: boolean;
  /** Has been live before on this connection, so going live again is a resubscription. */
  wasLive: boolean;
  /** Created once per entry, not per message. */
  readonly onMessage: (err: NatsError | null, msg: Msg) => void;
  /** With history: the channel's stream position and ordering, which then receive its messages. */
  readonly history: HistoryChannel | undefined;
}

export class CoreChannels implements ConnectionHooks {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly toConfirm = new Set<ChannelEntry>();
  private isConfirmScheduled = false;
  private readonly interest: InterestOwner<ChannelEntry>;

  constructor(
    private readonly link: BusConnection,
    private readonly options: ChannelOptions,
    private readonly history: ChannelHistory | undefined,
  ) {
    this.interest = { lingerMs: options.lingerMs, isClosing: () => link.isClosing, release: (entry) => this.release(entry) };
  }

  get size(): number {
    return this.channels.size;
  }

  subscribe(channel: string, onItem: ItemHandler): () => void {
    if (this.link.isClosing) return () => {};
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = this.createEntry(channel);
      this.channels.set(channel, entry);
      this.subscribeUpstream(entry);
      this.announce(entry, 'subscribed');
    } else {
      stopLinger(entry);
    }
    return addSubscriber(entry, onItem, this.interest);
  }

  isLive(channel: string): boolean {
    return this.channels.get(channel)?.isLive === true;
  }

  // --- connection hooks -------------------------------------------------------------------------

  attached(nc: NatsConnection): void {
    for (const entry of this.channels.values()) {
      entry.sub = nc.subscribe(entry.subject, { callback: entry.onMessage });
      this.announce(entry, 'subscribed');
    }
  }

  disconnected(): void {
    for (const entry of this.channels.values()) entry.isLive = false;
  }

  reconnected(): void {
    // Events published while disconnected may be lost: tell backends again what we hold.
    for (const entry of this.channels.values()) this.announce(entry, 'subscribed');
  }

  /** Every channel live again, resumed from history where its position is known. */
  ready(): void {
    const fresh: string[] = [];
    for (const entry of this.channels.values()) {
      if (entry.sub === undefined) continue;
      if (entry.history !== undefined && entry.history.canResume && entry.wasLive) {
        this.markLive(entry, LiveCause.Resumed);
        entry.history.resume();
      } else {
        if (!entry.wasLive) fresh.push(entry.channel);
        this.markLive(entry);
      }
    }
    this.history?.recordBaseline(fresh);
  }

  lost(): void {
    for (const entry of this.channels.values()) {
      entry.sub = undefined;
      entry.isLive = false;
    }
  }

  closing(): void {
    for (const entry of this.channels.values()) {
      if (entry.lingerTimer !== undefined) clearTimeout(entry.lingerTimer);
      this.announce(entry, 'unsubscribed');
      this.history?.release(entry.channel);
    }
    this.channels.clear();
    this.toConfirm.clear();
  }

  // --- channels ---------------------------------------------------------------------------------

  private createEntry(channel: string): ChannelEntry {
    const handlers = new Set<ItemHandler>();
    const history = this.history?.open(channel, handlers);
    const entry: ChannelEntry = {
      channel,
      subject: history?.subject ?? channelToSubject(this.options.subjectPrefix, channel),
      handlers,
      sub: undefined,
      isLive: false,
      wasLive: false,
      lingerTimer: undefined,
      onMessage: history?.onMessage ?? ((err, msg) => this.onMessage(entry, err, msg)),
      history,
    };
    return entry;
  }

  private subscribeUpstream(entry: ChannelEntry): void {
    const nc = this.link.nc;
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
    const nc = this.link.nc;
    if (nc === undefined || this.toConfirm.size === 0) return;
    const batch = [...this.toConfirm];
    this.toConfirm.clear();
    const epoch = this.link.epoch;
    nc.flush().then(
      () => {
        if (epoch !== this.link.epoch || this.link.nc !== nc) return; // a reconnect confirms them instead
        // Not before the bus is ready (with history: the stream is set up); ready() marks them then.
        if (this.link.status.type !== 'connected') return;
        const live: string[] = [];
        for (const entry of batch) {
          if (this.channels.get(entry.channel) === entry && entry.sub !== undefined) {
            this.markLive(entry);
            live.push(entry.channel);
          }
        }
        this.history?.recordBaseline(live);
      },
      () => {},
    );
  }

  private markLive(entry: ChannelEntry, cause?: LiveCause): void {
    if (entry.isLive) return;
    entry.isLive = true;
    const why = cause ?? (entry.wasLive ? LiveCause.Resubscribed : LiveCause.Subscribed);
    entry.wasLive = true;
    this.link.emit({ type: 'channel-live', channel: entry.channel, cause: why });
  }

  private release(entry: ChannelEntry): void {
    entry.lingerTimer = undefined;
    if (entry.handlers.size > 0 || this.channels.get(entry.channel) !== entry) return;
    this.channels.delete(entry.channel);
    this.toConfirm.delete(entry);
    entry.isLive = false;
    this.history?.release(entry.channel);
    this.announce(entry, 'unsubscribed');
    const sub = entry.sub;
    entry.sub = undefined;
    const nc = this.link.nc;
    const released = { type: 'channel-released', channel: entry.channel } as const;
    if (sub === undefined || nc === undefined || this.link.status.type !== 'connected') {
      sub?.unsubscribe(); // nats.js forgets it, so a reconnect does not resend it
      this.link.emit(released);
      return;
    }
    sub.unsubscribe();
    nc.flush().then(
      () => this.link.emit(released),
      () => this.link.emit(released), // the server dropped it with the connection
    );
  }

  // --- delivery (hot path) ----------------------------------------------------------------------

  private onMessage(entry: ChannelEntry, err: NatsError | null, msg: Msg): void {
    if (err !== null) {
      this.link.log.error({ subject: entry.subject, error: errorText(err) }, 'nats subscription error');
      return;
    }
    const item = parseNatsPayload(msg.subject, entry.channel, msg.data);
    if (item instanceof KgError) {
      this.link.reportInvalid(item, msg.subject);
      return;
    }
    deliverItem(entry.handlers, item, this.link.log, entry.channel);
  }

  // --- subscription events ----------------------------------------------------------------------

  private announce(entry: ChannelEntry, event: SubscriptionEvent['event']): void {
    const events = this.options.events;
    const nc = this.link.nc;
    if (events === undefined || nc === undefined || nc.isClosed()) return;
    const body: SubscriptionEvent = { channel: entry.channel, event, instance: events.instance };
    try {
      nc.publish(channelToSubject(events.prefix, entry.channel), JSON.stringify(body));
    } catch (err) {
      this.link.log.debug({ channel: entry.channel, event, error: errorText(err) }, 'subscription event not published');
    }
  }
}
