import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { bundleForNode } from '../../../plugin/build.js';
import type * as PluginServerModule from '../../../plugin/src/plugin-server.js';
import type { ServerLog } from '../../../plugin/src/plugin-server.js';

// kong-pdk's server as the launcher sets it up, called in-process the way the socket listener
// calls it for Kong. Loaded as the launcher is built (kong-pdk's ts-node registration needs a
// TypeScript this repository does not have).

const dir = mkdtempSync(join(tmpdir(), 'kg-plugin-server-unit-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let loaded: Promise<typeof PluginServerModule> | undefined;
const load = (): Promise<typeof PluginServerModule> => {
  loaded ??= (async () => {
    const bundle = join(dir, 'plugin-server.cjs');
    await bundleForNode(fileURLToPath(new URL('../../../plugin/src/plugin-server.ts', import.meta.url)), bundle);
    writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}');
    return createRequire(import.meta.url)(bundle) as typeof PluginServerModule;
  })();
  return loaded;
};

const quiet: ServerLog = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const GOOD = { secret: 'unit-plugin-server-secret-0123456789abcdef', origin: 'http://origin:8080', forward_consumer: false, __plugin_id: 'p-1' };

test('random starts are integers in [0, 2^52), and differ', async (t) => {
  const { randomInstanceStart } = await load();
  const starts = new Set(Array.from({ length: 64 }, () => randomInstanceStart()));
  for (const s of starts) t.true(Number.isSafeInteger(s) && s >= 0 && s < 2 ** 52, String(s));
  t.is(starts.size, 64);
});

test('instances are numbered from the given start, one up per instance', async (t) => {
  const { createGripPluginServer } = await load();
  const { server } = createGripPluginServer(quiet, 1234);
  t.teardown(() => server.close());
  t.is((await server.StartInstance({ Name: 'grip', Config: JSON.stringify(GOOD) })).Id, 1234);
  t.is((await server.StartInstance({ Name: 'grip', Config: JSON.stringify(GOOD) })).Id, 1235);
});

test('an event that ends in kong.response.exit is forgotten at once (kong-pdk alone keeps it forever)', async (t) => {
  const { createGripPluginServer } = await load();
  const { server } = createGripPluginServer(quiet);
  t.teardown(() => server.close());
  const broken = await server.StartInstance({ Name: 'grip', Config: JSON.stringify({ ...GOOD, origin: 'http://origin:99999' }) });
  for (let i = 0; i < 50; i++) {
    let r = await server.HandleEvent({ InstanceId: broken.Id, EventName: 'access' });
    if ((r.Data as { Method: string }).Method === 'kong.log.err') r = await server.Step({ EventId: r.EventId });
    t.is((r.Data as { Method: string }).Method, 'kong.response.exit');
  }
  t.is(server.events.size, 0);
});

test('an event that runs to its end ("ret") is forgotten, as kong-pdk does', async (t) => {
  const { createGripPluginServer } = await load();
  const { server } = createGripPluginServer(quiet);
  t.teardown(() => server.close());
  const good = await server.StartInstance({ Name: 'grip', Config: JSON.stringify(GOOD) });
  const r = await server.HandleEvent({ InstanceId: good.Id, EventName: 'access' });
  t.is((r.Data as { Method: string }).Method, 'kong.service.request.set_headers');
  t.is(server.events.size, 1, 'open while the plugin waits for Kong');
  t.is((await server.Step({ EventId: r.EventId })).Data, 'ret');
  t.is(server.events.size, 0);
});
