// Publish-to-delivery latency over NATS: SSE clients spread over two sidecar processes on one
// nats-server; each message is published once and timed until every client has it.
//
//   npx tsx bench/nats-latency.bench.ts [--clients 1000] [--messages 200] [--via nats|http|both]
//
// Clients and publisher share this process's clock; the sidecars and NATS run as their own
// processes. Messages go one at a time (the next after every client has the previous one), so
// the figures are latency at light load, not throughput.

import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import { NatsServer } from './nats-server.js';
import { waitUntil } from './proc.js';
import { SidecarProcess } from './sidecar-process.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '20' },
    via: { type: 'string', default: 'both' },
  },
});
const CLIENTS = Number(values.clients);
const MESSAGES = Number(values.messages);
const WARMUP = Number(values.warmup);
const VIA = values.via === 'both' ? ['nats', 'http'] : [String(values.via)];
const CHANNEL = 'bench.latency';
const SUBJECT = 'grip.ch.bench%2Elatency';

/** An origin that holds every request as an SSE stream on the bench channel. */
async function startOrigin(): Promise<{ url: string; close(): void }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Grip-Hold': 'stream', 'Grip-Channel': CHANNEL, 'Content-Type': 'text/event-stream' });
    res.end(':open\n\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

/** One SSE client: reports every `data: <seq>` line it receives. */
function openClient(url: string, onMessage: (seq: number) => void): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (event.startsWith('data: ')) onMessage(Number(event.slice(6)));
        }
      });
      resolve(res);
    });
    req.on('error', reject);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const nats = await NatsServer.start();
  const origin = await startOrigin();
  const args = ['--origin', origin.url, '--nats', nats.url, '--workers', '1'];
  const sidecars = await Promise.all([SidecarProcess.start(args), SidecarProcess.start(args)]);
  const publisher = await connect({ servers: nats.url, name: 'bench-publisher' });

  let current = -1;
  let sentAt = 0;
  let received = 0;
  let onAllReceived: () => void = () => {};
  let samples = new Float64Array(0);
  let sampleCount = 0;
  // Per message: when the first and the last client had it (pipeline latency vs fan-out done).
  let firsts: number[] = [];
  let lasts: number[] = [];
  const onMessage = (seq: number): void => {
    if (seq !== current) return;
    const latency = performance.now() - sentAt;
    if (seq >= WARMUP) {
      samples[sampleCount++] = latency;
      if (received === 0) firsts.push(latency);
      if (received === CLIENTS - 1) lasts.push(latency);
    }
    if (++received === CLIENTS) onAllReceived();
  };

  const clients: IncomingMessage[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const side = sidecars[i % 2]!;
    clients.push(await openClient(side.url('/events'), onMessage));
  }
  await waitUntil('both sidecars subscribe the bench channel', async () => {
    const subs = (await nats.subscriptions()).filter((s) => s.subject === SUBJECT);
    return new Set(subs.map((s) => s.cid)).size === 2;
  }, 30_000);

  const publishVia = async (via: string, seq: number): Promise<void> => {
    const content = `data: ${seq}\n\n`;
    if (via === 'nats') {
      publisher.publish(SUBJECT, Buffer.from(JSON.stringify({ formats: { 'http-stream': { content } } })));
      return;
    }
    const body = JSON.stringify({ items: [{ channel: CHANNEL, formats: { 'http-stream': { content } } }] });
    const res = await fetch(`${sidecars[0]!.controlUri}publish/`, { method: 'POST', body });
    if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  };

  console.log(`nats-latency: ${CLIENTS} SSE clients over 2 sidecars (1 worker each) on one nats-server, ` +
    `${MESSAGES} messages after ${WARMUP} warm-up, one at a time`);
  for (const via of VIA) {
    samples = new Float64Array(MESSAGES * CLIENTS);
    sampleCount = 0;
    firsts = [];
    lasts = [];
    for (let seq = 0; seq < WARMUP + MESSAGES; seq++) {
      current = seq;
      received = 0;
      const all = new Promise<void>((resolve) => { onAllReceived = resolve; });
      sentAt = performance.now();
      await publishVia(via, seq);
      await all;
    }
    // The next run reuses sequence numbers; stale deliveries are ignored by `current`.
    current = -1;
    const sorted = samples.slice(0, sampleCount).sort();
    const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;
    console.log(`  via ${via.padEnd(4)} publish→delivery: p50 ${fmt(percentile(sorted, 50))}  p90 ${fmt(percentile(sorted, 90))}  ` +
      `p99 ${fmt(percentile(sorted, 99))}  max ${fmt(sorted[sorted.length - 1] ?? NaN)}  (${sampleCount} deliveries)`);
    const first = Float64Array.from(firsts).sort();
    const last = Float64Array.from(lasts).sort();
    console.log(`           first client: p50 ${fmt(percentile(first, 50))}  p99 ${fmt(percentile(first, 99))}   ` +
      `last client: p50 ${fmt(percentile(last, 50))}  p99 ${fmt(percentile(last, 99))}`);
  }

  for (const c of clients) c.destroy();
  await publisher.close();
  await Promise.all(sidecars.map((s) => s.stop()));
  origin.close();
  await nats.dispose();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
