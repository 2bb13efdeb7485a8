import test from 'ava';
import { encodePublishItem, parsePublishItem, parsePublishRequest } from '../../../sidecar/src/grip/publish-item.js';
import { KgError } from '../../../sidecar/src/errors.js';

const invalidMessage = (fn: () => unknown): string => {
  const err = (() => { try { fn(); } catch (e) { return e; } return undefined; })();
  if (!(err instanceof KgError) || err.code !== 'KG_ERR_PUBLISH_INVALID') throw new Error(`expected KG_ERR_PUBLISH_INVALID, got ${String(err)}`);
  return err.message;
};

test('parses an item with all three formats', (t) => {
  const item = parsePublishItem({
    channel: 'news', id: '2', 'prev-id': '1', meta: { sender: 'alice' },
    formats: {
      'http-response': { code: 202, headers: { 'X-Pub': '1' }, body: 'hi\n' },
      'http-stream': { content: 'data: hi\n\n' },
      'ws-message': { 'content-bin': Buffer.from([1, 2]).toString('base64') },
    },
  });
  t.is(item.channel, 'news');
  t.is(item.id, '2');
  t.is(item.prevId, '1');
  t.deepEqual(item.meta, { sender: 'alice' });
  t.is(item.formats['http-response']?.code, 202);
  t.deepEqual(item.formats['http-response']?.headers, [['X-Pub', '1']]);
  t.is(item.formats['http-response']?.body?.toString(), 'hi\n');
  t.is(item.formats['http-stream']?.content.toString(), 'data: hi\n\n');
  t.is(item.formats['ws-message']?.type, 'binary');
  t.deepEqual([...(item.formats['ws-message']?.content ?? [])], [1, 2]);
});

test('body-bin takes precedence over body, and headers may be a list of pairs', (t) => {
  const item = parsePublishItem({ channel: 'c', formats: { 'http-response': {
    body: 'text', 'body-bin': Buffer.from('bin').toString('base64'), headers: [['A', '1'], ['A', '2']] } } });
  t.is(item.formats['http-response']?.body?.toString(), 'bin');
  t.deepEqual(item.formats['http-response']?.headers, [['A', '1'], ['A', '2']]);
});

test('accepts the legacy style with formats placed on the item', (t) => {
  const item = parsePublishItem({ channel: 'c', 'http-stream': { content: 'x' } });
  t.is(item.formats['http-stream']?.content.toString(), 'x');
});

test('close actions need no content; ws close carries code and reason', (t) => {
  const item = parsePublishItem({ channel: 'c', formats: {
    'http-stream': { action: 'close' }, 'ws-message': { action: 'close', code: 4001, reason: 'pubclose' } } });
  t.is(item.formats['http-stream']?.action, 'close');
  t.is(item.formats['ws-message']?.code, 4001);
  t.is(item.formats['ws-message']?.reason, 'pubclose');
});

test('refuses bad items with Pushpin 1.36\'s own reason after the item\'s location', (t) => {
  // Each reason is what Pushpin 1.36 answers for the same item (test/integration/pushpin-compat.test.ts
  // compares them live); kong-grip puts the item's location in front.
  const cases: Array<[unknown, string]> = [
    [5, 'publish item object is not an object'],
    [{ formats: { 'http-stream': { content: 'x' } } }, "publish item object does not contain 'channel'"],
    [{ channel: 5, formats: { 'http-stream': { content: 'x' } } }, "publish item object contains 'channel' with wrong type"],
    [{ channel: null, formats: { 'http-stream': { content: 'x' } } }, "publish item object contains 'channel' with wrong type"],
    [{ channel: 'c', id: 5, formats: { 'http-stream': { content: 'x' } } }, "publish item object contains 'id' with wrong type"],
    [{ channel: 'c', 'prev-id': [], formats: { 'http-stream': { content: 'x' } } }, "publish item object contains 'prev-id' with wrong type"],
    [{ channel: 'c', formats: 5 }, "publish item object contains 'formats' with wrong type"],
    [{ channel: 'c', formats: {} }, 'no formats specified'],
    [{ channel: 'c' }, 'no formats specified'],
    [{ channel: 'c', formats: { 'http-stream': 5 } }, "'http-stream' is not an object"],
    [{ channel: 'c', formats: { 'http-stream': { action: 5, content: 'x' } } }, "'http-stream' contains 'action' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': {} } }, "'http-stream' does not contain 'content' or 'content-bin'"],
    [{ channel: 'c', formats: { 'http-stream': { content: 5 } } }, "'http-stream' contains 'content' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { 'content-bin': 5 } } }, "'http-stream' contains 'content-bin' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x', 'content-filters': 'a' } } }, "'http-stream' contains 'content-filters' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x', 'content-filters': [5] } } }, 'content-filters contains element with wrong type'],
    [{ channel: 'c', formats: { 'http-response': {} } }, "'http-response' does not contain 'body', 'body-bin', or 'body-patch'"],
    [{ channel: 'c', formats: { 'http-response': { body: 5 } } }, "'http-response' contains 'body' with wrong type"],
    [{ channel: 'c', formats: { 'http-response': { 'body-bin': 5 } } }, "'http-response' contains 'body-bin' with wrong type"],
    [{ channel: 'c', formats: { 'http-response': { 'body-patch': 5 } } }, "'http-response' contains 'body-patch' with wrong type"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', code: 1000 } } }, "'http-response' contains 'code' with invalid value"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', code: -1 } } }, "'http-response' contains 'code' with invalid value"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', reason: 5 } } }, "'http-response' contains 'reason' with wrong type"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: 5 } } }, "'http-response' contains 'headers' with wrong type"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: [5] } } }, 'headers contains element with wrong type'],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: [['a']] } } }, 'headers contains list with wrong number of elements'],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: [[5, 'v']] } } }, 'header contains name element with wrong type'],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: [['a', 5]] } } }, 'header contains value element with wrong type'],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: { a: 5 } } } }, "headers contains 'a' with wrong type"],
    [{ channel: 'c', formats: { 'ws-message': {} } }, "'ws-message' does not contain 'content' or 'content-bin'"],
    [{ channel: 'c', formats: { 'ws-message': { type: 'blob', content: 'x' } } }, "'ws-message' contains 'type' with unknown value"],
    [{ channel: 'c', formats: { 'ws-message': { type: 5, content: 'x' } } }, "'ws-message' contains 'type' with wrong type"],
    [{ channel: 'c', formats: { 'ws-message': { content: 5 } } }, "'ws-message' contains 'content' with wrong type"],
    [{ channel: 'c', formats: { 'ws-message': { 'content-bin': 5 } } }, "'ws-message' contains 'content-bin' with wrong type"],
    [{ channel: 'c', formats: { 'ws-message': { action: 'close', code: -5 } } }, "'ws-message' contains 'code' with invalid value"],
    [{ channel: 'c', formats: { 'ws-message': { action: 'close', reason: 5 } } }, "'ws-message' contains 'reason' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x' } }, meta: 5 }, "publish item object contains 'meta' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x' } }, meta: { k: 5 } }, "'meta' contains 'k' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x' } }, 'no-seq': 'yes' }, "publish item object contains 'no-seq' with wrong type"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x' } }, size: -1 }, "publish item object contains 'size' with invalid value"],
    [{ channel: 'c', 'http-stream': { content: 5 } }, "'http-stream' contains 'content' with wrong type"],
  ];
  for (const [item, reason] of cases) t.is(invalidMessage(() => parsePublishItem(item, 'items[3]')), `items[3]: ${reason}`, reason);
});

test('checks Pushpin does not make use its wording, with the detail in parentheses', (t) => {
  const cases: Array<[unknown, string]> = [
    [{ channel: '', formats: { 'http-stream': { content: 'x' } } }, "publish item object contains 'channel' with invalid value (empty)"],
    [{ channel: 'c', formats: { 'http-stream': { 'content-bin': '***' } } }, "'http-stream' contains 'content-bin' with invalid value (not valid base64)"],
    [{ channel: 'c', formats: { 'http-stream': { content: 'x', action: 'explode' } } },
      `'http-stream' contains 'action' with unknown value (one of send, close, hint, refresh, got "explode")`],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', code: 'abc' } } }, "'http-response' contains 'code' with wrong type"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', code: 2.5 } } }, "'http-response' contains 'code' with invalid value (not an integer: 2.5)"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', code: 50 } } }, "'http-response' contains 'code' with invalid value (must be 200-999, got 50)"],
    [{ channel: 'c', formats: { 'http-response': { body: 'x', headers: { 'Bad Name': 'v' } } } }, "headers contains 'Bad Name' with invalid value (not an HTTP token)"],
    [{ channel: 'c', formats: { 'ws-message': { action: 'close', code: 70000 } } }, "'ws-message' contains 'code' with invalid value (must be 0-4999, got 70000)"],
    [{ channel: 'c', formats: { 'ws-message': { action: 'close', reason: 'x'.repeat(124) } } }, "'ws-message' contains 'reason' with invalid value (more than 123 bytes)"],
  ];
  for (const [item, reason] of cases) t.is(invalidMessage(() => parsePublishItem(item, 'items[0]')), `items[0]: ${reason}`, reason);
});

test('as in Pushpin, the fields of a format are read only for the actions that use them', (t) => {
  const item = parsePublishItem({ channel: 'c', formats: {
    'http-response': { action: 'hint', body: 5 }, 'http-stream': { action: 'close', content: 5 }, 'ws-message': { action: 'refresh', type: 9 } } });
  t.is(item.formats['http-response']?.action, 'hint');
  t.is(item.formats['http-stream']?.action, 'close');
  t.is(item.formats['ws-message']?.action, 'refresh');
  t.is(parsePublishItem({ channel: 'c', formats: { 'ws-message': { type: 'ping' } } }).formats['ws-message']?.type, 'ping');
});

test('refuses an http-response whose reason or header Node could not write (a control char), naming the field (D1, D9)', (t) => {
  // Delivered, these threw in writeHead and the item was lost for every subscriber.
  const hr = (f: Record<string, unknown>) => () => parsePublishItem({ channel: 'c', formats: { 'http-response': { body: 'x', ...f } } }, 'items[0]');
  const allowed = '(allowed: tab and any char but control chars)';
  const header = "items[0]: headers contains 'X-A' with invalid value (its value";
  t.is(invalidMessage(hr({ headers: [['X-A', 'a\u0001']] })), `${header} contains U+0001 at index 1 ${allowed})`);
  t.is(invalidMessage(hr({ headers: { 'X-A': 'a\nb' } })), `${header} contains U+000A at index 1 ${allowed})`);
  t.is(invalidMessage(hr({ headers: { 'X-A': '5 €\u007f' } })), `${header} contains U+007F at index 3 ${allowed})`);
  t.is(invalidMessage(hr({ reason: 'O\u0001K' })), `items[0]: 'http-response' contains 'reason' with invalid value (contains U+0001 at index 1 ${allowed})`);
  t.is(invalidMessage(hr({ reason: 'Fine €\r\n' })), `items[0]: 'http-response' contains 'reason' with invalid value (contains U+000D at index 6 ${allowed})`);
});

test('an http-response header value or reason beyond ASCII is sent as its UTF-8 bytes, as Pushpin 1.36 sends it (D9)', (t) => {
  // Observed with Pushpin 1.36: "X-Price": "5 €" reaches a long-poll client as 35 20 e2 82 ac,
  // "café" as 63 61 66 c3 a9, reason "Prix 5 €" likewise. Node writes a latin1 string byte for
  // byte, so the item keeps the UTF-8 bytes as latin1 chars.
  const wire = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
  const ok = parsePublishItem({ channel: 'c', formats: { 'http-response': { body: 'x', reason: 'Prix 5 €', headers: { 'X-Price': '5 €', 'X-A': 'a\tcafé', 'X-Emoji': '😀' } } } });
  const hr = ok.formats['http-response'];
  t.is(hr?.reason, wire('Prix 5 €'));
  t.deepEqual(hr?.headers, [['X-Price', '5 \xe2\x82\xac'], ['X-A', 'a\tcaf\xc3\xa9'], ['X-Emoji', wire('😀')]]);
  // On the bus the item is JSON text again, and parses back to the same bytes (not encoded twice).
  const encoded = JSON.parse(JSON.stringify(encodePublishItem(ok))) as { formats: { 'http-response': { reason: string; headers: unknown } } };
  t.is(encoded.formats['http-response'].reason, 'Prix 5 €');
  t.deepEqual(encoded.formats['http-response'].headers, [['X-Price', '5 €'], ['X-A', 'a\tcafé'], ['X-Emoji', '😀']]);
  t.deepEqual(parsePublishItem(encoded), ok);
  t.notThrows(() => parsePublishRequest({ items: [{ channel: 'a', formats: { 'http-response': { body: 'x', headers: { 'X-Price': '5 €' } } } }] }));
});

test('a publish request with an unwritable header is refused whole, as a 400 (D9)', (t) => {
  const err = t.throws(() => parsePublishRequest({ items: [
    { channel: 'a', formats: { 'http-stream': { content: 'x' } } },
    { channel: 'a', formats: { 'http-response': { body: 'x', headers: { 'X-Price': '5 €\u0000' } } } }] }));
  t.like(err, { code: 'KG_ERR_PUBLISH_INVALID', status: 400 });
  t.regex(err?.message ?? '', /^Invalid format: items\[1\]: headers contains 'X-Price' with invalid value \(its value contains U\+0000/);
});

test('accepts a body-patch of RFC 6902 operations and keeps only their defined members', (t) => {
  const item = parsePublishItem({ channel: 'c', formats: { 'http-response': { 'body-patch': [
    { op: 'add', path: '/a/-', value: { x: [1] } }, { op: 'remove', path: '' }, { op: 'replace', path: '/~0~1', value: null },
    { op: 'move', from: '/a', path: '/b' }, { op: 'copy', from: '', path: '/c', value: 'ignored' }, { op: 'test', path: '/d', value: false, note: 'x' },
  ] } } });
  t.deepEqual(item.formats['http-response']?.bodyPatch, [
    { op: 'add', path: '/a/-', value: { x: [1] } }, { op: 'remove', path: '' }, { op: 'replace', path: '/~0~1', value: null },
    { op: 'move', from: '/a', path: '/b' }, { op: 'copy', from: '', path: '/c' }, { op: 'test', path: '/d', value: false },
  ]);
  t.deepEqual(parsePublishItem({ channel: 'c', formats: { 'http-response': { 'body-patch': [] } } }).formats['http-response']?.bodyPatch, []);
});

test('refuses a body-patch that is not valid RFC 6902 on its face, naming the operation (D4)', (t) => {
  const patch = (p: unknown) => () => parsePublishItem({ channel: 'c', formats: { 'http-response': { 'body-patch': p } } });
  const at = "item: 'http-response' contains 'body-patch' with invalid value";
  t.is(invalidMessage(patch({ op: 'add' })), "item: 'http-response' contains 'body-patch' with wrong type");
  t.is(invalidMessage(patch([1])), `${at} (body-patch[0] must be an operation object, got 1)`);
  t.is(invalidMessage(patch([{ op: 'explode', path: '/a' }])), `${at} (body-patch[0].op must be one of add, remove, replace, move, copy, test, got "explode")`);
  t.is(invalidMessage(patch([{ op: '_get', path: '/a' }])), `${at} (body-patch[0].op must be one of add, remove, replace, move, copy, test, got "_get")`);
  t.is(invalidMessage(patch([{ op: 'constructor', path: '/a' }])), `${at} (body-patch[0].op must be one of add, remove, replace, move, copy, test, got "constructor")`);
  t.is(invalidMessage(patch([{ op: 'remove' }])), `${at} (body-patch[0].path must be a JSON Pointer ("" or starting with "/"), got nothing)`);
  t.is(invalidMessage(patch([{ op: 'remove', path: 'a' }])), `${at} (body-patch[0].path must be a JSON Pointer ("" or starting with "/"), got "a")`);
  t.is(invalidMessage(patch([{ op: 'remove', path: '/a~2' }])), `${at} (body-patch[0].path must be a JSON Pointer ("" or starting with "/"), got "/a~2")`);
  t.is(invalidMessage(patch([{ op: 'add', path: '/a' }])), `${at} (body-patch[0].value is required for add)`);
  t.is(invalidMessage(patch([{ op: 'remove', path: '/a' }, { op: 'copy', path: '/a' }])), `${at} (body-patch[1].from must be a JSON Pointer ("" or starting with "/"), got nothing)`);
  t.is(invalidMessage(patch([{ op: 'move', from: '', path: '/-' }])), `${at} (body-patch[0] moves "" into itself ("/-"): RFC 6902 forbids it)`);
  t.is(invalidMessage(patch([{ op: 'move', from: '/a', path: '/a/b' }])), `${at} (body-patch[0] moves "/a" into itself ("/a/b"): RFC 6902 forbids it)`);
  t.notThrows(patch([{ op: 'move', from: '/a', path: '/ab' }]), 'a sibling whose name starts the same is no child');
});

test('encode then parse round-trips a body-patch', (t) => {
  const original = parsePublishItem({ channel: 'c', formats: { 'http-response': {
    'body-patch': [{ op: 'add', path: '/a', value: [1, { b: 'ü' }] }, { op: 'move', from: '/a', path: '/z' }] } } });
  t.deepEqual(parsePublishItem(JSON.parse(JSON.stringify(encodePublishItem(original)))), original);
});

test('refuses an http-response with a 1xx code, which a client would take as informational and wait on (D16)', (t) => {
  for (const code of [100, 103, '101']) {
    t.is(invalidMessage(() => parsePublishItem({ channel: 'c', formats: { 'http-response': { body: 'x', code } } })),
      `item: 'http-response' contains 'code' with invalid value (must be 200-999, got ${String(code)})`);
  }
  t.is(parsePublishItem({ channel: 'c', formats: { 'http-response': { body: 'x', code: 200 } } }).formats['http-response']?.code, 200);
});

test('refuses JSON nested beyond 1024 levels with a 400 naming the problem, not a stack overflow (D18)', (t) => {
  // 20,000 levels made the bus answer 503 "Maximum call stack size exceeded".
  const deep = JSON.parse(`${'['.repeat(20_000)}${']'.repeat(20_000)}`) as unknown;
  const item = { channel: 'c', formats: { 'http-response': { 'body-patch': [{ op: 'add', path: '/a', value: deep }] } } };
  const err = t.throws(() => parsePublishRequest({ items: [item] }));
  t.like(err, { code: 'KG_ERR_PUBLISH_INVALID', status: 400, message: 'Invalid format: JSON is nested more than 1024 levels deep' });
  // The NATS path calls parsePublishItem directly.
  t.is(invalidMessage(() => parsePublishItem(item, 'payload', { channel: 'c' })), 'payload: JSON is nested more than 1024 levels deep');
  t.is(invalidMessage(() => parsePublishItem({ channel: 'c', formats: { 'http-response': { 'body-patch': [deep] } } })), 'item: JSON is nested more than 1024 levels deep');
  // A request document may nest 1024 levels, as in Pushpin [observed 1.36: 1024 published, 1025 refused].
  const request = (d: number): unknown => JSON.parse(`{"items":[{"channel":"c","formats":{"http-response":{"body-patch":[{"op":"add","path":"/a","value":${'['.repeat(d)}${']'.repeat(d)}}]}}}]}`);
  t.is(parsePublishRequest(request(1024 - 7)).length, 1);
  t.is(invalidMessage(() => parsePublishRequest(request(1025 - 7))), 'Invalid format: JSON is nested more than 1024 levels deep');
  // Just inside the bound the item is accepted and can be encoded for the bus.
  const ok = JSON.parse(`${'['.repeat(1015)}${']'.repeat(1015)}`) as unknown;
  const parsed = parsePublishItem({ channel: 'c', formats: { 'http-response': { 'body-patch': [{ op: 'add', path: '/a', value: ok }] } } });
  t.notThrows(() => JSON.stringify(encodePublishItem(parsed)));
});

test('error messages quote at most a short prefix of a bad value', (t) => {
  const message = invalidMessage(() => parsePublishItem({ channel: 'c', formats: { 'http-stream': { content: 'x', action: 'x'.repeat(100_000) } } }));
  t.true(message.length < 300, message);
});

test('a whole request is all-or-nothing and uses Pushpin texts', (t) => {
  t.is(invalidMessage(() => parsePublishRequest([])), 'Invalid format.');
  t.is(invalidMessage(() => parsePublishRequest({})), `Invalid format: object does not contain 'items'`);
  t.is(invalidMessage(() => parsePublishRequest({ items: {} })), `Invalid format: object contains 'items' with wrong type`);
  t.regex(invalidMessage(() => parsePublishRequest({ items: [
    { channel: 'a', formats: { 'http-stream': { content: 'x' } } }, { formats: {} }] })), /^Invalid format: items\[1\]: /);
  t.deepEqual(parsePublishRequest({ items: [] }), []);
});

test('encode then parse round-trips text and binary content', (t) => {
  const original = parsePublishItem({ channel: 'c', id: '1', 'no-seq': true, formats: {
    'http-stream': { 'content-bin': Buffer.from([0xff, 0x00, 0x41]).toString('base64') },
    'http-response': { body: 'héllo', reason: 'Fine' },
    'ws-message': { content: 'hi' } } });
  const again = parsePublishItem(JSON.parse(JSON.stringify(encodePublishItem(original))));
  t.deepEqual(again, original);
});

test('a channel given from outside (a subject) must agree with the item', (t) => {
  t.is(parsePublishItem({ formats: { 'http-stream': { content: 'x' } } }, 'item', { channel: 'sub' }).channel, 'sub');
  t.regex(invalidMessage(() => parsePublishItem({ channel: 'other', formats: { 'http-stream': { content: 'x' } } }, 'item', { channel: 'sub' })), /is not the subject's channel/);
});
