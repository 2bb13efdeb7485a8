import test from 'ava';
import { ClientServer } from '../../../sidecar/src/server/client-server.js';
import { Admission } from '../../../sidecar/src/server/admission.js';
import { WsUpgradeHandler } from '../../../sidecar/src/server/ws-upgrade.js';
import { DEFAULT_LIMITS, DEFAULT_WS } from '../../../sidecar/src/config.js';
import { systemClock } from '../../../sidecar/src/holds/clock.js';
import { HoldRegistry } from '../../../sidecar/src/holds/hold-registry.js';
import { KeepAliveWheel } from '../../../sidecar/src/holds/keep-alive-wheel.js';
import { Hub } from '../../../sidecar/src/hub/hub.js';
import { MemoryBus } from '../../../sidecar/src/bus/memory-bus.js';
import { createLogger } from '../../../sidecar/src/log.js';
import { createMetrics } from '../../../sidecar/src/metrics.js';
import { withDeadline } from '../../../bench/proc.js';
import { request } from '../../helpers/http.js';
import { NO_GONE_LINKS } from '../../../sidecar/src/origin/gone-link.js';

// The client server's last resort: a request whose handling fails unexpectedly gets a plain 500,
// even when the failure left a reason on the response that Node refuses to write.

test('a request whose handling fails after setting an unwritable reason gets 500, never a second throw', async (t) => {
  const rejections: unknown[] = [];
  const onRejection = (err: unknown): void => { rejections.push(err); };
  process.on('unhandledRejection', onRejection);
  t.teardown(() => { process.off('unhandledRejection', onRejection); });
  const metrics = createMetrics();
  const log = createLogger('silent');
  const keepAlives = new KeepAliveWheel();
  t.teardown(() => keepAlives.close());
  const admission = new Admission(10);
  const server = await ClientServer.start({
    host: '127.0.0.1', port: 0, admission, limits: DEFAULT_LIMITS, clock: systemClock,
    resolveTarget: () => ({ url: new URL('http://origin.invalid/'), headers: [] }),
    handleRequest: async (_req, res) => {
      res.statusMessage = 'O\u0001K';
      res.writeHead(200); // throws ERR_INVALID_CHAR: the failure under test
    },
    wsUpgrades: new WsUpgradeHandler({
      hub: new Hub(new MemoryBus(), metrics), post: async () => { throw new Error('no origin'); }, metrics, log,
      limits: DEFAULT_LIMITS, ws: DEFAULT_WS, keepAlives, clock: systemClock, gone: NO_GONE_LINKS, onSessionEnded: () => admission.release('ws'),
    }),
    holds: new HoldRegistry(), metrics, log,
  });
  t.teardown(() => server.cut());
  const res = await withDeadline(request(`http://127.0.0.1:${server.port}/`), 5000, 'an answer to the failed request');
  t.is(res.status, 500);
  t.is(res.body, 'Internal Server Error\n');
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(rejections, []);
});
