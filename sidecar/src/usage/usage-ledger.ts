// Usage metering (docs/kong.md, "Usage metering"): per consumer and channel, the published
// messages and bytes delivered to clients, and per consumer the connections and connection time,
// over fixed periods. No I/O and no clock of its own (times come in as epoch ms); the publisher
// (usage-publisher.ts) closes periods and sends the records.
//
// Hot path: delivered() is called for every message written to a client socket. It finds the
// channel's counters in a Map and adds two numbers; it allocates only for a channel's first
// message of a period. Connection figures are kept per consumer as sums, so closing a period
// does not visit every connection:
//   connection seconds of the open ones = openCount · periodEnd − Σ max(openedAt, periodStart)
//
// What a period's records hold:
// - one record per (consumer, channel) with messages and bytes delivered from that channel
//   (bytes: the published content, without HTTP chunk or WebSocket frame overhead);
// - one record per consumer with channel null: `connections` (open at any time during the
//   period) and `connectionSeconds` (the part of their time inside it); messages and bytes 0.
// So every total is a plain sum over records, and a connection on several channels is counted once.

export interface UsageRecord {
  /** The consumer id as signed in the handoff; null for anonymous (or standalone) connections. */
  consumer: string | null;
  channel: string | null;
  messages: number;
  bytes: number;
  connections: number;
  connectionSeconds: number;
  /** ISO 8601 UTC. */
  periodStart: string;
  periodEnd: string;
  sidecar: string;
}

interface ChannelCounts {
  messages: number;
  bytes: number;
}

class ConsumerAccount {
  readonly channels = new Map<string, ChannelCounts>();
  /** Connections open now. */
  openCount = 0;
  /** Σ max(openedAt, periodStart) over the open connections. */
  openStartSum = 0;
  /** Connections open at any time in this period (open at its start, or opened in it). */
  connections = 0;
  /** Connection ms of connections that closed in this period (their part inside it). */
  closedMs = 0;

  constructor(readonly consumer: string | null) {}
}

/** One connection's meter: delivered() per message, close() once when it ends. */
export interface ConnectionUsage {
  delivered(channel: string, bytes: number): void;
  close(): void;
}

class MeteredConnection implements ConnectionUsage {
  private isClosed = false;

  constructor(private readonly ledger: UsageLedger, private readonly account: ConsumerAccount, readonly openedAt: number) {}

  delivered(channel: string, bytes: number): void {
    let counts = this.account.channels.get(channel);
    if (counts === undefined) {
      counts = { messages: 0, bytes: 0 };
      this.account.channels.set(channel, counts);
    }
    counts.messages++;
    counts.bytes += bytes;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.ledger.closed(this.account, this.openedAt);
  }
}

export interface PeriodTotals {
  messages: number;
  bytes: number;
  connectionSeconds: number;
}

export class UsageLedger {
  private readonly accounts = new Map<string | null, ConsumerAccount>();
  private periodStart: number;

  constructor(private readonly sidecar: string, start: number, private readonly now: () => number) {
    this.periodStart = start;
  }

  /** A connection of `consumer` opens now. */
  open(consumer: string | null): ConnectionUsage {
    let account = this.accounts.get(consumer);
    if (account === undefined) {
      account = new ConsumerAccount(consumer);
      this.accounts.set(consumer, account);
    }
    const at = Math.max(this.now(), this.periodStart);
    account.openCount++;
    account.openStartSum += at;
    account.connections++;
    return new MeteredConnection(this, account, at);
  }

  /** Called by the connection's close(). */
  closed(account: ConsumerAccount, openedAt: number): void {
    const at = this.now();
    const from = Math.max(openedAt, this.periodStart);
    account.openCount--;
    account.openStartSum -= from;
    account.closedMs += Math.max(0, at - from);
  }

  /**
   * Ends the current period now: its records (only consumers and channels with something to
   * report) and their totals; the next period starts at once. Connections still open carry over.
   */
  closePeriod(): { records: UsageRecord[]; totals: PeriodTotals } {
    const end = Math.max(this.now(), this.periodStart);
    const periodStart = new Date(this.periodStart).toISOString();
    const periodEnd = new Date(end).toISOString();
    const records: UsageRecord[] = [];
    const totals: PeriodTotals = { messages: 0, bytes: 0, connectionSeconds: 0 };
    for (const [key, a] of this.accounts) {
      const openMs = a.openCount * end - a.openStartSum;
      const connectionSeconds = (a.closedMs + openMs) / 1000;
      if (a.connections > 0) {
        records.push({
          consumer: a.consumer, channel: null, messages: 0, bytes: 0, connections: a.connections, connectionSeconds,
          periodStart, periodEnd, sidecar: this.sidecar,
        });
        totals.connectionSeconds += connectionSeconds;
      }
      for (const [channel, c] of a.channels) {
        records.push({
          consumer: a.consumer, channel, messages: c.messages, bytes: c.bytes, connections: 0, connectionSeconds: 0,
          periodStart, periodEnd, sidecar: this.sidecar,
        });
        totals.messages += c.messages;
        totals.bytes += c.bytes;
      }
      // The next period: the open connections were open at its start.
      a.channels.clear();
      a.closedMs = 0;
      a.connections = a.openCount;
      a.openStartSum = a.openCount * end;
      if (a.openCount === 0) this.accounts.delete(key);
    }
    this.periodStart = end;
    return { records, totals };
  }
}
