import test from 'ava';
import { Publisher } from '@fanoutio/grip';
import http from 'node:http';
import { startGripOrigin, TEST_SIG_KEY } from '../helpers/grip-origin.js';
import { openStream, request } from '../helpers/http.js';
import { startTestSidecar, waitForSubscribers } from '../helpers/sidecar.js';

const dummyOrigin = 'http://127.0.0.1:9';

test('publish API answers with Pushpin statuses and texts', async (t) => {
  const side = await startTestSidecar({ origin: dummyOrigin });
  t.teardown(() => side.close());
  const publish = (body: string, headers: Record<string, string> = {}) =>
    request(`${side.controlUri}publish/`, { method: 'POST', body, headers });

  let res = await publish('{"items":[]}');
  t.is(res.status, 200);
  t.is(res.body, 'Published\n');
  res = await publish('{"items":[]}', { Accept: 'application/json' });
  t.is(res.body, '{"message":"Published"}\n');
  t.is(res.headers['content-type'], 'application/json');
  res = await publish('{"items":[]}', { Accept: 'image/png' });
  t.is(res.status, 406);
  t.is(res.body, 'Not Acceptable. Supported formats are text/plain and application/json.\n');
  res = await publish('{not json');
  t.is(res.status, 400);
  t.is(res.body, 'Body is not valid JSON.\n');
  res = await publish('[]');
  t.is(res.body, 'Invalid format.\n');
  // Pushpin's JSON parser takes only an object or an array at the top, at most 1024 levels deep.
  for (const notJson of ['"items"', 'null', '5', `{"items":${'['.repeat(1024)}${']'.repeat(1024)}}`]) {
    res = await publish(notJson);
    t.is(res.body, 'Body is not valid JSON.\n', notJson.slice(0, 20));
  }
  res = await publish('{}');
  t.is(res.body, "Invalid format: object does not contain 'items'\n");
  res = await publish('{"items":[{"channel":"a","formats":{"http-stream":{}}}]}');
  t.is(res.status, 400);
  t.is(res.body, "Invalid format: items[0]: 'http-stream' does not contain 'content' or 'content-bin'\n");
  res = await request(`${side.controlUri}publish/`);
  t.is(res.status, 405);
  t.is(res.headers['allow'], 'POST');
  t.is(res.body, 'Method not allowed: GET.\n');
  res = await request(`${side.controlUri}nope`);
  t.is(res.status, 404);
  res = await request(`${side.controlUri}publish`, { method: 'POST', body: '{"items":[]}' });
  t.is(res.status, 200, '/publish without the slash works too');
});

test('publish API requires Content-Length and bounds the body size', async (t) => {
  const side = await startTestSidecar({ origin: dummyOrigin, limits: { maxPublishBodyBytes: 100 } });
  t.teardown(() => side.close());
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${side.controlUri}publish/`, { method: 'POST', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.write('{"items":');
    req.end('[]}');
  });
  t.is(chunked.status, 411);
  t.is(chunked.body, 'Request requires Content-Length.\n');
  const big = await request(`${side.controlUri}publish/`, { method: 'POST', body: JSON.stringify({ items: [], pad: 'x'.repeat(200) }) });
  t.is(big.status, 400);
  t.is(big.body, 'Request body too large.\n');
});

test('a publish token is required when configured, and the grip Publisher sends it', async (t) => {
  const origin = await startGripOrigin({
    '/s': (req, res) => { res.setHeader('Grip-Hold', 'stream'); res.setHeader('Grip-Channel', 'c'); res.end('open\n'); },
  });
  const side = await startTestSidecar({ origin: origin.url, sigKey: TEST_SIG_KEY, publishToken: 'secret-token-1' });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const anonymous = await request(`${side.controlUri}publish/`, { method: 'POST', body: '{"items":[]}' });
  t.is(anonymous.status, 401);
  const wrong = new Publisher({ control_uri: side.controlUri, key: 'wrong-token-1' });
  const rejection = await wrong.publishHttpStream('c', 'x').then(() => undefined, (e: { context?: { statusCode?: number } }) => e);
  t.is(rejection?.context?.statusCode, 401);
  const stream = await openStream(side.url('/s'));
  await waitForSubscribers(side.sidecar.hub, 'c', 1);
  const right = new Publisher({ control_uri: side.controlUri, key: 'secret-token-1' });
  await right.publishHttpStream('c', 'authorized\n');
  t.is(await stream.waitFor('authorized\n'), 'open\nauthorized\n');
  stream.close();
});

test('healthz reports the bus and metrics count accepted items', async (t) => {
  const side = await startTestSidecar({ origin: dummyOrigin });
  t.teardown(() => side.close());
  const health = await request(`${side.controlUri}healthz`);
  t.is(health.status, 200);
  t.deepEqual(JSON.parse(health.body).bus, { type: 'connected' });
  await request(`${side.controlUri}publish/`, { method: 'POST', body: '{"items":[{"channel":"a","formats":{"http-stream":{"content":"x"}}}]}' });
  const metrics = await request(`${side.controlUri}metrics`);
  t.regex(metrics.body, /kong_grip_publish_items_total\{source="http"\} 1/);
});
