import test, { type ExecutionContext } from 'ava';
import { MemoryBus } from '../../sidecar/src/bus/memory-bus.js';
import { createLogger } from '../../sidecar/src/log.js';
import { createMetrics } from '../../sidecar/src/metrics.js';
import { PublishGate, startControlServer } from '../../sidecar/src/publish/control-server.js';
import { request } from '../helpers/http.js';

test('a draining publish gate refuses new publishes and resolves once those in progress are done', async (t) => {
  const gate = new PublishGate();
  t.true(gate.enter());
  t.true(gate.enter());
  let drained = false;
  const draining = gate.drain().then(() => { drained = true; });
  t.false(gate.enter(), 'refused once draining');
  gate.leave();
  await Promise.resolve();
  t.false(drained, 'one is still in progress');
  gate.leave();
  await draining;
  t.true(drained);
});

test('draining an idle publish gate resolves at once', async (t) => {
  const gate = new PublishGate();
  await gate.drain();
  t.true(gate.isDraining);
});

const TOKEN = 'control-test-token-1';

/** A control server with a health report that holds details an outsider should not see. */
async function control(t: ExecutionContext, publishToken?: string) {
  const metrics = createMetrics();
  const server = await startControlServer({
    bus: new MemoryBus(), metrics, log: createLogger('silent'), maxPublishBodyBytes: 1000,
    ...(publishToken === undefined ? {} : { publishToken }),
    health: () => ({ ready: true, details: { bus: { type: 'connected' }, channels: 3, workers: [{ pid: 42 }] } }),
    renderMetrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }),
  }, { host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  return (path: string, headers: Record<string, string> = {}) => request(`http://127.0.0.1:${server.port}${path}`, { headers });
}

test('with a publish token, /metrics needs it too: 401 with the publish API\'s text, 200 with the Bearer token', async (t) => {
  const get = await control(t, TOKEN);
  const anonymous = await get('/metrics');
  t.is(anonymous.status, 401);
  t.is(anonymous.body, 'Unauthorized.\n');
  t.regex(String(anonymous.headers['www-authenticate']), /^Bearer /);
  t.is((await get('/metrics', { Authorization: 'Bearer wrong-token-000' })).status, 401);
  const scraped = await get('/metrics', { Authorization: `Bearer ${TOKEN}` });
  t.is(scraped.status, 200);
  t.regex(scraped.body, /kong_grip_/);
});

test('with a publish token, /healthz and /readyz stay open but tell an anonymous caller only the status', async (t) => {
  const get = await control(t, TOKEN);
  for (const path of ['/healthz', '/readyz']) {
    const anonymous = await get(path);
    t.is(anonymous.status, 200, path);
    t.deepEqual(JSON.parse(anonymous.body), { status: 'ok' }, path);
    const operator = await get(path, { Authorization: `Bearer ${TOKEN}` });
    t.deepEqual(JSON.parse(operator.body), { status: 'ok', bus: { type: 'connected' }, channels: 3, workers: [{ pid: 42 }] }, path);
  }
});

test('without a publish token the control port stays open as before: /metrics and full health details', async (t) => {
  const get = await control(t);
  t.is((await get('/metrics')).status, 200);
  t.deepEqual(JSON.parse((await get('/readyz')).body), { status: 'ok', bus: { type: 'connected' }, channels: 3, workers: [{ pid: 42 }] });
});
