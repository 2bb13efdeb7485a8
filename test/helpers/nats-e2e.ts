import type { IncomingMessage } from 'node:http';
import { channelToSubject, DEFAULT_SUBJECT_PREFIX } from '../../sidecar/src/bus/subject.js';
import { startGripOrigin, TEST_SIG_KEY } from './grip-origin.js';
import { request } from './http.js';
import type { ExecutionContext } from 'ava';
import { NatsServer, waitUntil } from './nats-server.js';
import { SidecarProcess } from './sidecar-process.js';

// Shared pieces of the end-to-end NATS tests: an origin that holds on the channel named in the
// query string, and waits on what NATS itself reports.

const channelOf = (req: IncomingMessage): string => new URL(req.url ?? '/', 'http://x').searchParams.get('ch') ?? 'none';

/**
 * /sse?ch=X holds an SSE stream on X; /poll?ch=X holds a long-poll on X. The JSON instruct body
 * (spec 3.3) carries the channel, so any UTF-8 name works (header values cannot carry all of them).
 */
export function startChannelOrigin() {
  const instruct = (body: unknown) => JSON.stringify(body);
  return startGripOrigin({
    '/sse': (req, res) => {
      res.setHeader('Content-Type', 'application/grip-instruct');
      res.end(instruct({
        hold: { mode: 'stream', channels: [{ name: channelOf(req) }] },
        response: { headers: { 'Content-Type': 'text/event-stream' }, body: 'event: open\ndata:\n\n' },
      }));
    },
    '/poll': (req, res) => {
      res.setHeader('Content-Type', 'application/grip-instruct');
      res.end(instruct({
        hold: { mode: 'response', channels: [{ name: channelOf(req) }], timeout: 120 },
        response: { body: 'timeout\n' },
      }));
    },
  });
}

export { TEST_SIG_KEY };

/** Flags for a sidecar process on this NATS with one worker. */
export function sidecarArgs(nats: NatsServer, originUrl: string, extra: string[] = []): string[] {
  return ['--origin', originUrl, '--sig-key', TEST_SIG_KEY, '--nats', nats.url, '--workers', '1', ...extra];
}

export const subjectOf = (channel: string): string => channelToSubject(DEFAULT_SUBJECT_PREFIX, channel);

/** Waits until `connections` distinct NATS clients subscribe to the channel's subject. */
export async function waitForInterest(nats: NatsServer, channel: string, connections: number): Promise<void> {
  const subject = subjectOf(channel);
  await waitUntil(`${connections} NATS connection(s) subscribe ${subject}`, async () => {
    const subs = (await nats.subscriptions()).filter((s) => s.subject === subject);
    return new Set(subs.map((s) => s.cid)).size === connections;
  });
}

/** Waits until no NATS client subscribes to the channel's subject. */
export async function waitForNoInterest(nats: NatsServer, channel: string): Promise<void> {
  const subject = subjectOf(channel);
  await waitUntil(`no NATS subscription on ${subject}`, async () => !(await nats.subjects()).includes(subject));
}

/**
 * A nats-server, the channel origin and a sidecar with two worker processes on them, ready; all
 * stopped when the test ends. `env` goes to the sidecar (e.g. its accept policy).
 */
export async function startTwoWorkers(t: ExecutionContext, env?: Record<string, string>) {
  const nats = await NatsServer.start();
  t.teardown(() => nats.dispose());
  const origin = await startChannelOrigin();
  t.teardown(() => origin.close());
  const side = await SidecarProcess.start(['--origin', origin.url, '--sig-key', TEST_SIG_KEY, '--nats', nats.url, '--workers', '2'], env === undefined ? {} : { env });
  t.teardown(() => side.stop().then(() => undefined));
  await waitForReadiness(side, true);
  return { nats, origin, side };
}

/** Waits until the sidecar's readiness is `ready` (it depends on the NATS connection). */
export async function waitForReadiness(side: SidecarProcess, ready: boolean): Promise<void> {
  await waitUntil(`sidecar ${side.pid} ${ready ? 'ready' : 'not ready'}`, async () => {
    const res = await request(`${side.controlUri}readyz`);
    return (res.status === 200) === ready;
  });
}

/** POST /publish/ with these items; resolves with the response. */
export function publishHttp(side: SidecarProcess, items: unknown[]) {
  return request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items }) });
}

/** An SSE item for the publish API. */
export function sseItem(channel: string, data: string): Record<string, unknown> {
  return { channel, formats: { 'http-stream': { content: `data: ${data}\n\n` } } };
}

/** A metric's value from a Prometheus text exposition, or undefined when absent. */
export function metricValue(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}
