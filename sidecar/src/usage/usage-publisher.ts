import { connect, type NatsConnection } from 'nats';
import { serverCredentials } from '../bus/nats-connection.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { UsageLedger, type ConnectionUsage, type UsageRecord } from './usage-ledger.js';

// Closes a usage period every usage.intervalSec and publishes its records as JSON, one NATS
// message per record, on usage.subject (default grip.usage), for billing or analytics to
// subscribe to. Totals go to Prometheus without a consumer label.
//
// On SIGTERM the sidecar's close() calls close() after every client connection has ended: the
// last partial period is closed then, published, and flushed to the server before the
// connection closes, so a drained sidecar reports everything once. A killed process loses its
// open period. Records that cannot be sent yet (NATS not connected since start) wait, at most
// MAX_WAITING_RECORDS of them; nats.js buffers what is published while it reconnects.

export interface UsageSettings {
  intervalSec: number;
  subject: string;
}

/** Records kept while NATS has never been connected; beyond, the oldest are dropped (counted, logged). */
const MAX_WAITING_RECORDS = 100_000;
/** How long close() waits for the server to confirm the last records. */
const FLUSH_TIMEOUT_MS = 2000;

export class UsagePublisher {
  readonly ledger: UsageLedger;
  private nc: NatsConnection | undefined;
  private readonly connecting: Promise<void>;
  private readonly timer: NodeJS.Timeout;
  private waiting: UsageRecord[] = [];
  private isClosed = false;

  constructor(private readonly options: {
    servers: readonly string[];
    settings: UsageSettings;
    /** This process in the records (host:pid). */
    sidecar: string;
    reconnectWaitMs: number;
    metrics: Metrics;
    log: Logger;
    now?: () => number;
  }) {
    const now = options.now ?? Date.now;
    this.ledger = new UsageLedger(options.sidecar, now(), now);
    this.timer = setInterval(() => this.publishPeriod(), options.settings.intervalSec * 1000);
    this.timer.unref();
    this.connecting = this.start();
  }

  /** Starts metering one connection of `consumer` (null: anonymous). */
  open(consumer: string | null): ConnectionUsage {
    return this.ledger.open(consumer);
  }

  private async start(): Promise<void> {
    const { servers, credentials } = serverCredentials(this.options.servers);
    try {
      const nc = await connect({
        servers, ...credentials, name: `kong-grip usage pid ${process.pid}`, waitOnFirstConnect: true,
        maxReconnectAttempts: -1, reconnectTimeWait: this.options.reconnectWaitMs,
      });
      if (this.isClosed) {
        await nc.close();
        return;
      }
      this.nc = nc;
      const waiting = this.waiting;
      this.waiting = [];
      this.send(waiting);
    } catch (err) {
      if (!this.isClosed) this.options.log.error({ err: String(err) }, 'usage: NATS connection failed; records wait');
    }
  }

  /** Closes the current period and publishes it. */
  publishPeriod(): void {
    const { records, totals } = this.ledger.closePeriod();
    const { metrics } = this.options;
    metrics.usageMessages.inc(totals.messages);
    metrics.usageBytes.inc(totals.bytes);
    metrics.usageConnectionSeconds.inc(totals.connectionSeconds);
    this.send(records);
  }

  private send(records: UsageRecord[]): void {
    if (records.length === 0) return;
    const nc = this.nc;
    if (nc === undefined || nc.isClosed()) {
      this.waiting.push(...records);
      const over = this.waiting.length - MAX_WAITING_RECORDS;
      if (over > 0) {
        this.waiting.splice(0, over);
        this.options.metrics.usageRecords.inc({ result: 'failed' }, over);
        this.options.log.error({ dropped: over }, 'usage: records dropped, NATS not reachable since start');
      }
      return;
    }
    let failed = 0;
    for (const r of records) {
      try {
        nc.publish(this.options.settings.subject, JSON.stringify(r));
      } catch {
        failed++;
      }
    }
    if (failed > 0) {
      this.options.metrics.usageRecords.inc({ result: 'failed' }, failed);
      this.options.log.error({ failed }, 'usage: records could not be published');
    }
    this.options.metrics.usageRecords.inc({ result: 'published' }, records.length - failed);
  }

  /** The last partial period, published and flushed; call once every connection has ended. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    clearInterval(this.timer);
    // Wait briefly for a first connection still under way, so the last period is not lost to it.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.connecting, new Promise((resolve) => { timer = setTimeout(resolve, FLUSH_TIMEOUT_MS); })]);
    clearTimeout(timer);
    this.publishPeriod();
    this.isClosed = true;
    const nc = this.nc;
    this.nc = undefined;
    if (this.waiting.length > 0) {
      this.options.metrics.usageRecords.inc({ result: 'failed' }, this.waiting.length);
      this.options.log.error({ lost: this.waiting.length }, 'usage: records lost at shutdown, NATS not reachable');
      this.waiting = [];
    }
    if (nc === undefined) return;
    try {
      await Promise.race([nc.flush(), new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('flush timed out')), FLUSH_TIMEOUT_MS); })]);
    } catch (err) {
      this.options.log.error({ err: String(err) }, 'usage: the last records may not have reached NATS');
    } finally {
      clearTimeout(timer);
    }
    await nc.close().catch(() => undefined);
  }
}
