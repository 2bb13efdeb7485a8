import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { createPublisher, credentialHeader, sseEvent, subjectFor, toPublishItems } from '../../sidecar/src/publish/publisher.js';

test('sseEvent writes the event, id and one data line per line of data', (t) => {
  t.is(sseEvent({ data: 'hi' }), 'data: hi\n\n');
  t.is(sseEvent({ data: 'a\nb\r\nc', event: 'update', id: '7' }), 'event: update\nid: 7\ndata: a\ndata: b\ndata: c\n\n');
});

test('turns typed items into publish items, text as text and bytes as binary', (t) => {
  const [item] = toPublishItems({
    channel: 'news',
    id: '2',
    prevId: '1',
    meta: { by: 'alice' },
    noSeq: true,
    httpStream: { content: 'data: x\n\n' },
    httpResponse: { code: 201, headers: { 'X-A': '1' }, body: new Uint8Array([0, 1, 255]) },
    wsMessage: { content: new Uint8Array([104, 105]) },
  });
  t.is(item?.channel, 'news');
  t.is(item?.id, '2');
  t.is(item?.prevId, '1');
  t.deepEqual(item?.meta, { by: 'alice' });
  t.true(item?.noSeq);
  t.deepEqual(item?.formats['http-stream']?.content, Buffer.from('data: x\n\n'));
  t.is(item?.formats['http-response']?.code, 201);
  t.deepEqual(item?.formats['http-response']?.headers, [['X-A', '1']]);
  t.deepEqual(item?.formats['http-response']?.body, Buffer.from([0, 1, 255]));
  t.is(item?.formats['ws-message']?.type, 'binary');
});

test('accepts a list and keeps its order', (t) => {
  const items = toPublishItems([
    { channel: 'a', httpStream: { content: '1' } },
    { channel: 'b', httpStream: { action: 'close' } },
  ]);
  t.deepEqual(items.map((i) => i.channel), ['a', 'b']);
  t.is(items[1]?.formats['http-stream']?.action, 'close');
});

test('rejects an invalid item with the path of the field, before anything is sent', (t) => {
  t.throws(() => toPublishItems([{ channel: 'ok', httpStream: { content: 'x' } }, { channel: 'bad' }]), {
    code: 'KG_ERR_PUBLISH_INVALID', message: /items\[1\]: no formats specified/,
  });
  t.throws(() => toPublishItems({ channel: '', httpStream: { content: 'x' } }), { message: /items\[0\]: publish item object contains 'channel' with invalid value \(empty\)/ });
  t.throws(() => toPublishItems({ channel: 'c', httpStream: {} }), { message: /items\[0\]: 'http-stream' does not contain 'content'/ });
  t.throws(() => toPublishItems({ channel: 'c', httpResponse: { code: 1000, body: 'x' } }), { message: /'http-response' contains 'code' with invalid value/ });
});

test('the package exports kong-grip/publish from the built publisher module', (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    exports: Record<string, { types: string; default: string }>;
  };
  const entry = pkg.exports['./publish'];
  t.is(entry?.default, './sidecar/dist/publish/publisher.js');
  t.is(entry?.types, './sidecar/dist/publish/publisher.d.ts');
  // The build maps sidecar/src to sidecar/dist, so the source must sit at the matching place.
  t.true(existsSync(new URL('../../sidecar/src/publish/publisher.ts', import.meta.url)));
});

test('subjectFor gives the escaped subject under the default or a given prefix', (t) => {
  t.is(subjectFor('news'), 'grip.ch.news');
  t.is(subjectFor('user.42'), 'grip.ch.user%2E42');
  t.is(subjectFor('room 1', 'app.rt'), 'app.rt.room%201');
  t.throws(() => subjectFor('x', 'a.*'), { message: /must be dot-separated tokens/ });
});

test('an HTTP target sends a Bearer token or a key-auth key, apikey by default', (t) => {
  t.deepEqual(credentialHeader({ url: 'http://x/', token: 't0k' }), ['Authorization', 'Bearer t0k']);
  t.deepEqual(credentialHeader({ url: 'http://x/', apiKey: 'k3y' }), ['apikey', 'k3y']);
  t.deepEqual(credentialHeader({ url: 'http://x/', apiKey: 'k3y', apiKeyHeader: 'X-Publish-Key' }), ['X-Publish-Key', 'k3y']);
  t.is(credentialHeader({ url: 'http://x/' }), undefined);
});

test('an HTTP target with both credentials, an empty one or a bad header name is refused when the publisher is made', (t) => {
  const refused = (http: Record<string, unknown>, message: RegExp) =>
    t.throws(() => createPublisher({ http: { url: 'http://127.0.0.1:1/', ...http } }), { code: 'KG_ERR_CONFIG_INVALID', message });
  refused({ token: 't', apiKey: 'k' }, /either token \(Bearer\) or apiKey \(key-auth\), not both/);
  refused({ token: '' }, /token must be a non-empty string/);
  refused({ apiKey: '' }, /apiKey must be a non-empty string/);
  refused({ apiKey: 'k\r\nX-Evil: 1' }, /must not contain CR, LF or NUL/);
  refused({ apiKey: 'k', apiKeyHeader: 'api key' }, /apiKeyHeader must be a header name/);
  refused({ apiKey: 'k', apiKeyHeader: '' }, /apiKeyHeader must be a header name/);
  refused({ apiKeyHeader: 'apikey' }, /apiKeyHeader needs apiKey/);
  t.notThrows(() => createPublisher({ http: { url: 'http://127.0.0.1:1/', apiKey: 'k' } }));
});
