import test from 'ava';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { flatten } from '../../../sidecar/src/grip/headers.js';
import { parsePublishItem } from '../../../sidecar/src/grip/publish-item.js';
import {
  DEFAULT_MAX_PATCHED_BODY_BYTES, buildPublishedResponse, patchJsonBody,
} from '../../../sidecar/src/grip/published-response.js';
import type { HttpResponseFormat, JsonPatchOperation } from '../../../sidecar/src/grip/types.js';

const timeout = {
  code: 200, reason: 'OK',
  headers: [['Content-Type', 'text/plain'], ['X-Custom', 'foo'], ['Content-Length', '12']] as Array<[string, string]>,
  body: Buffer.from('timeout body'),
};

test('item headers replace same-name timeout headers and keep the rest (spec 3.5 example)', (t) => {
  const r = buildPublishedResponse(timeout, {
    action: 'send', code: 202, headers: [['X-Pub', '1'], ['Content-Type', 'application/json'], ['Grip-Foo', 'x']], body: Buffer.from('{}'),
  });
  t.is(r.code, 202);
  t.is(r.reason, 'Accepted');
  t.deepEqual(r.headers, [['X-Custom', 'foo'], ['X-Pub', '1'], ['Content-Type', 'application/json']]);
  t.is(r.body.toString(), '{}');
  t.is(r.patchError, undefined);
});

test('body-patch applies to the timeout body and keeps its trailing newline', (t) => {
  const out = patchJsonBody(Buffer.from('{"a":1,"b":[1]}\n'), [
    { op: 'replace', path: '/a', value: 2 }, { op: 'add', path: '/b/-', value: 3 }]);
  t.is(out.body.toString(), '{"a":2,"b":[1,3]}\n');
  t.is(out.error, undefined);
});

test('body-patch on a body that is not JSON, or a failing patch, gives an empty body and says why', (t) => {
  const notJson = patchJsonBody(Buffer.from('plain'), [{ op: 'replace', path: '/a', value: 2 }]);
  t.is(notJson.body.length, 0);
  t.like(notJson.error, { code: 'KG_ERR_PUBLISH_INVALID', message: 'body-patch not applied: the held response body is not JSON' });
  const failed = patchJsonBody(Buffer.from('{"a":1}'), [{ op: 'test', path: '/a', value: 5 }]);
  t.is(failed.body.length, 0);
  t.like(failed.error, { code: 'KG_ERR_PUBLISH_INVALID', message: 'body-patch not applied: operation 0 (test /a) failed: Test operation failed' });
});

test('a move into itself (found by the property test: move "" to "/-" on []) gives an empty body, never a throw', (t) => {
  const out = patchJsonBody(Buffer.from('[]'), [{ op: 'move', from: '', path: '/-' }]);
  t.is(out.body.length, 0);
  t.like(out.error, { code: 'KG_ERR_PUBLISH_INVALID', message: 'body-patch not applied: operation 0 (move /-) moves a value into itself' });
});

test('25 copies of the document stop as soon as the result could pass the limit, not after building it (D4)', (t) => {
  // Each copy of the root doubles the document: 25 of them made 436 MB for one long-poll.
  const patch: JsonPatchOperation[] = Array.from({ length: 25 }, (_, i) => ({ op: 'copy', from: '', path: `/c${i}` }));
  const body = Buffer.from(JSON.stringify({ a: 'x'.repeat(1000) }));
  const started = performance.now();
  const out = patchJsonBody(body, patch);
  t.true(performance.now() - started < 1000);
  t.is(out.body.length, 0);
  t.is(out.error?.code, 'KG_ERR_PUBLISH_INVALID');
  t.regex(out.error?.message ?? '', /^body-patch not applied: the result would exceed 1048576 bytes \(maxPatchedBodyBytes\) at operation 1\d \(copy \/c1\d\)$/);
});

test('the limit is a parameter of buildPublishedResponse, 1 MiB by default, and counts what the patch adds (D4)', (t) => {
  t.is(DEFAULT_MAX_PATCHED_BODY_BYTES, 1_048_576);
  const held = { ...timeout, body: Buffer.from('{"a":"0123456789"}\n') };
  const format: HttpResponseFormat = { action: 'send', code: 200, headers: [], bodyPatch: [{ op: 'add', path: '/b', value: 'x'.repeat(50) }] };
  t.is(buildPublishedResponse(held, format).body.toString(), `{"a":"0123456789","b":"${'x'.repeat(50)}"}\n`);
  const small = buildPublishedResponse(held, format, { maxPatchedBodyBytes: 60 });
  t.is(small.body.length, 0);
  t.is(small.patchError?.message, 'body-patch not applied: the result would exceed 60 bytes (maxPatchedBodyBytes) at operation 0 (add /b)');
  // A held body already over the limit is not patched either.
  t.regex(buildPublishedResponse(held, format, { maxPatchedBodyBytes: 10 }).patchError?.message ?? '', /exceed 10 bytes .* before operation 0/);
});

test('patching for one subscriber leaves the item\'s operations untouched for the next', (t) => {
  const patch: JsonPatchOperation[] = [{ op: 'add', path: '/o', value: { n: 1 } }, { op: 'add', path: '/o/m', value: 2 }];
  t.is(patchJsonBody(Buffer.from('{}'), patch).body.toString(), '{"o":{"n":1,"m":2}}');
  t.deepEqual(patch[0], { op: 'add', path: '/o', value: { n: 1 } });
  t.is(patchJsonBody(Buffer.from('{}'), patch).body.toString(), '{"o":{"n":1,"m":2}}');
});

test('a held body nested too deeply to serialise gives an empty body, not a crash', (t) => {
  const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
  const out = patchJsonBody(Buffer.from(deep), [{ op: 'add', path: '/-', value: 1 }]);
  t.is(out.body.length, 0);
  t.is(out.error?.code, 'KG_ERR_PUBLISH_INVALID');
});

test('an item header value or reason beyond ASCII reaches the client as its UTF-8 bytes, as with Pushpin 1.36 (D9)', async (t) => {
  const item = parsePublishItem({ channel: 'c', formats: { 'http-response': { reason: 'Prix 5 €', headers: { 'X-Price': '5 €' }, body: 'b' } } });
  const r = buildPublishedResponse(timeout, item.formats['http-response'] as HttpResponseFormat);
  const server = createServer((req, res) => { res.writeHead(r.code, r.reason, flatten(r.headers)); res.end(r.body); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const raw = await new Promise<Buffer>((resolve) => {
    const s = connect((server.address() as AddressInfo).port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
  t.true(raw.includes(Buffer.from('HTTP/1.1 200 Prix 5 \xe2\x82\xac\r\n', 'latin1')), raw.toString('latin1'));
  t.true(raw.includes(Buffer.from('\r\nX-Price: 5 \xe2\x82\xac\r\n', 'latin1')), raw.toString('latin1'));
});
