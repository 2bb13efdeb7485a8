import test from 'ava';
import { startFeedOrigin } from '../helpers/feed-origin.js';
import { openStream, request, type StreamReader } from '../helpers/http.js';
import { NatsServer, waitUntil } from '../helpers/nats-server.js';
import { JetStreamPublisher, numberedItem, range, sseNumbers, tally } from '../helpers/reliability.js';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { SidecarProcess } from '../helpers/sidecar-process.js';

// A sidecar process killed (SIGKILL, no drain) while its SSE clients are held, items published
// while no sidecar runs, and a new sidecar started: clients reconnecting with Last-Event-ID on a
// route listed in nats.jetstream.lastEventIdPaths get what they missed from JetStream, once.

const YAML = `
nats:
  jetstream:
    stream: KILLED
    lastEventIdPaths: ['/sse']
`;

/** The last `id:` an SSE client received (what an EventSource sends as Last-Event-ID). */
function lastEventId(text: string): string {
  const ids = [...text.matchAll(/^id: (.*)$/gm)];
  return ids[ids.length - 1]?.[1] ?? '';
}

async function holdOn(nats: NatsServer, side: SidecarProcess | TestSidecar, clients: StreamReader[]): Promise<void> {
  await Promise.all(clients.map((c) => c.waitFor('event: open\n')));
  await waitUntil('the sidecar listens to the channel', async () => (await nats.subjects()).includes('grip.js.feed'));
  await waitUntil('the sidecar is ready', async () => (await request(`${side.controlUri}readyz`)).status === 200);
}

test('clients of a killed sidecar reconnect to a new one with Last-Event-ID and get what they missed, once', async (t) => {
  const nats = await NatsServer.start({ jetstream: true });
  t.teardown(() => nats.dispose());
  const origin = await startFeedOrigin();
  t.teardown(() => origin.close());
  const args = ['--origin', origin.url, '--nats', nats.url, '--workers', '1'];
  const first = await SidecarProcess.start(args, { yaml: YAML });
  t.teardown(() => first.stop().then(() => undefined));
  const publisher = await JetStreamPublisher.connect(nats.url);
  t.teardown(() => publisher.close());

  const before = await Promise.all(range(1, 3).map(() => openStream(first.url('/sse?ch=feed'))));
  await holdOn(nats, first, before);
  await publisher.publish('feed', range(1, 10).map((n) => numberedItem(n)));
  await Promise.all(before.map((c) => c.waitFor('data: 10\n')));

  first.signal('SIGKILL');
  await first.exited();
  await Promise.all(before.map((c) => c.waitForEnd()));
  // Nobody is there to deliver these; JetStream keeps them.
  await publisher.publish('feed', range(11, 40).map((n) => numberedItem(n)));

  // The new one runs in this process (starting a process costs more and tests nothing more here).
  const second = await startTestSidecar({
    origin: origin.url, nats: { servers: nats.url, jetstream: { stream: 'KILLED', lastEventIdPaths: ['/sse'] } },
  });
  t.teardown(() => second.close());
  const after = await Promise.all(before.map((c) => openStream(second.url('/sse?ch=feed'), { 'Last-Event-ID': lastEventId(c.text) })));
  t.teardown(() => { for (const c of after) c.close(); });
  // A client without Last-Event-ID starts from the present.
  const fresh = await openStream(second.url('/sse?ch=feed'));
  t.teardown(() => fresh.close());
  await holdOn(nats, second, [...after, fresh]);
  await Promise.all(after.map((c) => c.waitFor('data: 40\n')));
  await publisher.publish('feed', range(41, 50).map((n) => numberedItem(n)));
  await Promise.all([...after, fresh].map((c) => c.waitFor('data: 50\n')));

  const published = range(1, 50);
  const results = before.map((c, i) => tally(published, [...sseNumbers(c.text), ...sseNumbers(after[i]!.text)]));
  for (const result of results) t.deepEqual(result, { published: 50, delivered: 50, duplicated: 0, lost: 0, inOrder: true });
  t.deepEqual(sseNumbers(after[0]!.text), range(11, 50), 'the new connection starts right after Last-Event-ID');
  t.deepEqual(sseNumbers(fresh.text), range(41, 50));
  t.log(`sidecar killed, 30 of 50 published while none ran: ${results.length} clients, `
    + `${results.reduce((n, r) => n + r.delivered, 0)} delivered, ${results.reduce((n, r) => n + r.duplicated, 0)} duplicated, `
    + `${results.reduce((n, r) => n + r.lost, 0)} lost, in order: ${results.every((r) => r.inOrder)}`);
});
