import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers as natsHeaders, type NatsConnection } from 'nats';
import { channelToSubject } from '../../sidecar/src/bus/subject.js';
import { within } from '../helpers/buses.js';
import { startFeedOrigin } from '../helpers/feed-origin.js';
import { openStream, request } from '../helpers/http.js';
import { NATS_SERVER_BIN } from '../helpers/nats-server.js';
import { busStatus, numberedItem, sseNumbers, whenLive } from '../helpers/reliability.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

// The subject permissions docs/nats.md ("Subject permissions") tells a deployment to set, on a
// real nats-server: a sidecar works with exactly those rights (history included), and a
// publisher can publish to channels but neither to the history subjects nor to the JetStream API.

/** The `authorization` block of docs/nats.md, as the test runs it. */
const AUTHORIZATION = `
authorization {
  users = [
    {
      user: sidecar, password: "sidecar-secret",
      permissions: {
        publish: {
          allow: ["grip.ch.>", "grip.sub.>", "$JS.API.INFO", "$JS.API.STREAM.INFO.GRIP",
                  "$JS.API.STREAM.CREATE.GRIP", "$JS.API.STREAM.UPDATE.GRIP", "$JS.API.STREAM.MSG.GET.GRIP"]
        }
        subscribe: { allow: ["grip.ch.>", "grip.js.>", "_INBOX.>"] }
      }
    }
    {
      user: publisher, password: "publisher-secret",
      permissions: {
        publish: { allow: ["grip.ch.>"] }
        subscribe: { allow: ["_INBOX.>", "grip.sub.>"] }
      }
    }
  ]
}
`;

/** nats-server with a config file, on free ports; resolves once it is ready. */
async function startConfigured(config: string): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kong-grip-nats-perm-'));
  const file = join(dir, 'nats.conf');
  await writeFile(file, `jetstream { store_dir: "${join(dir, 'js')}" }\n${config}`);
  const child: ChildProcess = spawn(NATS_SERVER_BIN, ['-c', file, '-a', '127.0.0.1', '-p', '-1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = once(child, 'exit');
  const port = await within('nats-server ready', new Promise<number>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString('utf8');
      const listening = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
      if (listening !== null && log.includes('Server is ready')) resolve(Number(listening[1]));
    });
    child.on('exit', (code) => reject(new Error(`nats-server exited (${code}):\n${log}`)));
    child.on('error', reject);
  }));
  return {
    port,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the first permission violation the server reports to `nc`. */
async function permissionError(nc: NatsConnection): Promise<{ operation: string; subject: string }> {
  for await (const s of nc.status()) {
    if (s.type === 'error' && s.permissionContext !== undefined) return { operation: s.permissionContext.operation, subject: s.permissionContext.subject };
  }
  throw new Error('connection closed without a permission error');
}

test('with the documented permissions a sidecar serves history, and a publisher cannot write the history subjects or the JetStream API', async (t) => {
  const server = await startConfigured(AUTHORIZATION);
  t.teardown(() => server.stop());
  const origin = await startFeedOrigin();
  t.teardown(() => origin.close());
  const side = await startTestSidecar({
    origin: origin.url,
    nats: { servers: `nats://sidecar:sidecar-secret@127.0.0.1:${server.port}`, reconnectWaitMs: 100, jetstream: { storage: 'memory' } },
  });
  t.teardown(() => side.close());
  await within('the sidecar connected, its stream set up', busStatus(side.sidecar.bus, 'connected'));
  const client = await openStream(side.url('/sse?ch=feed'));
  t.teardown(() => client.close());
  await waitForSubscribers(side.sidecar.hub, 'feed', 1);
  await within('feed live', whenLive(side.sidecar.bus, 'feed'));

  const publisher = await connect({ servers: `nats://127.0.0.1:${server.port}`, user: 'publisher', pass: 'publisher-secret' });
  t.teardown(() => publisher.close());
  // A publisher's JetStream publish (stored, acknowledged), then one through the sidecar's API.
  const ack = await publisher.jetstream().publish(channelToSubject('grip.ch.', 'feed'), JSON.stringify(numberedItem(1)));
  t.is(ack.stream, 'GRIP');
  await within('item 1', client.waitFor('data: 1\n'));
  const res = await request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items: [{ channel: 'feed', ...numberedItem(2) }] }) });
  t.is(res.status, 200, res.body);
  await within('item 2', client.waitFor('data: 2\n'));
  // History reads ($JS.API.STREAM.MSG.GET) work with the sidecar's rights.
  const after = await side.sidecar.bus.history!.itemsAfter('feed', '1');
  t.deepEqual(after?.map((i) => i.id), ['2']);

  // The publisher may not write where only the stream's republish writes, nor call the API.
  const refused = permissionError(publisher);
  const h = natsHeaders();
  h.set('Nats-Sequence', '9000000000000');
  h.set('Nats-Last-Sequence', '0');
  publisher.publish(channelToSubject('grip.js.', 'feed'), JSON.stringify({ formats: { 'http-stream': { content: 'data: forged\n\n' } } }), { headers: h });
  t.deepEqual(await within('the server refusing the publish to grip.js.feed', refused), { operation: 'publish', subject: 'grip.js.feed' });
  const denied = await t.throwsAsync(publisher.request('$JS.API.STREAM.DELETE.GRIP', '', { timeout: 2000 }));
  t.regex(String(denied?.message), /permissions violation/i);

  await publisher.jetstream().publish(channelToSubject('grip.ch.', 'feed'), JSON.stringify(numberedItem(3)));
  await within('item 3', client.waitFor('data: 3\n'));
  t.deepEqual(sseNumbers(client.text), [1, 2, 3]);
  t.false(client.text.includes('forged'));
  t.is(side.sidecar.bus.status().type, 'connected');
});
