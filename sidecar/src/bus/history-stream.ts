import {
  DiscardPolicy, nanos, RetentionPolicy, StorageType,
  type JetStreamClient, type JetStreamManager, type NatsConnection, type NatsError, type StreamConfig,
} from 'nats';
import type { Logger } from 'pino';
import type { JetStreamConfig } from '../config.js';
import { KgError } from '../errors.js';
import type { PublishItem } from '../grip/types.js';
import { errorText } from './nats-log.js';
import { parseNatsPayload } from './payload.js';

// The JetStream side of the NATS bus (docs/nats.md, "History"): one stream over every channel
// subject keeps recent items, and the server republishes each stored item, with its stream
// sequence and the previous sequence of its subject, on a parallel subject the sidecars listen
// to. This module sets the stream up, reads a channel's items from a sequence on, and publishes
// with the server's acknowledgement. Only the history layer (nats-history.ts) uses it, one
// instance per connection.

/** An item read from the stream or its republished copy. */
export interface StoredItem {
  seq: number;
  /** The stream sequence of the previous item on the same channel (0: none); absent when read back. */
  lastSubjectSeq?: number;
  item: PublishItem;
  /** The stored payload's size, for the memory the recent items may take. */
  bytes?: number;
}

/** JetStream API error codes we act on (nats-server's JSErrCode values). */
const ERR_STREAM_NOT_FOUND = 10059;
const ERR_STREAM_NAME_IN_USE = 10058;
const ERR_NO_MESSAGE_FOUND = 10037;

/** Where stored items that are not valid publish items are reported (they are skipped). */
export interface InvalidPayloadSink {
  reportInvalid(error: KgError, subject: string): void;
}

export class HistoryStream {
  private jsm: JetStreamManager | undefined;
  private js: JetStreamClient | undefined;
  /** The highest sequence the stream itself has reported (stream info, reads, publish acks). */
  private reportedTo = 0;
  /** The stream info request in flight, and the one queued behind it (refreshLast). */
  private infoInFlight: Promise<number> | undefined;
  private infoQueued: Promise<number> | undefined;

  constructor(
    readonly nc: NatsConnection,
    private readonly config: JetStreamConfig,
    private readonly subjectPrefix: string,
    private readonly log: Logger,
    private readonly invalid: InvalidPayloadSink,
  ) {}

  get streamName(): string {
    return this.config.stream;
  }

  /** Creates the stream, or brings the settings we own in line; rejects with KG_ERR_HISTORY_UNAVAILABLE. */
  async ensureStream(): Promise<void> {
    try {
      const jsm = await this.manager();
      const wanted = this.wantedConfig();
      for (let attempt = 0; attempt < 2; attempt++) {
        let current: StreamConfig;
        try {
          current = (await jsm.streams.info(this.config.stream)).config;
        } catch (err) {
          if (apiCode(err) !== ERR_STREAM_NOT_FOUND) throw err;
          try {
            await jsm.streams.add(wanted);
            this.log.info({ stream: this.config.stream, subjects: wanted.subjects }, 'jetstream stream created');
            return;
          } catch (addErr) {
            // Another sidecar created it first: look again.
            if (apiCode(addErr) === ERR_STREAM_NAME_IN_USE) continue;
            throw addErr;
          }
        }
        const changed = differingSettings(current, wanted);
        if (changed.length > 0) {
          if (current.storage !== wanted.storage) {
            this.log.warn({ stream: this.config.stream, storage: current.storage }, 'jetstream stream keeps its storage type; it cannot be changed in place');
          }
          const { storage: _storage, ...updatable } = wanted;
          // Subjects the operator added stay.
          const subjects = [...new Set([...(current.subjects ?? []), ...wanted.subjects])];
          await jsm.streams.update(this.config.stream, { ...current, ...updatable, subjects });
          this.log.info({ stream: this.config.stream, changed }, 'jetstream stream updated');
        }
        return;
      }
    } catch (err) {
      throw new KgError('KG_ERR_HISTORY_UNAVAILABLE', `JetStream stream ${this.config.stream} cannot be set up: ${errorText(err)}`, { cause: err });
    }
  }

  /** The stream's last sequence now (0 when empty). */
  async lastSequence(): Promise<number> {
    try {
      const last = (await (await this.manager()).streams.info(this.config.stream)).state.last_seq;
      this.noteReported(last);
      return last;
    } catch (err) {
      throw new KgError('KG_ERR_HISTORY_UNAVAILABLE', `JetStream stream ${this.config.stream} cannot be read: ${errorText(err)}`, { cause: err });
    }
  }

  /**
   * Whether the stream has reported a sequence at least this high. A republished copy's
   * `Nats-Sequence` header is what its sender says; only a sequence the stream has reached can
   * be a stored item's (docs/security.md, "NATS → sidecar").
   */
  isConfirmed(seq: number): boolean {
    return seq <= this.reportedTo;
  }

  /**
   * The stream's last sequence, from a stream info request sent after this call: every item
   * republished before the call is stored, so its sequence is at most the answer. Callers share
   * one request in flight and one queued behind it, however many messages wait on them.
   */
  refreshLast(): Promise<number> {
    if (this.infoQueued !== undefined) return this.infoQueued;
    const inFlight = this.infoInFlight;
    if (inFlight === undefined) return this.sendInfo();
    const queued = inFlight.then(noop, noop).then(() => {
      this.infoQueued = undefined;
      return this.sendInfo();
    });
    this.infoQueued = queued;
    return queued;
  }

  private sendInfo(): Promise<number> {
    const request = this.lastSequence();
    this.infoInFlight = request;
    const done = (): void => {
      if (this.infoInFlight === request) this.infoInFlight = undefined;
    };
    request.then(done, done);
    return request;
  }

  private noteReported(seq: number): void {
    if (seq > this.reportedTo) this.reportedTo = seq;
  }

  /**
   * The channel's items with sequence ≥ `fromSeq`, oldest first, until the end of the stream.
   * One request per item (the server's "next by subject" lookup), so nothing is left behind on
   * the server; stored payloads that are not valid items are reported and skipped.
   */
  async *readFrom(subject: string, channel: string, fromSeq: number): AsyncGenerator<StoredItem> {
    const jsm = await this.manager();
    let seq = Math.max(1, fromSeq);
    for (;;) {
      let stored;
      try {
        stored = await jsm.streams.getMessage(this.config.stream, { seq, next_by_subj: subject } as unknown as { seq: number });
      } catch (err) {
        if (apiCode(err) === ERR_NO_MESSAGE_FOUND) return;
        throw new KgError('KG_ERR_HISTORY_UNAVAILABLE', `JetStream stream ${this.config.stream}: reading ${subject} from ${seq} failed: ${errorText(err)}`, { cause: err });
      }
      seq = stored.seq + 1;
      this.noteReported(stored.seq);
      const item = this.parse(subject, channel, stored.data);
      if (item === undefined) continue;
      item.seq = stored.seq;
      yield { seq: stored.seq, item, bytes: stored.data.length };
    }
  }

  /** The channel's newest stored item; undefined when it has none (or it is not a valid item). */
  async lastOf(subject: string, channel: string): Promise<StoredItem | undefined> {
    const jsm = await this.manager();
    let stored;
    try {
      stored = await jsm.streams.getMessage(this.config.stream, { last_by_subj: subject });
    } catch (err) {
      if (apiCode(err) === ERR_NO_MESSAGE_FOUND) return undefined;
      throw new KgError('KG_ERR_HISTORY_UNAVAILABLE', `JetStream stream ${this.config.stream}: reading the last item of ${subject} failed: ${errorText(err)}`, { cause: err });
    }
    this.noteReported(stored.seq);
    const item = this.parse(subject, channel, stored.data);
    if (item === undefined) return undefined;
    item.seq = stored.seq;
    return { seq: stored.seq, item, bytes: stored.data.length };
  }

  /** Publishes in order and resolves once the stream has stored every one. */
  async publish(subjects: readonly string[], payloads: readonly Uint8Array[]): Promise<void> {
    this.js ??= this.nc.jetstream();
    const js = this.js;
    const acks: Array<Promise<void>> = [];
    for (let i = 0; i < subjects.length; i++) acks.push(js.publish(subjects[i]!, payloads[i]!).then((ack) => {
      if (ack.stream === this.config.stream) this.noteReported(ack.seq);
    }));
    await Promise.all(acks);
  }

  /** Parses a stored payload; undefined (reported) when it is not a valid item. */
  private parse(subject: string, channel: string, data: Uint8Array): PublishItem | undefined {
    const item = parseNatsPayload(subject, channel, data);
    if (!(item instanceof KgError)) return item;
    this.invalid.reportInvalid(item, subject);
    return undefined;
  }

  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await this.nc.jetstreamManager();
    return this.jsm;
  }

  private wantedConfig(): StreamConfig {
    const c = this.config;
    return {
      name: c.stream,
      subjects: [`${this.subjectPrefix}>`],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      storage: c.storage === 'memory' ? StorageType.Memory : StorageType.File,
      num_replicas: c.replicas,
      max_age: nanos(c.maxAgeSec * 1000),
      max_msgs: c.maxMessages,
      max_msgs_per_subject: c.maxMessagesPerChannel,
      max_bytes: c.maxBytes,
      republish: { src: `${this.subjectPrefix}>`, dest: `${c.republishPrefix}>` },
    } as StreamConfig;
  }
}

/** Names of the settings we own that differ in the current stream config. */
function differingSettings(current: StreamConfig, wanted: StreamConfig): string[] {
  const out: string[] = [];
  if (!wanted.subjects.every((s) => current.subjects?.includes(s))) out.push('subjects');
  if (current.republish?.src !== wanted.republish?.src || current.republish?.dest !== wanted.republish?.dest
    || current.republish?.headers_only === true) out.push('republish');
  for (const key of ['max_age', 'max_msgs', 'max_msgs_per_subject', 'max_bytes', 'num_replicas', 'discard'] as const) {
    if (current[key] !== wanted[key]) out.push(key);
  }
  return out;
}

function noop(): void {}

function apiCode(err: unknown): number | undefined {
  return (err as NatsError | undefined)?.api_error?.err_code;
}
