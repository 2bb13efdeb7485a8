import test from 'ava';
import type { Msg } from 'nats';
import type { BusEvent } from '../../../sidecar/src/bus/bus.js';
import { StoredChannel, type HistorySource } from '../../../sidecar/src/bus/history-channel.js';
import type { StoredItem } from '../../../sidecar/src/bus/history-stream.js';
import { RecentBudget, RecentItems } from '../../../sidecar/src/bus/recent-items.js';
import { encodeNatsPayload } from '../../../sidecar/src/bus/payload.js';
import type { KgError } from '../../../sidecar/src/errors.js';
import { testLogger, within } from '../../helpers/buses.js';
import { ItemCollector, streamItem } from '../../helpers/bus-items.js';

// One channel's ordering decisions with history, without a server: live messages carry the
// republish headers, and a fake stream answers reads from a list of stored items.

const CHANNEL = 'news';
const REPUBLISHED = 'grip.js.news';

/** A republished message: stream sequence `seq`, previous sequence on the channel `lastSeq`. */
function live(seq: number, lastSeq: number, text: string): Msg {
  return message(text, { 'Nats-Sequence': String(seq), 'Nats-Last-Sequence': String(lastSeq) });
}

function message(text: string, headers: Record<string, string> | undefined, data = encodeNatsPayload(streamItem(CHANNEL, text))): Msg {
  const found = headers === undefined ? undefined : { get: (key: string) => headers[key] ?? '' };
  return { subject: REPUBLISHED, data, headers: found } as unknown as Msg;
}

/** Resolves once `done` holds, checked each turn of the event loop. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

function stored(seq: number, text: string): StoredItem {
  return { seq, item: streamItem(CHANNEL, text, { seq }) };
}

/** A channel over a fake connection and stream; reads wait for `gate` when one is set. */
function setUp(items: StoredItem[] = [], options: { failReads?: boolean; streamLast?: number; recentItems?: number } = {}) {
  /** The stream's last sequence as stream info reports it; what it has confirmed so far. */
  const stream = { last: options.streamLast ?? Number.POSITIVE_INFINITY, confirmed: options.streamLast ?? Number.POSITIVE_INFINITY, infoRequests: 0 };
  const events: BusEvent[] = [];
  const invalid: KgError[] = [];
  const reads: number[] = [];
  let waiters: Array<{ type: BusEvent['type']; resolve: (e: BusEvent) => void }> = [];
  let gate: Promise<void> | undefined;
  let readEnded: () => void = () => {};
  const readEnd = new Promise<void>((resolve) => { readEnded = resolve; });
  const source: HistorySource = {
    link: {
      log: testLogger(), epoch: 0, isClosing: false, reconnectWaitMs: 1,
      emit: (event) => {
        events.push(event);
        waiters = waiters.filter((w) => (w.type === event.type ? (w.resolve(event), false) : true));
      },
      reportInvalid: (error) => invalid.push(error),
    },
    stream: {
      async *readFrom(_subject, _channel, fromSeq) {
        reads.push(fromSeq);
        try {
          await gate;
          if (options.failReads === true) throw new Error('stream unavailable');
          for (const s of items) if (s.seq >= fromSeq) yield s;
        } finally {
          readEnded();
        }
      },
      isConfirmed: (seq) => seq <= stream.confirmed,
      async refreshLast() {
        stream.infoRequests++;
        await Promise.resolve();
        stream.confirmed = stream.last;
        return stream.last;
      },
    },
  };
  const collector = new ItemCollector();
  const recent = new RecentItems(options.recentItems ?? 0, new RecentBudget(1_000_000));
  const channel = new StoredChannel(CHANNEL, REPUBLISHED, 'grip.ch.news', new Set([collector.handler]), source, recent);
  return {
    channel, collector, events, invalid, reads, stream,
    /** Resolves when the first read from the stream has ended (finished or abandoned). */
    readEnd,
    /** Holds reads until the returned function is called. */
    holdReads(): () => void {
      let open!: () => void;
      gate = new Promise((resolve) => { open = resolve; });
      return open;
    },
    next<T extends BusEvent['type']>(type: T): Promise<Extract<BusEvent, { type: T }>> {
      return new Promise((resolve) => waiters.push({ type, resolve: resolve as (e: BusEvent) => void }));
    },
  };
}

test('delivers live items with their stream sequence and drops one that comes again', (t) => {
  const { channel, collector, events } = setUp();
  channel.onMessage(null, live(1, 0, 'a'));
  channel.onMessage(null, live(2, 1, 'b'));
  channel.onMessage(null, live(2, 1, 'b'));
  t.deepEqual(collector.texts, ['a', 'b']);
  t.deepEqual(collector.items.map((i) => i.seq), [1, 2]);
  t.deepEqual(events, [{ type: 'history-duplicate', channel: CHANNEL }]);
});

test('reads the items missing before a live item from the stream, then delivers it, each once', async (t) => {
  const { channel, collector, reads, next } = setUp([stored(2, 'b'), stored(3, 'c'), stored(4, 'd')]);
  channel.onMessage(null, live(1, 0, 'a'));
  const resumed = next('channel-resumed');
  channel.onMessage(null, live(4, 3, 'd'));
  t.deepEqual(await resumed, { type: 'channel-resumed', channel: CHANNEL, cause: 'gap', items: 2 });
  t.deepEqual(reads, [2]);
  t.deepEqual(collector.texts, ['a', 'b', 'c', 'd']);
});

test('does not read again for a gap the stream no longer has', async (t) => {
  const { channel, collector, reads, next } = setUp([]);
  channel.onMessage(null, live(1, 0, 'a'));
  const resumed = next('channel-resumed');
  channel.onMessage(null, live(4, 3, 'd'));
  t.is((await resumed).items, 0);
  t.deepEqual(reads, [2]);
  t.deepEqual(collector.texts, ['a', 'd']);
});

test('reports a message without the republish headers and delivers nothing', (t) => {
  const { channel, collector, invalid } = setUp();
  channel.onMessage(null, message('x', undefined));
  channel.onMessage(null, message('y', { 'Nats-Last-Sequence': '4' }));
  channel.onMessage(null, message('z', { 'Nats-Sequence': 'five', 'Nats-Last-Sequence': '4' }));
  t.deepEqual(collector.texts, []);
  t.is(invalid.length, 3);
  for (const error of invalid) {
    t.is(error.code, 'KG_ERR_NATS_PAYLOAD_INVALID');
    t.regex(error.message, /^NATS message on grip\.js\.news: no Nats-Sequence \/ Nats-Last-Sequence headers/);
  }
});

test('reports a stored item that is not a valid payload, with the shared parser\'s error', (t) => {
  const { channel, collector, invalid } = setUp();
  channel.onMessage(null, message('x', { 'Nats-Sequence': '1', 'Nats-Last-Sequence': '0' }, Buffer.from('{"formats":{}}')));
  t.deepEqual(collector.texts, []);
  t.is(invalid.length, 1);
  t.regex(invalid[0]!.message, /no formats specified/);
});

test('resumes after a reconnect from the baseline, delivering live items held meanwhile after it', async (t) => {
  const { channel, collector, reads, holdReads, next } = setUp([stored(6, 'f'), stored(7, 'g'), stored(8, 'h')]);
  t.false(channel.canResume);
  channel.setBaseline(5);
  t.true(channel.canResume);
  const open = holdReads();
  const resumed = next('channel-resumed');
  channel.resume();
  channel.onMessage(null, live(8, 7, 'h')); // arrives while the stream is read: held
  t.deepEqual(collector.texts, []);
  open();
  t.deepEqual(await resumed, { type: 'channel-resumed', channel: CHANNEL, cause: 'reconnect', items: 2 });
  t.deepEqual(reads, [6]);
  t.deepEqual(collector.texts, ['f', 'g', 'h']);
});

test('keeps the position it has rather than a later baseline', (t) => {
  const { channel, collector, reads } = setUp();
  channel.onMessage(null, live(3, 0, 'c'));
  channel.setBaseline(10);
  t.true(channel.canResume);
  channel.onMessage(null, live(4, 3, 'd')); // no gap: 3 was the last one handed out
  t.deepEqual(collector.texts, ['c', 'd']);
  t.deepEqual(reads, []);
});

test('abandons a read in progress when closed', async (t) => {
  const { channel, collector, events, holdReads, readEnd } = setUp([stored(2, 'b'), stored(3, 'c')]);
  channel.setBaseline(1);
  const open = holdReads();
  channel.resume();
  channel.close();
  open();
  await readEnd;
  t.deepEqual(collector.texts, []);
  t.deepEqual(events, []);
});

test('retries a failing read, then goes live again so holds refresh from the origin', async (t) => {
  const { channel, collector, reads, next } = setUp([], { failReads: true });
  channel.setBaseline(1);
  const refreshed = next('channel-live');
  const resumed = next('channel-resumed');
  channel.resume();
  t.deepEqual(await refreshed, { type: 'channel-live', channel: CHANNEL, cause: 'resubscribed' });
  t.is((await resumed).items, 0);
  t.is(reads.length, 5);
  t.deepEqual(collector.texts, []);
});

test('a live item claiming a sequence beyond the stream\'s end is reported and dropped; the next ones are delivered', async (t) => {
  const { channel, collector, invalid, events, stream } = setUp([], { streamLast: 1 });
  channel.onMessage(null, live(1, 0, 'a'));
  channel.onMessage(null, live(9_000_000_000_000, 1, 'forged'));
  await within('the forged item judged', until(() => invalid.length > 0));
  t.deepEqual(collector.texts, ['a']);
  t.is(invalid.length, 1);
  t.regex(invalid[0]!.message, /Nats-Sequence 9000000000000 is beyond the stream's last sequence 1/);
  stream.last = 3;
  channel.onMessage(null, live(2, 1, 'b'));
  channel.onMessage(null, live(3, 2, 'c'));
  await within('three items', until(() => collector.texts.length >= 3));
  t.deepEqual(collector.texts, ['a', 'b', 'c']);
  t.false(events.some((e) => e.type === 'history-duplicate'));
});

test('live items wait, in order, for the stream to confirm their sequence; one request serves those that came before it', async (t) => {
  const { channel, collector, stream } = setUp([], { streamLast: 0 });
  stream.last = 3;
  channel.onMessage(null, live(1, 0, 'a'));
  channel.onMessage(null, live(2, 1, 'b'));
  t.deepEqual(collector.texts, []);
  channel.onMessage(null, live(3, 2, 'c'));
  await within('three items', until(() => collector.texts.length >= 3));
  t.deepEqual(collector.texts, ['a', 'b', 'c']);
  t.is(stream.infoRequests, 1);
  channel.onMessage(null, live(2, 1, 'b')); // confirmed already: a repeat, dropped at once
  t.deepEqual(collector.texts, ['a', 'b', 'c']);
});

test('reports a live item whose previous-sequence header is not before its own sequence', (t) => {
  const { channel, collector, invalid } = setUp();
  channel.onMessage(null, live(1, 9_000_000_000_000, 'forged'));
  channel.onMessage(null, live(2, 2, 'forged'));
  t.deepEqual(collector.texts, []);
  t.is(invalid.length, 2);
  t.regex(invalid[0]!.message, /Nats-Last-Sequence 9000000000000 is not before Nats-Sequence 1/);
});

const keptTexts = (channel: StoredChannel, seq: number): string[] | undefined =>
  channel.keptAfter(seq)?.map((i) => (i.formats['http-stream'] as { content: Buffer }).content.toString());

test('keeps the items it hands out, in an unbroken run, for catch-ups from memory', (t) => {
  const { channel } = setUp([], { recentItems: 10 });
  channel.onMessage(null, live(1, 0, 'a'));
  channel.onMessage(null, live(3, 1, 'b'));
  channel.onMessage(null, live(7, 3, 'c'));
  t.deepEqual(keptTexts(channel, 1), ['b', 'c']);
  t.deepEqual(keptTexts(channel, 7), []);
  t.is(channel.keptAfter(2), undefined);
});

test('items read from the stream to fill a gap continue the kept run', async (t) => {
  const { channel, next } = setUp([stored(2, 'b'), stored(3, 'c'), stored(4, 'd')], { recentItems: 10 });
  channel.onMessage(null, live(1, 0, 'a'));
  const resumed = next('channel-resumed');
  channel.onMessage(null, live(4, 3, 'd'));
  await resumed;
  t.deepEqual(keptTexts(channel, 1), ['b', 'c', 'd']);
});

test('a gap that could not be read breaks the run: nothing before it is answered from memory', async (t) => {
  const { channel, next } = setUp([], { recentItems: 10, failReads: true });
  channel.onMessage(null, live(1, 0, 'a'));
  const refreshed = next('channel-live');
  channel.onMessage(null, live(4, 3, 'd'));
  await refreshed;
  await within('the held item delivered', until(() => channel.keptAfter(4) !== undefined));
  t.is(channel.keptAfter(1), undefined);
  t.deepEqual(keptTexts(channel, 4), []);
});

test('closing the channel forgets what it kept', (t) => {
  const { channel } = setUp([], { recentItems: 10 });
  channel.onMessage(null, live(1, 0, 'a'));
  channel.onMessage(null, live(2, 1, 'b'));
  channel.close();
  t.is(channel.keptAfter(1), undefined);
});
