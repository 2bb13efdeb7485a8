import type { JetStreamConfig } from '../config.js';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import type { Bus, BusListener, BusStatus, History, ItemHandler } from './bus.js';
import { BusConnection, type ConnectionOptions } from './nats-connection.js';
import { CoreChannels, type ChannelOptions } from './nats-channels.js';
import { JetStreamHistory } from './nats-history.js';
import { encodeNatsPayload } from './payload.js';
import { channelToSubject } from './subject.js';

// The bus over NATS: a thin front (the Bus methods and publish) over layers that point one way.
//
//   NatsBus
//     ├─▶ CoreChannels      nats-channels.ts   a subscription per channel, delivery, linger,
//     │      │                                  subscription events
//     │      ▼ ChannelHistory, only when `history` is configured
//     ├─▶ JetStreamHistory  nats-history.ts    stream setup, itemsAfter; per channel
//     │                     history-channel.ts (order, gap reads, resume after a reconnect)
//     │                     history-stream.ts  (the stream's API)
//     ▼
//   BusConnection           nats-connection.ts connect / reconnect loop, status, events, log
//                                              throttling; used by every layer above
//
// Live delivery and history reads parse an item with the one parser in payload.ts.

export interface NatsBusOptions extends ConnectionOptions, ChannelOptions {
  /** Keep history in JetStream and deliver from its republished copy (history-channel.ts). */
  history?: JetStreamConfig;
}

export type { SubscriptionEvent } from './nats-channels.js';

export class NatsBus implements Bus {
  readonly history: History | undefined;
  private readonly link: BusConnection;
  private readonly channels: CoreChannels;
  private readonly stored: JetStreamHistory | undefined;

  constructor(private readonly options: NatsBusOptions) {
    this.link = new BusConnection(options);
    const stored = options.history === undefined ? undefined : new JetStreamHistory(this.link, options.history, options.subjectPrefix);
    this.stored = stored;
    this.history = stored === undefined ? undefined : { itemsAfter: (channel, afterId) => stored.itemsAfter(channel, afterId) };
    this.channels = new CoreChannels(this.link, options, stored);
    this.link.start(this.channels, stored === undefined ? undefined : (nc, epoch) => stored.ready(nc, epoch));
  }

  /** Messages dropped because they were not valid publish items (also counted by metrics via events). */
  get invalidPayloadCount(): number {
    return this.link.invalidPayloadCount;
  }

  subscribe(channel: string, onItem: ItemHandler): () => void {
    return this.channels.subscribe(channel, onItem);
  }

  isLive(channel: string): boolean {
    return this.channels.isLive(channel);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    const nc = this.link.nc;
    const status = this.link.status;
    if (this.link.isClosing || nc === undefined || status.type !== 'connected') {
      throw new KgError('KG_ERR_BUS_UNAVAILABLE', `NATS is not connected (${status.type}); the publish was not accepted`);
    }
    // Encode everything first: all items go out, or none does.
    const maxPayload = nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
    const subjects: string[] = [];
    const payloads: Buffer[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const payload = encodeNatsPayload(item);
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
      if (this.stored !== undefined) {
        // Stored before we answer: a sidecar that was disconnected will find them in history.
        await this.stored.publish(subjects, payloads);
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
    return this.link.status;
  }

  listen(listener: BusListener): () => void {
    return this.link.listen(listener);
  }

  close(): Promise<void> {
    return this.link.close();
  }
}
