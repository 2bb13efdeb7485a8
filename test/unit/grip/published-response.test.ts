import test from 'ava';
import { buildPublishedResponse, patchJsonBody } from '../../../sidecar/src/grip/published-response.js';

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
});

test('body-patch applies to the timeout body and keeps its trailing newline', (t) => {
  const out = patchJsonBody(Buffer.from('{"a":1,"b":[1]}\n'), [
    { op: 'replace', path: '/a', value: 2 }, { op: 'add', path: '/b/-', value: 3 }]);
  t.is(out.toString(), '{"a":2,"b":[1,3]}\n');
});

test('body-patch on a body that is not JSON, or a failing patch, gives an empty body', (t) => {
  t.is(patchJsonBody(Buffer.from('plain'), [{ op: 'replace', path: '/a', value: 2 }]).length, 0);
  t.is(patchJsonBody(Buffer.from('{"a":1}'), [{ op: 'test', path: '/a', value: 5 }]).length, 0);
});
