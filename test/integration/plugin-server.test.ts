import test from 'ava';
import { Priority, Schema, Version } from '../../plugin/src/grip.js';
import { CLEARED_HEADERS } from '../../plugin/src/handoff.js';
import { verifyHandoff } from '../../sidecar/src/kong/handoff-verifier.js';
import {
  FakeKongRequest, KongRpcDriver, RpcError, kongPluginConfig, makePluginsDir, makePrefix, queryPluginInfo, startPluginServer,
  type PluginInfo,
} from '../helpers/kong-rpc-driver.js';

// The real kong-js-pluginserver (kong-pdk 0.6.0), started through kong/start-pluginserver.sh
// with an empty environment as Kong starts it, loading the bundled plugin, driven over its
// Unix socket with exactly the calls Kong 3.9 makes. Serial: each test starts its own server
// process, and the timing test wants the machine to itself.

const SECRET = 'plugin-server-test-secret-0123456789abcdef';
const ROUTE_A = { pluginId: 'aaaaaaaa-0000-4000-8000-00000000000a', routeId: 'aaaaaaaa-1111-4000-8000-00000000000a' };
const ROUTE_B = { pluginId: 'bbbbbbbb-0000-4000-8000-00000000000b', routeId: 'bbbbbbbb-1111-4000-8000-00000000000b' };
const CONSUMER = { id: 'c0c0c0c0-0000-4000-8000-000000000001', username: 'web-app', custom_id: 'tenant-42', created_at: 1767225000, tags: null, type: 0 };

const setup = async () => {
  const plugins = await makePluginsDir();
  const prefix = makePrefix();
  const { infos } = await queryPluginInfo(plugins.dir);
  let server = await startPluginServer(plugins.dir, prefix.dir);
  const drivers: KongRpcDriver[] = [];
  const driver = () => {
    const d = new KongRpcDriver(server.socketPath);
    drivers.push(d);
    return d;
  };
  return {
    info: infos[0] as PluginInfo,
    get server() { return server; },
    driver,
    async restart() {
      await server.stop();
      server = await startPluginServer(plugins.dir, prefix.dir);
    },
    async close() {
      for (const d of drivers) d.close();
      await server.stop();
      plugins.remove();
      prefix.remove();
    },
  };
};

test.serial('the query command prints one JSON plugin info: name, version, access only, priority and the Schema', async (t) => {
  const plugins = await makePluginsDir();
  t.teardown(() => plugins.remove());
  const { infos, stdout } = await queryPluginInfo(plugins.dir);
  t.is(infos.length, 1, 'one plugin per server (Kong 3.9 registers only the first)');
  const info = infos[0] as PluginInfo;
  t.is(info.Name, 'grip');
  t.is(info.Version, Version);
  t.deepEqual(info.Phases, ['access']);
  t.is(info.Priority, Priority);
  t.false('Protocol' in info, 'Kong then defaults to MsgPack:1');
  t.deepEqual(info.Schema, { name: 'grip', fields: [{ config: { type: 'record', fields: JSON.parse(JSON.stringify(Schema)) } }] });
  t.is(stdout.trim(), JSON.stringify(infos), 'nothing but the JSON on stdout');
});

test.serial('StartInstance gets the JSON config with defaults applied and Kong keys; unknown ids get "no plugin instance"', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const config = kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A);
  t.is(config['forward_consumer'], true, 'the schema default');
  const started = await kong.startInstance('grip', config);
  t.is(started.Name, 'grip');
  t.true(Number.isInteger(started.Id));
  t.deepEqual(started.Config, config);
  const err = await t.throwsAsync(kong.call('plugin.HandleEvent', { InstanceId: started.Id + 100, EventName: 'access' }), { instanceOf: RpcError });
  t.regex(err.message, /^no plugin instance #/, 'the text Kong looks for to restart instances');
});

test.serial('Kong < 3.4 (no __plugin_id) and an unusable origin: StartInstance answers, access exits 500 naming the problem, one log line, the server keeps serving', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { __plugin_id: _p, ...old } = kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A);
  const cases = [
    { name: 'no __plugin_id', config: old, pluginId: null, body: 'kong-grip: this Kong does not send __plugin_id; supported Kong versions are 3.4 to 3.9', methods: ['kong.response.exit'] },
    {
      name: 'origin with a query',
      config: kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080/?q=1' }, ROUTE_B),
      pluginId: ROUTE_B.pluginId,
      body: 'kong-grip: config.origin must be an http:// or https:// URL without credentials, query or fragment',
      methods: ['kong.plugin.get_id', 'kong.response.exit'],
    },
  ];
  for (const c of cases) {
    const started = await kong.startInstance('grip', c.config);
    t.true(Number.isInteger(started.Id), `${c.name}: StartInstance answered`);
    for (let i = 0; i < 3; i++) {
      // Kong < 3.4 has no kong.plugin.get_id; the broken instance does not call it without __plugin_id.
      const req = new FakeKongRequest({ pluginId: c.pluginId ?? 'unused', consumer: CONSUMER });
      const run = await kong.runPhase(started.Id, 'access', req);
      t.deepEqual(req.methods(), c.methods, c.name);
      t.is(run.roundTrips, c.methods.length, `${c.name}: HandleEvent plus the Steps before exit`);
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
  t.deepEqual(req.methods(), ['kong.plugin.get_id', 'kong.client.get_consumer', 'kong.service.request.set_headers']);
  const v = verifyHandoff(req.upstreamHeaders(), { secret: SECRET, allowedOrigins: ['http://origin:8080'], maxAgeSec: 30, now: Date.now() });
  t.is(v.identity.pluginId, ROUTE_A.pluginId);
});

test.serial('access with a consumer: three PDK calls, four round trips, and a token the sidecar accepts', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { Id } = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const req = new FakeKongRequest({
    pluginId: ROUTE_A.pluginId, consumer: CONSUMER,
    headers: { host: 'kong.test', 'grip-sig': 'forged', 'x-consumer-username': 'admin', 'kong-grip-consumer-id': 'admin', accept: 'text/event-stream' },
  });
  const run = await kong.runPhase(Id, 'access', req);
  t.deepEqual(req.methods(), ['kong.plugin.get_id', 'kong.client.get_consumer', 'kong.service.request.set_headers']);
  t.is(run.roundTrips, 4, 'HandleEvent plus one Step per PDK call');
  t.deepEqual(kong.sent.slice(-4), ['plugin.HandleEvent', 'plugin.Step', 'plugin.StepConsumer', 'plugin.Step']);
  t.deepEqual(req.unknown, []);
  t.is(req.exit, undefined);
  t.is(req.luaError, undefined);
  t.deepEqual([...req.headers.keys()].sort(), ['accept', 'host', 'kong-grip-handoff']);
  const v = verifyHandoff(req.upstreamHeaders(), { secret: SECRET, allowedOrigins: ['http://origin:8080'], maxAgeSec: 30, now: Date.now() });
  t.is(v.origin.href, 'http://origin:8080/');
  t.deepEqual(v.identity, {
    consumer: { id: CONSUMER.id, username: 'web-app', customId: 'tenant-42' },
    routeId: ROUTE_A.routeId, serviceId: null, pluginId: ROUTE_A.pluginId,
  });
  const table = req.calls[2]?.args[0] as Record<string, unknown>;
  for (const h of CLEARED_HEADERS) t.deepEqual(table[h], [], `${h} cleared (msgpack empty array)`);
});

test.serial('access without forward_consumer, or with no consumer authenticated (nil), stays within three calls', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const off = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080', forward_consumer: false }, ROUTE_A));
  const r1 = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER });
  t.is((await kong.runPhase(off.Id, 'access', r1)).roundTrips, 3);
  t.deepEqual(r1.methods(), ['kong.plugin.get_id', 'kong.service.request.set_headers']);

  const on = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_B));
  const r2 = new FakeKongRequest({ pluginId: ROUTE_B.pluginId, consumer: null });
  await kong.runPhase(on.Id, 'access', r2);
  t.is(r2.calls.length, 3);
  const v = verifyHandoff(r2.upstreamHeaders(), { secret: SECRET, allowedOrigins: ['http://origin:8080'], maxAgeSec: 30, now: Date.now() });
  t.is(v.identity.consumer, null, 'nil arrives as a Step without Data and is no consumer');
});

test.serial('after a plugin-server restart, a stale instance id reused for another route signs nothing and resets Kong caches', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  // Worker 1 starts route A's instance and caches its id.
  const worker1 = s.driver();
  const a = await worker1.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin-a:8080' }, ROUTE_A));
  await s.restart();
  // Worker 2 is first to need route B after the restart; the new process hands out the same number.
  const worker2 = s.driver();
  const b = await worker2.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin-b:8080' }, ROUTE_B));
  t.is(b.Id, a.Id, 'the hazard (kong.md 1.5): instance ids restart at 0 with the process');

  // Worker 1 still believes that id is route A's and runs a request for route A with it.
  const stale = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: CONSUMER, headers: { accept: '*/*' } });
  const run = await worker1.runPhase(a.Id, 'access', stale);
  t.deepEqual(stale.methods(), ['kong.plugin.get_id', 'kong.worker_events.post', 'kong.response.exit']);
  t.is(run.roundTrips, 3, 'Kong does not step the event again after exit');
  t.deepEqual(stale.workerEvents, [['plugin_server', 'reset_instances', { plugin_name: 'grip' }]]);
  t.is(stale.exit?.status, 503);
  t.false(stale.headers.has('kong-grip-handoff'), 'no token naming origin B for a route A request');

  // Route B's own requests on that instance are unaffected.
  const fine = new FakeKongRequest({ pluginId: ROUTE_B.pluginId, consumer: CONSUMER });
  await worker2.runPhase(b.Id, 'access', fine);
  const v = verifyHandoff(fine.upstreamHeaders(), { secret: SECRET, allowedOrigins: ['http://origin-b:8080'], maxAgeSec: 30, now: Date.now() });
  t.is(v.identity.routeId, ROUTE_B.routeId);
});

test.serial('a consumer the token cannot carry ends the request with 500 from the plugin, never an unsigned proxy', async (t) => {
  const s = await setup();
  t.teardown(() => s.close());
  const kong = s.driver();
  const { Id } = await kong.startInstance('grip', kongPluginConfig(s.info, { secret: SECRET, origin: 'http://origin:8080' }, ROUTE_A));
  const req = new FakeKongRequest({ pluginId: ROUTE_A.pluginId, consumer: { id: 'has spaces' } });
  await kong.runPhase(Id, 'access', req);
  t.deepEqual(req.methods(), ['kong.plugin.get_id', 'kong.client.get_consumer', 'kong.response.exit']);
  t.is(req.exit?.status, 500);
  t.regex(await s.server.waitForOutput(/\[grip\] access failed/), /consumer.id must be an id/);
});

test.serial('300 sequential access events take four round trips each (timing logged for the report)', async (t) => {
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
    t.is(req.calls.length, 3);
  }
  const us = Number(process.hrtime.bigint() - started) / 1000;
  t.is(trips, 4 * n);
  t.log(`${n} access events: ${(us / n).toFixed(0)} µs per event, ${(us / trips).toFixed(0)} µs per round trip (driver and server share the machine)`);
});
