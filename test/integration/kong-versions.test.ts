import test, { type ExecutionContext } from 'ava';
import { verifyHandoff } from '../../sidecar/src/kong/handoff-verifier.js';
import { checkSchemaDefinition, type SchemaFields } from '../helpers/kong-schema.js';
import {
  FakeKongRequest, KongRpcDriver, makePrefix, startPluginServer, type PluginServer, useLauncher,
} from '../helpers/kong-rpc-driver.js';
import {
  KONG_VERSIONS, KongNodeModel, NotifyingRpc, kongVersion, versionConfig, versionPair, type AccessOutcome, type KongVersion,
  type PluginEntity, type RestartRecovery, type VersionedKongWorker,
} from '../helpers/kong-versions.js';

// The real grip-pluginserver (built as shipped, started as Kong starts it) driven as each Kong
// version drives it: that version's config keys, Step methods, instance cache and "no plugin
// instance" handling, serverPid notifications (test/helpers/kong-versions.ts, read from Kong's
// source), for every version in the supported matrix (3.4 to 3.9) and for 2.8, before it. Serial:
// each test runs its own server process.

const SECRET = 'kong-versions-test-secret-0123456789abcdef';
const ORIGIN_A = 'http://origin-a:8080';
const ORIGIN_A2 = 'http://origin-a2:8080';
const ORIGIN_B = 'http://origin-b:8080';
const ROUTE_A: PluginEntity = { pluginId: 'aaaaaaaa-0000-4000-8000-00000000000a', routeId: 'aaaaaaaa-1111-4000-8000-00000000000a' };
const ROUTE_B: PluginEntity = { pluginId: 'bbbbbbbb-0000-4000-8000-00000000000b', routeId: 'bbbbbbbb-1111-4000-8000-00000000000b', instanceName: 'grip-b' };
const CONSUMER = { id: 'c0c0c0c0-0000-4000-8000-000000000001', username: 'web-app', custom_id: 'tenant-42', created_at: 1767225000, type: 0 };

const sharedLauncher = useLauncher();

/**
 * A Kong node of `workers` workers of version `v` around one launcher process (restartable).
 * The workers read the launcher's notifications as Kong's Rpc:call does, unless
 * `ignoreNotifications`: then they see only answers, as from a server that sends none (kong-pdk's
 * own, or this launcher before it sent serverPid), which shows Kong's own restart handling.
 */
async function node(t: ExecutionContext, v: KongVersion, workers = 2, opts: { ignoreNotifications?: boolean } = {}) {
  const { file, info } = await sharedLauncher();
  const prefix = makePrefix();
  let server: PluginServer = await startPluginServer(file, prefix.dir);
  const model = new KongNodeModel(v);
  const drivers: Array<{ close(): void }> = [];
  for (let i = 0; i < workers; i++) {
    const d = opts.ignoreNotifications ? new KongRpcDriver(server.socketPath) : new NotifyingRpc(server.socketPath);
    drivers.push(d);
    model.addWorker(d);
  }
  t.teardown(async () => {
    for (const d of drivers) d.close();
    await server.stop();
    prefix.remove();
  });
  let workerSeq = 0;
  return {
    info, model,
    get server() { return server; },
    /** The config worker `w` holds for an entity: per-worker __seq__ (3.4, 3.5) or one node-wide counter (3.6+). */
    config(w: VersionedKongWorker, user: Record<string, unknown>, entity: PluginEntity): Record<string, unknown> {
      const seq = v.seqScope === 'node' ? model.nextSeq() : w.workerId * 1000 + ++workerSeq;
      return versionConfig(v, info, { secret: SECRET, ...user }, entity, seq);
    },
    /** The launcher restarts (Kong respawns it); idle pooled connections to the old process are gone. */
    async restart() {
      await server.stop();
      for (const d of drivers) d.close();
      server = await startPluginServer(file, prefix.dir);
    },
  };
}

const verify = (req: FakeKongRequest, origins: string[]) => verifyHandoff(req.upstreamHeaders(), { secret: SECRET, allowedOrigins: origins, maxAgeSec: 30, now: Date.now() });
const request = (entity: PluginEntity) => new FakeKongRequest({ pluginId: entity.pluginId, consumer: CONSUMER, headers: { host: 'kong.test', 'kong-grip-handoff': 'forged' } });

/** The phase ran, with only PDK functions and Step methods this version has, and no worker event. */
function assertRanWithVersionPdk(t: ExecutionContext, v: KongVersion, outcome: AccessOutcome, req: FakeKongRequest, what: string): void {
  t.is(outcome.kind, 'ran', `${what}: ${JSON.stringify(outcome)}`);
  for (const m of req.methods()) t.true(m in v.pdk, `${what}: ${m} is not a PDK function the plugin may use on ${v.tag}`);
  t.deepEqual(req.unknown, [], what);
  t.deepEqual(req.workerEvents, [], `${what}: no worker event (reset_instances has a handler only from 3.5, and only on worker 0 before 3.9)`);
  t.is(req.exit, undefined, what);
  t.is(req.luaError, undefined, what);
}

test.serial('--dump: the plugin info Kong reads (one plugin, MsgPack by default) has a Schema every version from 2.8 to 3.9 accepts', async (t) => {
  const { info } = await sharedLauncher();
  t.is(info.Name, 'grip');
  t.false('Protocol' in info, 'every version defaults to MsgPack:1');
  t.deepEqual(info.Phases, ['access']);
  const fields = info.Schema.fields[0]?.config.fields as unknown as SchemaFields;
  for (const v of KONG_VERSIONS) {
    t.deepEqual(checkSchemaDefinition(fields, 'config', versionPair(v)), [], v.tag);
    for (const entry of fields) {
      for (const def of Object.values(entry)) for (const attr of Object.keys(def)) t.true(v.fieldAttributes.has(attr), `${attr} on ${v.tag}`);
    }
  }
});

/**
 * Worker 0 runs routes A and B, worker 1 route A; the launcher restarts; then worker 0 serves
 * route B first (a new instance in the new process), and worker 1 and worker 0 serve route A
 * with the numbers they cached before the restart. `recovery` says which workers must come back.
 */
async function restartScenario(t: ExecutionContext, v: KongVersion, recovery: RestartRecovery, opts: { ignoreNotifications?: boolean } = {}): Promise<void> {
  const n = await node(t, v, 2, opts);
  const [w0, w1] = n.model.workers as [VersionedKongWorker, VersionedKongWorker];
  const confs = {
    w0A: n.config(w0, { origin: ORIGIN_A }, ROUTE_A),
    w0B: n.config(w0, { origin: ORIGIN_B }, ROUTE_B),
    w1A: n.config(w1, { origin: ORIGIN_A }, ROUTE_A),
  };
  for (const [w, c] of [[w0, confs.w0A], [w0, confs.w0B], [w1, confs.w1A]] as const) {
    t.is((await w.access(c, request({ pluginId: String(c['__plugin_id']) }))).kind, 'ran');
  }
  const stale = { w0A: w0.cached(confs.w0A), w0B: w0.cached(confs.w0B), w1A: w1.cached(confs.w1A) };
  await n.restart();

  const runs = [
    { who: 'worker 0, route B', w: w0, conf: confs.w0B, entity: ROUTE_B, origin: ORIGIN_B, stale: stale.w0B },
    { who: 'worker 1, route A', w: w1, conf: confs.w1A, entity: ROUTE_A, origin: ORIGIN_A, stale: stale.w1A },
    { who: 'worker 0, route A', w: w0, conf: confs.w0A, entity: ROUTE_A, origin: ORIGIN_A, stale: stale.w0A },
  ];
  for (const r of runs) {
    const req = request(r.entity);
    const outcome = await r.w.access(r.conf, req);
    const recovers = recovery === 'every-worker' || (recovery === 'worker-0-only' && r.w.workerId === 0);
    if (recovers) {
      assertRanWithVersionPdk(t, v, outcome, req, r.who);
      t.not(outcome.kind === 'ran' && outcome.instanceId, r.stale, `${r.who}: a fresh instance, not the stale number`);
      const token = verify(req, [r.origin]);
      t.is(token.origin.href, `${r.origin}/`, `${r.who}: its own origin`);
      t.is(token.identity.routeId, r.entity.routeId ?? null, r.who);
      t.is(token.identity.pluginId, r.entity.pluginId, r.who);
      t.deepEqual(req.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers'], `${r.who}: the retried event ran once, whole`);
    } else {
      t.is(outcome.kind, 'spinning', `${r.who}: ${JSON.stringify(outcome)}`);
      if (outcome.kind === 'spinning') t.deepEqual(new Set(outcome.instanceIds), new Set([r.stale]), `${r.who}: every turn reuses the stale number`);
      t.deepEqual(req.calls, [], `${r.who}: the plugin never runs`);
      t.true(r.w.log.filter((l) => l.startsWith('warn: no plugin instance')).length >= 2, `${r.who}: one warning per turn`);
    }
  }
  if (!opts.ignoreNotifications) return;
  if (v.resetEvent === 'worker-0-fails') t.true(n.model.handlerErrors.length > 0, 'worker 0\'s reset_instances handler fails on 3.5');
  else t.deepEqual(n.model.handlerErrors, []);
}

for (const v of KONG_VERSIONS.filter((k) => k.supported)) {
  test.serial(`Kong ${v.name} (${v.tag}): StartInstance with its config; access signs a token the sidecar accepts using only its PDK and Step methods; a config edit ${v.configEditApplies ? 'reaches' : 'does not reach'} a running worker`, async (t) => {
    const n = await node(t, v);
    const [w0, w1] = n.model.workers as [VersionedKongWorker, VersionedKongWorker];

    const reqA = request(ROUTE_A);
    const a = await w0.access(n.config(w0, { origin: ORIGIN_A }, ROUTE_A), reqA);
    assertRanWithVersionPdk(t, v, a, reqA, 'route A');
    t.deepEqual(a.kind === 'ran' && a.rpcs, ['plugin.HandleEvent', 'plugin.StepConsumer', 'plugin.Step'], 'forward_consumer: get_consumer, set_headers');
    t.deepEqual(reqA.methods(), ['kong.client.get_consumer', 'kong.service.request.set_headers']);
    const tokenA = verify(reqA, [ORIGIN_A]);
    t.deepEqual(tokenA.identity, {
      consumer: { id: CONSUMER.id, username: 'web-app', customId: 'tenant-42' },
      routeId: ROUTE_A.routeId, serviceId: null, pluginId: ROUTE_A.pluginId,
    });

    const reqB = request(ROUTE_B);
    const b = await w1.access(n.config(w1, { origin: ORIGIN_B, forward_consumer: false }, ROUTE_B), reqB);
    assertRanWithVersionPdk(t, v, b, reqB, 'route B');
    t.deepEqual(b.kind === 'ran' && b.rpcs, ['plugin.HandleEvent', 'plugin.Step'], 'without forward_consumer: set_headers only');
    t.deepEqual(verify(reqB, [ORIGIN_B]).identity, { consumer: null, routeId: ROUTE_B.routeId, serviceId: null, pluginId: ROUTE_B.pluginId });

    // The admin edits route A's plugin (same id, new config object, so a new __seq__).
    const reqEdit = request(ROUTE_A);
    const edited = await w0.access(n.config(w0, { origin: ORIGIN_A2 }, ROUTE_A), reqEdit);
    assertRanWithVersionPdk(t, v, edited, reqEdit, 'edited route A');
    const signedFor = verify(reqEdit, [ORIGIN_A, ORIGIN_A2]).origin.href;
    if (v.configEditApplies) {
      t.is(signedFor, `${ORIGIN_A2}/`, 'the edit started a new instance');
      t.not(edited.kind === 'ran' && edited.instanceId, a.kind === 'ran' && a.instanceId);
    } else {
      t.is(signedFor, `${ORIGIN_A}/`, 'the cached instance still runs the old config (Kong 3.6 matches on __plugin_id only)');
      t.is(edited.kind === 'ran' && edited.instanceId, a.kind === 'ran' && a.instanceId);
    }
  });

  test.serial(`Kong ${v.name} (${v.tag}): after a launcher restart, its serverPid notification makes every worker restart its instances with their own config`,
    (t) => restartScenario(t, v, 'every-worker'));

  const own = v.restartRecovery === 'every-worker' ? 'every worker recovers by itself'
    : v.restartRecovery === 'worker-0-only' ? 'only worker 0 recovers, worker 1 retries the stale number forever (Kong bug fixed in 3.7)'
      : 'no worker recovers: each retries the stale number forever (Kong bug fixed in 3.7)';
  test.serial(`Kong ${v.name} (${v.tag}): Kong's own restart handling, from a server without the notification: ${own}`,
    (t) => restartScenario(t, v, v.restartRecovery, { ignoreNotifications: true }));
}

test.serial('Kong 2.8 (2.8.5, before the matrix: no __plugin_id): the schema loads, StartInstance answers, access exits 500 naming the supported versions (and logs it once to Kong\'s error log)', async (t) => {
  const v = kongVersion('2.8');
  const n = await node(t, v, 1);
  const [w0] = n.model.workers as [VersionedKongWorker];
  const config = n.config(w0, { origin: ORIGIN_A }, ROUTE_A);
  t.false('__plugin_id' in config);
  for (let i = 0; i < 3; i++) {
    const req = request(ROUTE_A);
    const outcome = await w0.access(config, req);
    t.is(outcome.kind, 'ran', 'the phase ends with the plugin\'s exit, never a retry loop');
    for (const m of req.methods()) t.true(m in v.pdk, `${m} exists in ${v.tag}`);
    if (i === 0) {
      t.deepEqual(outcome.kind === 'ran' && outcome.rpcs, ['plugin.HandleEvent', 'plugin.Step'], 'the first request: kong.log.err, then the exit');
      t.deepEqual(req.methods(), ['kong.log.err', 'kong.response.exit']);
      t.regex(String(req.calls[0]?.args[0]), /^kong-grip: this Kong does not send __plugin_id; supported Kong versions are 3\.4 to 3\.9/);
    } else {
      t.deepEqual(outcome.kind === 'ran' && outcome.rpcs, ['plugin.HandleEvent'], 'HandleEvent answers with the exit call');
      t.deepEqual(req.methods(), ['kong.response.exit']);
    }
    t.is(req.exit?.status, 500);
    t.deepEqual(req.exit?.body, { message: 'kong-grip: this Kong does not send __plugin_id; supported Kong versions are 3.4 to 3.9' });
    t.false(req.headers.has('kong-grip-handoff') && req.headers.get('kong-grip-handoff')?.[0] !== 'forged', 'no token signed');
  }
  t.is(w0.cacheSize(), 1, 'one instance, reused');
  await n.server.waitForOutput(/\[grip\] kong-grip: this Kong does not send __plugin_id/);
  t.is(n.server.output.filter((l) => l.includes('does not send __plugin_id')).length, 1, 'one log line per instance, not per request');
});
