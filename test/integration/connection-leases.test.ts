import test from 'ava';
import { ConnectionLeases } from '../../sidecar/src/fleet/connection-leases.js';
import { StoreUnavailable } from '../../sidecar/src/fleet/kv-bucket.js';
import { createLogger } from '../../sidecar/src/log.js';
import { NatsServer } from '../helpers/nats-server.js';
import { useKongNats } from '../helpers/kong-nats.js';

const kongNats = useKongNats();

// ConnectionLeases on a real nats-server -js: several instances stand for the processes of a
// fleet (each its own NATS connection and holder), sharing one bucket.

let bucketNo = 0;

async function fleet(t: { teardown(fn: () => unknown): void }, n: number, options: { leaseMs?: number; now?: () => number } = {}): Promise<ConnectionLeases[]> {
  const servers = [(await kongNats()).url];
  const bucket = `test-leases-${process.pid}-${bucketNo++}`;
  const all = Array.from({ length: n }, (_, i) => new ConnectionLeases({
    servers, bucket, leaseMs: options.leaseMs ?? 60_000, timeoutMs: 5000, name: `leases ${i}`, log: createLogger('silent'),
    ...(options.now ? { now: options.now } : {}),
  }));
  for (const l of all) t.teardown(() => l.close());
  return all;
}

test('200 simultaneous acquires over 8 processes grant exactly the limit; releases free exactly as many', async (t) => {
  const leases = await fleet(t, 8);
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => leases[i % 8]!.acquire('k', 10)));
  t.is(results.filter((r) => r === 'granted').length, 10);
  t.is(leases.reduce((n, l) => n + l.heldCount(), 0), 10);
  // Give back three, wherever they are held.
  let toRelease = 3;
  for (const l of leases) while (toRelease > 0 && l.heldCount() > 0) { l.release('k'); toRelease--; }
  t.is(leases.reduce((n, l) => n + l.heldCount(), 0), 7);
  await Promise.all(leases.map((l) => l.settled()));
  const again = await Promise.all(Array.from({ length: 20 }, (_, i) => leases[i % 8]!.acquire('k', 10)));
  t.is(again.filter((r) => r === 'granted').length, 3);
});

test('a holder that stops renewing no longer counts once its lease has run out, by the reader\'s clock', async (t) => {
  let now = 1_000_000;
  const [dead, live] = await fleet(t, 2, { leaseMs: 10_000, now: () => now });
  t.is(await dead!.acquire('k', 2), 'granted');
  t.is(await dead!.acquire('k', 2), 'granted');
  t.is(await live!.acquire('k', 2), 'refused');
  await dead!.close(); // no release written: as if killed
  now += 9_999;
  t.is(await live!.acquire('k', 2), 'refused', 'still within the lease');
  now += 2;
  t.is(await live!.acquire('k', 2), 'granted');
  t.is(await live!.acquire('k', 2), 'granted');
  t.is(await live!.acquire('k', 2), 'refused');
});

test('no store (a nats-server without JetStream): acquire rejects with StoreUnavailable within the timeout', async (t) => {
  const plain = await NatsServer.start();
  t.teardown(() => plain.dispose());
  const leases = new ConnectionLeases({
    servers: [plain.url], bucket: 'nowhere', leaseMs: 10_000, timeoutMs: 300, name: 'no store', log: createLogger('silent'),
  });
  t.teardown(() => leases.close());
  const started = Date.now();
  await t.throwsAsync(leases.acquire('k', 1), { instanceOf: StoreUnavailable });
  t.true(Date.now() - started < 3000);
});
