import test from 'ava';
import { once } from 'node:events';
import { KgError } from '../../../sidecar/src/errors.js';
import { createLogger } from '../../../sidecar/src/log.js';
import { createMetrics } from '../../../sidecar/src/metrics.js';
import { GoneLinkSender, isGoneEnd } from '../../../sidecar/src/origin/gone-link.js';
import { createOutboundPolicy, type OutboundCheck } from '../../../sidecar/src/origin/outbound-policy.js';
import { FakeOrigin, metricValue, originResponse } from '../holds/http-fakes.js';

const REQUEST_URL = new URL('http://origin.test/stream');
const POLICY = createOutboundPolicy({ listeners: [{ host: '127.0.0.1', port: 7999 }, { host: '127.0.0.1', port: 5561 }] });

function sender(policy: { check: OutboundCheck | undefined } = { check: POLICY }) {
  const origin = new FakeOrigin();
  const metrics = createMetrics();
  const gone = new GoneLinkSender(origin, () => policy.check, metrics, createLogger('silent'));
  return { origin, metrics, gone };
}

test('POSTs an empty body to the gone link, with nothing of the client request, and counts it sent', async (t) => {
  const { origin, metrics, gone } = sender();
  gone.notify({ url: 'http://origin.test/gone?id=7', requestUrl: REQUEST_URL });
  const call = await origin.nextCall();
  t.is(call.req.method, 'POST');
  t.is(call.req.url.href, 'http://origin.test/gone?id=7');
  t.deepEqual(call.req.headers, [['Content-Length', '0']]);
  t.is(call.body?.length, 0);
  const res = originResponse(204, [], '');
  const ended = once(res, 'end');
  call.answer(res);
  await ended;
  t.is(await metricValue(metrics.goneLinks, { outcome: 'sent' }), 1);
});

test('a gone link the outbound policy refuses is never requested, and is counted refused', async (t) => {
  const { origin, metrics, gone } = sender();
  gone.notify({ url: 'http://elsewhere.test/gone', requestUrl: REQUEST_URL });
  gone.notify({ url: 'http://127.0.0.1:5561/publish/', requestUrl: new URL('http://127.0.0.1:8080/') });
  t.is(await metricValue(metrics.goneLinks, { outcome: 'refused' }), 2);
  t.is(origin.calls.length, 0);
});

test('before the policy exists every gone link is refused', async (t) => {
  const { origin, metrics, gone } = sender({ check: undefined });
  gone.notify({ url: 'http://origin.test/gone', requestUrl: REQUEST_URL });
  t.is(await metricValue(metrics.goneLinks, { outcome: 'refused' }), 1);
  t.is(origin.calls.length, 0);
});

test('an origin that fails is not asked again (best effort) and the failure is counted', async (t) => {
  const { origin, metrics, gone } = sender();
  gone.notify({ url: 'http://origin.test/gone', requestUrl: REQUEST_URL });
  (await origin.nextCall()).fail(new KgError('KG_ERR_ORIGIN_UNREACHABLE', 'down'));
  await new Promise((resolve) => setImmediate(resolve));
  t.is(await metricValue(metrics.goneLinks, { outcome: 'failed' }), 1);
  t.is(origin.calls.length, 1);
});

test('which ends have a gone link: not those the origin caused', (t) => {
  for (const reason of ['published', 'closed_by_publish', 'completed', 'origin_closed', 'rejected'] as const) t.false(isGoneEnd(reason), reason);
  for (const reason of ['timeout', 'client_gone', 'client_closed', 'slow_consumer', 'shutdown', 'origin_error', 'error'] as const) t.true(isGoneEnd(reason), reason);
});

test('whenIdle waits for the POSTs under way, and no longer than asked', async (t) => {
  const { origin, gone } = sender();
  await gone.whenIdle(10); // nothing under way
  gone.notify({ url: 'http://origin.test/gone', requestUrl: REQUEST_URL });
  let idle = false;
  const waiting = gone.whenIdle(60_000).then(() => { idle = true; });
  const call = await origin.nextCall();
  await new Promise((resolve) => setImmediate(resolve));
  t.false(idle, 'still waiting for the answer');
  call.answer(originResponse(204, [], ''));
  await waiting;
  t.true(idle);
  gone.notify({ url: 'http://origin.test/gone', requestUrl: REQUEST_URL });
  await origin.nextCall(); // never answered
  const started = Date.now();
  await gone.whenIdle(50);
  t.true(Date.now() - started < 5000);
});
