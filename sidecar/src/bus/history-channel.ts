import type { Msg, NatsError } from 'nats';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import { deliverItem, LiveCause, type ItemHandler } from './bus.js';
import type { HistoryStream, StoredItem } from './history-stream.js';
import type { BusConnection } from './nats-connection.js';
import { errorText } from './nats-log.js';
import { invalidPayload, parseNatsPayload } from './payload.js';
import { RecentBudget, RecentItems } from './recent-items.js';

// One channel's delivery with history: it listens to the republished copy of the channel
// (`grip.js.<token>`), whose headers give the item's stream sequence and the previous sequence on
// its channel, and keeps the sequence of the last item it handed out:
//
//   live item ──seq ≤ last──▶ dropped (already delivered)
//             ──previous-on-channel > last──▶ gap: read the missing items from the stream first
//             ──otherwise──▶ delivered, last = seq
//   reconnect ──▶ the channel reads from last + 1 (channel-live cause `resumed`, no origin refresh)
//
// While a channel is read from the stream its live items wait (held) and are then delivered
// in order without repeats, so nothing published during an outage is lost or duplicated.
//
// The headers of a live message are what its sender wrote: anyone allowed to publish on the
// republish subject can write them. So a live item is taken only once the stream itself has
// reported a sequence at least as high as the one it claims (stream info, reads, publish acks;
// HistoryStream.isConfirmed). Until then it waits, with the channel's later items behind it, for
// one stream info request shared by every channel; a claim beyond the stream's end even then is
// forged: dropped and reported as an invalid payload. A forged sequence thus can never become the
// channel's position and make later items look like repeats (docs/security.md, D5).

/** Live items held per channel during a read; beyond it they are dropped and read from the stream. */
const MAX_HELD = 10_000;
/** Item ids remembered per channel: a client's last id among them is found without a scan. */
const MAX_RECENT_IDS = 4096;
const MAX_READ_ATTEMPTS = 5;

/** What a channel's history needs from its layer: the connection and its stream, if any. */
export interface HistorySource {
  readonly link: Pick<BusConnection, 'log' | 'epoch' | 'isClosing' | 'reconnectWaitMs' | 'emit' | 'reportInvalid'>;
  readonly stream: Pick<HistoryStream, 'readFrom' | 'isConfirmed' | 'refreshLast'> | undefined;
}

/** What the channels layer uses of one channel's history (nats-channels.ts). */
export interface HistoryChannel {
  /** The subject live items arrive on: the stream's republished copy. */
  readonly subject: string;
  /** The subscription callback; created once per channel, not per message. */
  readonly onMessage: (err: NatsError | null, msg: Msg) => void;
  /** Whether a stream position is known to resume from after an outage. */
  readonly canResume: boolean;
  /** After a reconnect: reads what was missed, then delivers the live items held meanwhile. */
  resume(): void;
}

export class StoredChannel implements HistoryChannel {
  readonly onMessage = (err: NatsError | null, msg: Msg): void => this.onStoredMessage(err, msg);
  private isOpen = true;
  /** Stream sequence of the last item handed out. */
  private lastSeq: number | undefined;
  /** The stream's last sequence when the channel went live, to resume from if nothing came before an outage. */
  private baselineSeq: number | undefined;
  /** Live items waiting while missed ones are read from the stream. */
  private held: StoredItem[] | undefined;
  /** More live items came during a read than are kept: read the stream again (they are stored). */
  private isHeldTruncated = false;
  /** Identifies the read in progress; a newer read replaces it. */
  private readToken: object | undefined;
  /** Recent item ids with their sequence, to find a client's last id without a scan. */
  private readonly recentSeqs = new Map<string, number>();
  /** Live items, in arrival order, whose sequence the stream has not confirmed yet. */
  private unconfirmed: StoredItem[] | undefined;
  /** More live items came while waiting for confirmation than are kept: read the stream after. */
  private isUnconfirmedTruncated = false;
  private isConfirming = false;

  constructor(
    readonly channel: string,
    readonly subject: string,
    /** The channel's subject in the stream (the subscription is on the republished copy). */
    readonly storedSubject: string,
    private readonly handlers: ReadonlySet<ItemHandler>,
    private readonly source: HistorySource,
    /** The channel's last items handed out, for catch-ups without stream reads (off by default). */
    private readonly recent: RecentItems = new RecentItems(0, new RecentBudget(0)),
  ) {}

  get canResume(): boolean {
    return (this.lastSeq ?? this.baselineSeq) !== undefined;
  }

  resume(): void {
    void this.readMissed('reconnect');
  }

  /** No more delivery; a read in progress is abandoned (the layer's release). */
  close(): void {
    this.isOpen = false;
    this.readToken = undefined;
    this.held = undefined;
    this.unconfirmed = undefined;
    this.recent.clear();
  }

  /** Where to resume from when nothing has been received yet: the stream's end when it went live. */
  setBaseline(last: number): void {
    if (this.lastSeq === undefined && this.baselineSeq === undefined) this.baselineSeq = last;
  }

  /** The stream sequence of a recently delivered (or scanned) item with this id. */
  seqOf(id: string): number | undefined {
    return this.recentSeqs.get(id);
  }

  /**
   * The items handed out after the one with sequence `seq`, from memory; undefined when that
   * item is not among the kept ones (read the stream instead).
   */
  keptAfter(seq: number): PublishItem[] | undefined {
    return this.recent.after(seq);
  }

  /** Remembers the ids of scanned items (newest last) not already known. */
  rememberScanned(items: readonly StoredItem[]): void {
    if (!this.isOpen) return;
    for (const { seq, item } of items.slice(-MAX_RECENT_IDS)) {
      if (item.id === undefined || this.recentSeqs.has(item.id)) continue;
      this.remember(item.id, seq);
    }
  }

  /** A republished stored item: its headers carry the stream sequence and the channel's previous one. */
  private onStoredMessage(err: NatsError | null, msg: Msg): void {
    const link = this.source.link;
    if (err !== null) {
      link.log.error({ subject: this.subject, error: errorText(err) }, 'nats subscription error');
      return;
    }
    const headers = msg.headers;
    const seq = Number(headers?.get('Nats-Sequence'));
    const lastSubjectSeq = Number(headers?.get('Nats-Last-Sequence'));
    if (!Number.isSafeInteger(seq) || seq <= 0 || !Number.isSafeInteger(lastSubjectSeq) || lastSubjectSeq < 0) {
      link.reportInvalid(invalidPayload(msg.subject, 'no Nats-Sequence / Nats-Last-Sequence headers: only the JetStream republish may publish here'), msg.subject);
      return;
    }
    if (lastSubjectSeq >= seq) {
      link.reportInvalid(invalidPayload(msg.subject, `Nats-Last-Sequence ${lastSubjectSeq} is not before Nats-Sequence ${seq}: only the JetStream republish may publish here`), msg.subject);
      return;
    }
    const item = parseNatsPayload(msg.subject, this.channel, msg.data);
    if (item instanceof KgError) {
      link.reportInvalid(item, msg.subject);
      return;
    }
    item.seq = seq;
    const stored: StoredItem = { seq, lastSubjectSeq, item, bytes: msg.data.length };
    if (this.unconfirmed === undefined && this.source.stream?.isConfirmed(seq) === true) {
      this.accept(stored, 0);
      return;
    }
    const waiting = (this.unconfirmed ??= []);
    if (waiting.length < MAX_HELD) waiting.push(stored);
    else this.isUnconfirmedTruncated = true;
    if (!this.isConfirming) void this.confirmWaiting();
  }

  /**
   * Asks the stream how far it is and takes, in arrival order, the waiting items it has reached.
   * An item that was waiting before the request and claims more is forged: dropped, reported.
   * Items that came during the request and claim more wait for the next one.
   */
  private async confirmWaiting(): Promise<void> {
    const link = this.source.link;
    this.isConfirming = true;
    let failures = 0;
    try {
      while (this.isOpen && this.unconfirmed !== undefined && this.unconfirmed.length > 0) {
        const stream = this.source.stream;
        const judged = this.unconfirmed.length;
        let last: number;
        try {
          if (stream === undefined) throw new Error('no NATS connection');
          last = await stream.refreshLast();
        } catch (err) {
          // Kept until the stream answers; after a reconnect the channel's read covers them too.
          if (failures++ === 0) link.log.warn({ channel: this.channel, error: errorText(err) }, 'history position cannot be confirmed, retrying');
          await new Promise((resolve) => setTimeout(resolve, link.reconnectWaitMs));
          continue;
        }
        const waiting = this.unconfirmed;
        if (!this.isOpen || waiting === undefined) return;
        let taken = 0;
        for (; taken < waiting.length; taken++) {
          const stored = waiting[taken]!;
          if (stored.seq <= last) {
            this.accept(stored, 0);
          } else if (taken < judged) {
            link.reportInvalid(invalidPayload(this.subject, `Nats-Sequence ${stored.seq} is beyond the stream's last sequence ${last}: only the JetStream republish may publish here`), this.subject);
          } else {
            break;
          }
        }
        waiting.splice(0, taken);
        if (waiting.length === 0) this.unconfirmed = undefined;
      }
    } finally {
      this.isConfirming = false;
    }
    if (this.isUnconfirmedTruncated && this.isOpen) {
      this.isUnconfirmedTruncated = false;
      // The items not kept are stored: read them (and what follows) from the stream; a read in
      // progress reads again.
      if (this.held !== undefined) this.isHeldTruncated = true;
      else if (this.lastSeq !== undefined) void this.readMissed('gap');
    }
  }

  /**
   * Delivers a stored item once and in order; a gap before it (above `readTo`, up to which the
   * stream was just read) starts a read from the stream.
   */
  private accept(stored: StoredItem, readTo: number): void {
    const held = this.held;
    if (held !== undefined) {
      if (held.length < MAX_HELD) held.push(stored);
      else this.isHeldTruncated = true;
      return;
    }
    const last = this.lastSeq;
    if (last !== undefined) {
      if (stored.seq <= last) {
        this.source.link.emit({ type: 'history-duplicate', channel: this.channel });
        return;
      }
      if (stored.lastSubjectSeq !== undefined && stored.lastSubjectSeq > last && stored.lastSubjectSeq > readTo) {
        this.held = [stored];
        void this.readMissed('gap');
        return;
      }
    }
    // A live item follows the kept run when the stream says the channel's previous item is its end.
    this.handOut(stored, stored.lastSubjectSeq !== undefined && stored.lastSubjectSeq === this.recent.lastSeq);
  }

  /** `follows`: the item is the channel's next after the newest one kept in memory. */
  private handOut(stored: StoredItem, follows: boolean): void {
    this.recent.append(stored.seq, stored.item, stored.bytes ?? 0, follows);
    this.lastSeq = stored.seq;
    const id = stored.item.id;
    if (id !== undefined) {
      this.recentSeqs.delete(id);
      this.remember(id, stored.seq);
    }
    deliverItem(this.handlers, stored.item, this.source.link.log, this.channel);
  }

  private remember(id: string, seq: number): void {
    const recent = this.recentSeqs;
    recent.set(id, seq);
    if (recent.size > MAX_RECENT_IDS) recent.delete(recent.keys().next().value as string);
  }

  /**
   * Reads the channel's items after the last one handed out (or after the baseline) from the
   * stream, then the live items held meanwhile. Abandoned when the connection drops: the
   * reconnect starts a new read.
   */
  private async readMissed(cause: 'reconnect' | 'gap'): Promise<void> {
    const { link, stream } = this.source;
    if (stream === undefined) return;
    const token = {};
    this.readToken = token;
    this.held ??= [];
    const epoch = link.epoch;
    const isCurrent = (): boolean => this.readToken === token && this.isOpen;
    let count = 0;
    /** Sequences up to this one were read (or are gone): a gap at or below it is not read again. */
    let coveredTo = Number.POSITIVE_INFINITY;
    for (let attempt = 1; ; attempt++) {
      try {
        do {
          this.isHeldTruncated = false;
          coveredTo = Number.POSITIVE_INFINITY;
          const from = (this.lastSeq ?? this.baselineSeq ?? 0) + 1;
          for await (const stored of stream.readFrom(this.storedSubject, this.channel, from)) {
            if (!isCurrent()) return;
            // The live items held from here on continue the read: stop, so a busy channel's
            // read ends at the first held item instead of chasing the stream's end.
            const firstHeld = this.held?.[0]?.seq;
            if (firstHeld !== undefined && !this.isHeldTruncated && stored.seq >= firstHeld) {
              coveredTo = firstHeld - 1;
              break;
            }
            if (this.lastSeq !== undefined && stored.seq <= this.lastSeq) continue;
            // The read goes next-by-subject from the last item handed out: it follows the kept
            // run when that run ends there.
            this.handOut(stored, this.lastSeq !== undefined && this.recent.lastSeq === this.lastSeq);
            count++;
          }
          if (!isCurrent()) return;
          // Live items were dropped while reading (too many held): they are stored, read again.
        } while (this.isHeldTruncated);
        break;
      } catch (err) {
        if (!isCurrent() || epoch !== link.epoch || link.isClosing) return;
        if (attempt >= MAX_READ_ATTEMPTS) {
          // Hand out what we have; the channel's holds ask the origin (first-subscription refresh).
          link.log.error({ channel: this.channel, code: 'KG_ERR_HISTORY_UNAVAILABLE', error: errorText(err) }, 'history read failed; refreshing from the origin');
          link.emit({ type: 'channel-live', channel: this.channel, cause: LiveCause.Resubscribed });
          coveredTo = Number.POSITIVE_INFINITY;
          break;
        }
        link.log.warn({ channel: this.channel, error: errorText(err), attempt }, 'history read failed, retrying');
        await new Promise((resolve) => setTimeout(resolve, link.reconnectWaitMs));
        if (!isCurrent() || epoch !== link.epoch) return;
      }
    }
    // Live items that came meanwhile, in order, once. A gap before one of them within what the
    // read covered is an item the stream no longer has: it is not read again (no loop).
    const held = this.held ?? [];
    this.held = undefined;
    this.readToken = undefined;
    for (const stored of held) this.accept(stored, coveredTo);
    link.log.debug({ channel: this.channel, cause, items: count }, 'channel resumed from history');
    link.emit({ type: 'channel-resumed', channel: this.channel, cause, items: count });
  }
}
