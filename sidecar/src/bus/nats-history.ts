import type { NatsConnection } from 'nats';
import type { JetStreamConfig } from '../config.js';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import type { History, ItemHandler } from './bus.js';
import { StoredChannel, type HistoryChannel, type HistorySource } from './history-channel.js';
import { HistoryStream, type StoredItem } from './history-stream.js';
import { RecentBudget, RecentItems } from './recent-items.js';
import type { BusConnection } from './nats-connection.js';
import { errorText } from './nats-log.js';
import { channelToSubject } from './subject.js';

// The history layer of the NATS bus (docs/nats.md, "History"), built only when JetStream is
// configured. It owns each channel's stream position (history-channel.ts), sets the stream up
// before the bus says connected, publishes with the stream's acknowledgement, and answers
// History.itemsAfter for clients that come back with a last id. The channels layer reaches it
// only through ChannelHistory; it never calls back into that layer or the bus.

/** What the channels layer (nats-channels.ts) asks of history. */
export interface ChannelHistory {
  /** A channel got local interest: its items arrive, in stream order, through the returned channel. */
  open(channel: string, handlers: ReadonlySet<ItemHandler>): HistoryChannel;
  /** The channel lost local interest (or the bus closes): its reads stop. */
  release(channel: string): void;
  /** These channels just went live: the stream's end now is where they resume from if nothing came. */
  recordBaseline(channels: readonly string[]): void;
}

export class JetStreamHistory implements ChannelHistory, History, HistorySource {
  private readonly channels = new Map<string, StoredChannel>();
  /** Full scans of a channel's history in progress, shared by the catch-ups that need one. */
  private readonly scans = new Map<string, Promise<StoredItem[]>>();
  private current: HistoryStream | undefined;
  /** What every channel's recent items may hold together (config recentBytes). */
  private readonly recentBudget: RecentBudget;

  constructor(
    readonly link: BusConnection,
    private readonly config: JetStreamConfig,
    private readonly subjectPrefix: string,
  ) {
    this.recentBudget = new RecentBudget(config.recentBytes);
  }

  /** The stream over the connection in use; a new connection gets a new one. */
  get stream(): HistoryStream | undefined {
    const nc = this.link.nc;
    if (nc === undefined) return undefined;
    if (this.current?.nc !== nc) this.current = new HistoryStream(nc, this.config, this.subjectPrefix, this.link.log, this.link);
    return this.current;
  }

  open(channel: string, handlers: ReadonlySet<ItemHandler>): HistoryChannel {
    const subject = channelToSubject(this.config.republishPrefix, channel);
    const recent = new RecentItems(this.config.recentItemsPerChannel, this.recentBudget);
    const opened = new StoredChannel(channel, subject, channelToSubject(this.subjectPrefix, channel), handlers, this, recent);
    this.channels.set(channel, opened);
    return opened;
  }

  release(channel: string): void {
    this.channels.get(channel)?.close();
    this.channels.delete(channel);
  }

  recordBaseline(channels: readonly string[]): void {
    const opened: StoredChannel[] = [];
    for (const channel of channels) {
      const found = this.channels.get(channel);
      if (found !== undefined) opened.push(found);
    }
    void this.readBaseline(opened);
  }

  /**
   * The connection's ready step: waits until the stream is set up, retrying while this
   * connection lasts (the bus reports `connecting` meanwhile); false if it ended.
   */
  async ready(nc: NatsConnection, epoch: number): Promise<boolean> {
    const stream = this.stream;
    if (stream === undefined) return false;
    for (let failures = 0; ; failures++) {
      if (!this.link.isCurrent(nc, epoch)) return false;
      try {
        await stream.ensureStream();
        return true;
      } catch (err) {
        const error = errorText(err);
        if (failures === 0) this.link.log.error({ code: 'KG_ERR_HISTORY_UNAVAILABLE', error }, 'jetstream history unavailable, retrying');
        this.link.setStatus({ type: 'connecting', error });
        await new Promise((resolve) => setTimeout(resolve, this.link.reconnectWaitMs));
      }
    }
  }

  /** Publishes through JetStream: stored before we answer, so a sidecar that was away finds them. */
  async publish(subjects: readonly string[], payloads: readonly Uint8Array[]): Promise<void> {
    const stream = this.stream;
    if (stream === undefined) throw new Error('no NATS connection');
    await stream.publish(subjects, payloads);
  }

  /**
   * History.itemsAfter: from the remembered sequence of `afterId`; else nothing when it is the
   * channel's newest item; else from a scan of the channel's retained items.
   */
  async itemsAfter(channel: string, afterId: string): Promise<PublishItem[] | undefined> {
    const stream = this.stream;
    const opened = this.channels.get(channel);
    const status = this.link.status;
    if (stream === undefined || opened === undefined || status.type !== 'connected') {
      throw new KgError('KG_ERR_HISTORY_UNAVAILABLE', `history of ${channel} cannot be read now (NATS ${status.type})`);
    }
    const known = opened.seqOf(afterId);
    if (known !== undefined) {
      // A client a little behind (a reconnect) is served from memory, without a request.
      const kept = opened.keptAfter(known);
      if (kept !== undefined) {
        this.link.emit({ type: 'history-kept', channel, items: kept.length });
        return kept;
      }
      const items: PublishItem[] = [];
      for await (const stored of stream.readFrom(opened.storedSubject, channel, known + 1)) items.push(stored.item);
      return items;
    }
    // Most clients are in step with the channel: one lookup says so, no scan.
    const last = await stream.lastOf(opened.storedSubject, channel);
    if (last === undefined) return undefined;
    if (last.item.id === afterId) return [];
    let scan = this.scans.get(channel);
    if (scan === undefined) {
      scan = this.scan(stream, opened);
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
  private async scan(stream: HistoryStream, opened: StoredChannel): Promise<StoredItem[]> {
    const all: StoredItem[] = [];
    for await (const stored of stream.readFrom(opened.storedSubject, opened.channel, 1)) all.push(stored);
    opened.rememberScanned(all);
    return all;
  }

  private async readBaseline(opened: readonly StoredChannel[]): Promise<void> {
    const stream = this.stream;
    if (stream === undefined || opened.length === 0) return;
    try {
      const last = await stream.lastSequence();
      for (const channel of opened) channel.setBaseline(last);
    } catch (err) {
      // Those channels are refreshed from the origin after an outage instead.
      this.link.log.warn({ error: errorText(err), channels: opened.length }, 'history position unknown for new channels');
    }
  }
}
