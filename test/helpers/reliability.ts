import { connect, type JetStreamClient, type NatsConnection } from 'nats';
import { whenLive, type Bus, type BusStatus } from '../../sidecar/src/bus/bus.js';
import { channelToSubject, DEFAULT_SUBJECT_PREFIX } from '../../sidecar/src/bus/subject.js';

// Shared pieces of the reliability tests: numbered items that chain by id / prev-id and carry
// an SSE event (with `id:`) and a WebSocket message, a JetStream publisher, and the tally each
// fault test reports: published, delivered, duplicated, lost.

/** Item n of a chain on `channel`: id n, prev-id n-1 (none for the first), SSE and WS formats. */
export function numberedItem(n: number, first = 1): Record<string, unknown> {
  return {
    id: String(n),
    ...(n > first ? { 'prev-id': String(n - 1) } : {}),
    formats: {
      'http-stream': { content: `id: ${n}\ndata: ${n}\n\n` },
      'ws-message': { content: String(n) },
    },
  };
}

/** The numbers of the `data:` lines in an SSE text, in arrival order. */
export function sseNumbers(text: string): number[] {
  return [...text.matchAll(/^data: (\d+)$/gm)].map((m) => Number(m[1]));
}

export interface Tally {
  published: number;
  delivered: number;
  duplicated: number;
  lost: number;
  inOrder: boolean;
}

/** What a client received against what was published. */
export function tally(published: readonly number[], received: readonly number[]): Tally {
  const wanted = new Set(published);
  const seen = new Set<number>();
  let duplicated = 0;
  for (const n of received) {
    if (seen.has(n)) duplicated++;
    seen.add(n);
  }
  let lost = 0;
  for (const n of wanted) if (!seen.has(n)) lost++;
  const firstSeen = received.filter((n, i) => received.indexOf(n) === i);
  const inOrder = firstSeen.every((n, i) => i === 0 || n > firstSeen[i - 1]!);
  return { published: published.length, delivered: seen.size, duplicated, lost, inOrder };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A publisher with its own NATS connection that waits for JetStream to store each item. */
export class JetStreamPublisher {
  private constructor(private readonly nc: NatsConnection, private readonly js: JetStreamClient) {}

  static async connect(url: string): Promise<JetStreamPublisher> {
    const nc = await connect({ servers: url });
    return new JetStreamPublisher(nc, nc.jetstream());
  }

  /** Publishes the items in order; resolves once every one is stored. */
  async publish(channel: string, items: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    const subject = channelToSubject(DEFAULT_SUBJECT_PREFIX, channel);
    await Promise.all(items.map((item) => this.js.publish(subject, JSON.stringify(item))));
  }

  close(): Promise<void> {
    return this.nc.close();
  }
}

/** Resolves when the bus reports a status of `type` (at once if it has it). */
export function busStatus(bus: Bus, type: BusStatus['type'] | 'not-connected'): Promise<void> {
  const matches = (s: BusStatus): boolean => (type === 'not-connected' ? s.type !== 'connected' : s.type === type);
  if (matches(bus.status())) return Promise.resolve();
  return new Promise((resolve) => {
    const off = bus.listen((e) => {
      if (e.type === 'status' && matches(e.status)) {
        off();
        resolve();
      }
    });
  });
}

export { whenLive };
