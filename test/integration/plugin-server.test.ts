import { connect } from 'node:net';
import test from 'ava';
import { decodeMultiStream, encode } from '@msgpack/msgpack';
import { Priority, Schema, Version } from '../../plugin/src/grip.js';
import { CLEARED_HEADERS } from '../../plugin/src/handoff.js';
import { verifyHandoff } from '../../sidecar/src/kong/handoff-verifier.js';
import {
  FakeKongRequest, KongRpcDriver, KongWorker, RpcError, buildLauncher, buildPlainPluginsDir, kongPluginConfig, makePrefix,
  queryPluginInfo, startPlainPdkServer, startPluginServer, type PluginInfo, type PluginServer, useLauncher,
} from '../helpers/kong-rpc-driver.js';

// grip-pluginserver (plugin/dist/grip-pluginserver.js, built as shipped) started as Kong starts
// it, with an empty environment, and driven over its Unix socket with exactly the calls Kong 3.9
// makes. Serial: each test starts its own server process, and the timing test wants the
// machine to itself.

const SECRET = 'plugin-server-test-secret-0123456789abcdef';
const ROUTE_A = { pluginId: 'aaaaaaaa-0000-4000-8000-00000000000a', routeId: 'aaaaaaaa-1111-4000-8000-00000000000a' };
const ROUTE_B = { pluginId: 'bbbbbbbb-0000-4000-8000-00000000000b', routeId: 'bbbbbbbb-1111-4000-8000-00000000000b' };
const CONSUMER = { id: 'c0c0c0c0-0000-4000-8000-000000000001', username: 'web-app', custom_id: 'tenant-42', created_at: 1767225000, tags: null, type: 0 };

const sharedLauncher = useLauncher();

const setup = async () => {
  const { file, info } = await sharedLauncher();
  const prefix = makePrefix();
  let server = await startPluginServer(file, prefix.dir);
  const drivers: KongRpcDriver[] = [];
  const driver = () => {
    const d = new KongRpcDriver(server.socketPath);
    drivers.push(d);
    return d;
  };
  return {
    info,
    get server() { return server; },
    driver,
    async restart() {
      await server.stop();
      server = await startPluginServer(file, prefix.dir);
    },
    async close() {
      for (const d of drivers) d.close();
      await server.stop();
      prefix.remove();
    },
  };
};

const verify = (req: FakeKongRequest, origin: string) => verifyHandoff(req.upstreamHeaders(), { secret: SECRET, allowedOrigins: [origin], maxAgeSec: 30, now: Date.now() });

test.serial('the query command (empty environment) prints one JSON plugin info: name, version, access only, priority and the Schema', async (t) => {
  const built = await buildLauncher();
  t.teardown(() => built.remove());
  const { infos, stdout, stderr } = await queryPluginInfo(built.file);
  t.is(infos.length, 1, 'one plugin per server (Kong 3.9 registers only the first)');
  const info = infos[0] as PluginInfo;
  t.is(info.Name, 'grip');
  t.is(info.Version, Version);
  t.deepEqual(info.Phases, ['access']);
  t.is(info.Priority, Priority);
  t.false('Protocol' in info, 'Kong then defaults to MsgPack:1');
  t.deepEqual(info.Schema, { name: 'grip', fields: [{ config: { type: 'record', fields: JSON.parse(JSON.stringify(Schema)) } }] });
  t.is(stdout.trim(), JSON.stringify(infos), 'nothing but the JSON on stdout');
  t.is(stderr, '');
});

test.serial('StartInstance gets the JSON config with defaults applied and Kong keys; unknown ids get "no plugin instance"', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const config = kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A);
  t.is(config['forward_consumer'], true, 'the schema default');
  const started = await kong.startInstance('grip', config);
  t.is(started.Name, 'grip');
  t.true(Number.isSafeInteger(started.Id) && started.Id >= 0, 'an integer Lua and MessagePack carry exactly');
  t.deepEqual(started.Config, config);
  const next = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_B));
  t.is(next.Id, started.Id + 1, 'numbers count up from the random start');
  const err = await t.throwsAsync(kong.call('plugin.HandleEvent', { InstanceId: started.Id + 100, EventName: 'access' }), { instanceOf: RpcError });
  t.regex(err.message, /^no plugin instance #/, 'the text Kong looks for to restart instances');
});

test.serial('Kong < 3.4 (no __plugin_id) and an unusable origin: StartInstance answers, access exits 500 naming the problem in one call, one log line', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { __plugin_id: _p, ...old } = kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A);
  const cases = [
    { name: 'no __plugin_id', config: old, body: 'kong-grip: this Kong does not send __plugin_id; supported Kong versions are 3.4 to 3.9' },
    {
      name: 'origin with a query',
      config: kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080/?q=1' }, ROUTE_B),
      body: 'kong-grip: config.origin must be an http:// or https:// URL without credentials, query or fragment',
    },
  ];
  for (const c of cases) {
    const started = await kong.startInstance('grip', c.config);
    t.true(Number.isInteger(started.Id), `${c.name}: StartInstance answered`);
    for (let i = 0; i < 3; i++) {
      const req = new FakeKongRequest({ pluginId: 'unused', consumer: CONSUMER });
      const run = await kong.runPhase(started.Id, 'access', req);
      // The first request also writes the problem to Kong's error log (level err); after that, the exit alone.
      t.deepEqual(req.methods(), i === 0 ? ['kong.log.err', 'kong.response.exit'] : ['kong.response.exit'], c.name);
      t.is(run.roundTrips, i === 0 ? 2 : 1, `${c.name}: HandleEvent (whose answer is the exit: Kong never steps the event after it), plus the log call`);
      if (i === 0) t.true(String(req.calls[0]?.args[0]).startsWith(c.body), `${c.name}: Kong's log names the problem`);
      t.is(req.exit?.status, 500, c.name);
      t.true(String((req.exit?.body as { message?: unknown } | undefined)?.message).startsWith(c.body), `${c.name}: ${JSON.stringify(req.exit?.body)}`);
      t.false(req.headers.has('kong-grip-handoff'), c.name);
    }
    const line = await s.server.waitForOutput(new RegExp(`\\[grip\\] ${c.body.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    t.regex(line, /this instance answers every request with 500/);
    t.is(s.server.output.filter((l) => l.includes(c.body)).length, 1, `${c.name}: logged once per instance, not per request`);
  }
  t.false(s.server.output.some((l) => /unhandled exception|Error:/.test(l)), s.server.output.join('\n'));

  // The same server process still starts and serves a good instance.
  const good = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const req = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER });
  await kong.runPhase(good.Id, 'access', req);
  t.deepEqual(req.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers']);
  t.is(verify(req, 'http://origin:8080').identity.pluginId, ROUTE_A.pluginId);
});

test.serial('access with a consumer: two PDK calls, three round trips, and a token the sidecar accepts', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { Id } = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const req = new FakeKongRequest({
    pluginId: ROUTE_A.pluginId, consumer: CONSUMER,
    headers: { host: 'kong.test', 'grip-sig': 'forged', 'x-consumer-username': 'admin', 'kong-grip-consumer-id': 'admin', accept: 'text/event-stream' },
  });
  const run = await kong.runPhase(Id, 'access', req);
  t.deepEqual(req.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers']);
  t.is(run.roundTrips, 3, 'HandleEvent plus one Step per PDK call');
  t.deepEqual(kong.sent.slice(-3), ['plugin.HandleEvent', 'plugin.StepConsumer', 'plugin.Step']);
  t.deepEqual(req.unknown, []);
  t.is(req.exit, undefined);
  t.is(req.luaError, undefined);
  t.deepEqual([...req.headers.keys()].sort(), ['accept', 'host', 'kong-grip-handoff']);
  const v = verify(req, 'http://origin:8080');
  t.is(v.origin.href, 'http://origin:8080/');
  t.deepEqual(v.identity, {
    consumer: { id: CONSUMER.id, username: 'web-app', customId: 'tenant-42' },
    routeId: ROUTE_A.routeId, serviceId: null, pluginId: ROUTE_A.pluginId,
  });
  const table = req.calls[1]?.args[0] as Record<string, unknown>;
  for (const h of CLEARED_HEADERS) t.deepEqual(table[h], [], `${h} cleared (msgpack empty array)`);
});

test.serial('access without forward_consumer is one PDK call (two round trips); a nil consumer signs none', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const off = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080', forward_consumer: false }, ROUTE_A));
  const r1 = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER });
  t.is((await kong.runPhase(off.Id, 'access', r1)).roundTrips, 2);
  t.deepEqual(r1.methods(), ['kong.service.request.set_headers']);
  t.is(verify(r1, 'http://origin:8080').identity.consumer, null);

  const on = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_B));
  const r2 = new FakeKongRequest({ pluginId: ROUTE_B.pluginId, consumer: null });
  await kong.runPhase(on.Id, 'access', r2);
  t.is(r2.calls.length, 2);
  t.is(verify(r2, 'http://origin:8080').identity.consumer, null, 'nil arrives as a Step without Data and is no consumer');
});

/**
 * The restart race: worker 1 caches route A's instance number; the plugin server restarts;
 * worker 2 is first to need route B and starts its instance in the new process; worker 1 then
 * runs a route A request with its old number. Returns what that request carried upstream.
 */
async function restartRace(t: { is: (a: unknown, b: unknown, m?: string) => void }, start: () => Promise<PluginServer>, info: PluginInfo) {
  let server = await start();
  const configA = kongPluginConfig(info, { secret: SECRET, origin: 'http://origin-a:8080' }, ROUTE_A);
  const configB = kongPluginConfig(info, { secret: SECRET, origin: 'http://origin-b:8080' }, ROUTE_B);
  const rpc1 = new KongRpcDriver(server.socketPath);
  const worker1 = new KongWorker(rpc1);
  await worker1.access(configA, new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER }));
  const oldA = worker1.cached(ROUTE_A.pluginId) as number;
  await server.stop();
  rpc1.close();
  server = await start();
  const rpc2 = new KongRpcDriver(server.socketPath);
  const worker2 = new KongWorker(rpc2);
  await worker2.access(configB, new FakeKongRequest({ pluginId: ROUTE_B.pluginId, consumer: CONSUMER }));
  const req = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER });
  const run = await worker1.access(configA, req);
  t.is(run.instanceId === oldA, worker1.restarts === 0, 'the old number either ran or was replaced');
  rpc1.close();
  rpc2.close();
  await server.stop();
  return { req, worker1, oldA, newB: worker2.cached(ROUTE_B.pluginId) as number };
}

test.serial('the hazard, with kong-pdk\'s plain kong-js-pluginserver: after a restart, route A\'s old instance number runs route B\'s configuration', async (t) => {
  const { info } = await sharedLauncher();
  const plugins = await buildPlainPluginsDir();
  const prefix = makePrefix();
  t.teardown(() => { plugins.remove(); prefix.remove(); });
  const race = await restartRace(t, () => startPlainPdkServer(plugins.dir, prefix.dir), info);
  t.is(race.newB, race.oldA, 'numbers restart at 0 with the process: the same number now names route B');
  t.is(race.worker1.restarts, 0, 'Kong has no reason to restart the instance');
  const v = verify(race.req, 'http://origin-b:8080');
  t.is(v.origin.href, 'http://origin-b:8080/', 'route A\'s request is signed for route B\'s origin');
  t.is(v.identity.routeId, ROUTE_B.routeId);
});

test.serial('grip-pluginserver: after a restart the old number names no instance, Kong restarts it with route A\'s own configuration', async (t) => {
  const { file, info } = await sharedLauncher();
  const prefix = makePrefix();
  t.teardown(() => prefix.remove());
  const race = await restartRace(t, () => startPluginServer(file, prefix.dir), info);
  t.not(race.newB, race.oldA, 'a random start: the new process never reuses the old number');
  t.is(race.worker1.restarts, 1, '"no plugin instance" made the worker start a fresh instance and retry');
  t.deepEqual(race.req.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers'], 'the retried request ran once, whole');
  const v = verify(race.req, 'http://origin-a:8080');
  t.is(v.identity.routeId, ROUTE_A.routeId);
  t.is(v.identity.pluginId, ROUTE_A.pluginId);
});

test.serial('each launcher process starts its numbers at a different random point below 2^53', async (t) => {
  const { file, info } = await sharedLauncher();
  const firsts = new Set<number>();
  for (let i = 0; i < 4; i++) {
    const prefix = makePrefix();
    const server = await startPluginServer(file, prefix.dir);
    const rpc = new KongRpcDriver(server.socketPath);
    const { Id } = await rpc.startInstance('grip', kongPluginConfig(info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
    rpc.close();
    await server.stop();
    prefix.remove();
    t.true(Number.isSafeInteger(Id) && Id >= 0 && Id < 2 ** 53, String(Id));
    firsts.add(Id);
  }
  t.is(firsts.size, 4);
});

test.serial('a consumer the token cannot carry ends the request with 500 from the plugin, never an unsigned proxy', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { Id } = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const req = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: { id: 'has spaces' } });
  await kong.runPhase(Id, 'access', req);
  t.deepEqual(req.methods(), ['kong.client.get_consumer', 'kong.response.exit']);
  t.is(req.exit?.status, 500);
  t.regex(await s.server.waitForOutput(/\[grip\] access failed/), /consumer.id must be an id/);
});

/**
 * Raw bytes on a fresh connection; resolves with the notifications and the first `count` answers
 * the server sends back, or what came before it closed the connection.
 */
async function rawExchange(socketPath: string, bytes: Uint8Array[], count: number): Promise<{ notices: unknown[][]; messages: unknown[][]; closed: boolean }> {
  const socket = connect(socketPath);
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  for (const b of bytes) socket.write(b);
  const notices: unknown[][] = [];
  const messages: unknown[][] = [];
  let closed = true;
  try {
    for await (const m of decodeMultiStream(socket)) {
      if ((m as unknown[])[0] === 2) { notices.push(m as unknown[]); continue; }
      messages.push(m as unknown[]);
      if (messages.length === count) { closed = false; break; }
    }
  } catch { /* reset by the server */ }
  socket.destroy();
  return { notices, messages, closed };
}

test.serial('every connection opens with Kong\'s serverPid notification, so Kong forgets a restarted server\'s instances', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const status = encode([0, 1, 'plugin.GetStatus', []]);
  const first = await rawExchange(s.server.socketPath, [status], 1);
  t.deepEqual(first.notices, [[2, 'serverPid', s.server.pid]], 'before any answer');
  t.is(first.messages.length, 1);
  const oldPid = s.server.pid;
  await s.restart();
  const second = await rawExchange(s.server.socketPath, [status], 1);
  t.deepEqual(second.notices, [[2, 'serverPid', s.server.pid]]);
  t.not(s.server.pid, oldPid, 'a new pid: Kong drops the instance numbers it had for this server');
});

test.serial('the socket: two requests in one write and one request split mid-message are all answered', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const status = (id: number) => encode([0, id, 'plugin.GetStatus', []]);
  const joined = new Uint8Array([...status(1), ...status(2)]);
  const split = status(3);
  const { messages } = await rawExchange(s.server.socketPath, [joined, split.subarray(0, 5), split.subarray(5)], 3);
  t.deepEqual(messages.map((m) => [m[0], m[1], m[2]]), [[1, 1, null], [1, 2, null], [1, 3, null]]);
});

test.serial('the socket: garbage, a wrong shape, an over-long message, an unknown method and a reset connection end that connection only', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const garbage = await rawExchange(s.server.socketPath, [new Uint8Array([0xc1, 0xc1, 0xc1])], 1);
  t.deepEqual({ messages: garbage.messages, closed: garbage.closed }, { messages: [], closed: true }, '0xc1 is never valid MessagePack');
  const shape = await rawExchange(s.server.socketPath, [encode({ hello: 'kong' })], 1);
  t.deepEqual({ messages: shape.messages, closed: shape.closed }, { messages: [], closed: true });
  const unknown = await rawExchange(s.server.socketPath, [encode([0, 7, 'plugin.SetPluginDir', ['/tmp']])], 1);
  t.deepEqual(unknown.messages, [[1, 7, 'unknown method SetPluginDir (not one Kong calls)', null]], 'no loading plugins from elsewhere');
  const other = await rawExchange(s.server.socketPath, [encode([0, 8, 'kong.Shutdown', []])], 1);
  t.deepEqual(other.messages, [[1, 8, 'RPC for kong is not supported', null]]);
  // A string announced at 16 MiB + 1 byte: refused at its header, not buffered while it comes.
  const huge = await rawExchange(s.server.socketPath, [new Uint8Array([0x94, 0x00, 0x09, 0xdb, 0x01, 0x00, 0x00, 0x01, 0x61])], 1);
  t.deepEqual({ messages: huge.messages, closed: huge.closed }, { messages: [], closed: true }, 'over-long message');
  // A worker killed in the middle of an event: its connection ends while the event waits for a Step.
  const kong = s.driver();
  const { Id } = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const victim = connect(s.server.socketPath);
  await new Promise<void>((resolve) => victim.once('connect', resolve));
  victim.write(encode([0, 1, 'plugin.HandleEvent', [{ InstanceId: Id, EventName: 'access' }]]));
  await new Promise<void>((resolve) => victim.once('data', () => resolve()));
  victim.destroy();
  await new Promise<void>((resolve) => victim.once('close', () => resolve()));
  // Still serving.
  const req = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER });
  await kong.runPhase(Id, 'access', req);
  t.true(req.headers.has('kong-grip-handoff'));
});

test.serial('300 sequential access events take three round trips each (plugin-server time per access phase logged)', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { Id } = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const n = 300;
  let trips = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const req = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER });
    trips += (await kong.runPhase(Id, 'access', req)).roundTrips;
    t.is(req.calls.length, 2);
  }
  const us = Number(process.hrtime.bigint() - started) / 1000;
  t.is(trips, 3 * n);
  t.log(`${n} access events: ${(us / n).toFixed(0)} µs per event, ${(us / trips).toFixed(0)} µs per round trip (driver and server share the machine)`);
});
