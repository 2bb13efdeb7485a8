import test from 'ava';
import { withDeadline } from '../../bench/proc.js';
import { openStream, request, waitForEach } from '../helpers/http.js';
import { publishHttp, sseItem, startTwoWorkers, waitForInterest } from '../helpers/nats-e2e.js';
import { waitUntil } from '../helpers/nats-server.js';

// --workers N: N processes on one listen port, each with its own NATS connection; the primary
// serves the control port for all of them and replaces a worker that dies.

interface Readiness {
  status: string;
  workers: Array<{ pid: number; bus: { type: string }; isListening: boolean }>;
}

test('two workers share the port, each subscribes on NATS, and one publish reaches all their clients', async (t) => {
  // Round-robin (node's hand-over) so that six connections reach both workers: with the default
  // on Linux the kernel picks, and six could all go to one.
  const { nats, side } = await startTwoWorkers(t, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
  const readiness = JSON.parse((await request(`${side.controlUri}readyz`)).body) as Readiness;
  t.is(readiness.workers.length, 2);
  t.is(new Set(readiness.workers.map((w) => w.pid)).size, 2);

  const streams = await withDeadline(Promise.all(Array.from({ length: 6 }, () => openStream(side.url('/sse?ch=fan')))), 10_000, 'six response heads');
  t.teardown(() => streams.forEach((s) => s.close()));
  await waitForEach(streams, 'event: open\n');
  await waitForInterest(nats, 'fan', 2);

  t.is((await publishHttp(side, [sseItem('fan', 'to all')])).status, 200);
  await waitForEach(streams, 'data: to all\n\n');
  for (const s of streams) t.is(s.text, 'event: open\ndata:\n\ndata: to all\n\n');
  const metrics = (await request(`${side.controlUri}metrics`)).body;
  t.regex(metrics, /^kong_grip_connections\{kind="stream"\} 6$/m, 'metrics are summed over the workers');
  t.regex(metrics, /^kong_grip_nats_connected 1$/m);
});

test('a worker that dies is replaced, and readiness waits for the replacement', async (t) => {
  const { nats, side } = await startTwoWorkers(t);
  const before = JSON.parse((await request(`${side.controlUri}readyz`)).body) as Readiness;
  const victim = before.workers[0]!.pid;
  process.kill(victim, 'SIGKILL');
  await side.waitForLog((l) => l.msg === 'worker exited; starting a replacement' && l['pid'] === victim);
  await waitUntil('a replacement worker is ready', async () => {
    const res = await request(`${side.controlUri}readyz`);
    const body = JSON.parse(res.body) as Readiness;
    return res.status === 200 && body.workers.length === 2 && !body.workers.some((w) => w.pid === victim);
  });
  const stream = await openStream(side.url('/sse?ch=after'));
  t.teardown(() => stream.close());
  await stream.waitFor('event: open\n');
  await waitForInterest(nats, 'after', 1);
  await publishHttp(side, [sseItem('after', 'still working')]);
  await stream.waitFor('data: still working\n\n');
  t.is(await side.stop(), 0, 'the primary shuts its workers down and exits cleanly');
});
