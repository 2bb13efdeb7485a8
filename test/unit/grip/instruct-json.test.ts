import test from 'ava';
import { instructError, parse, parseJson } from '../../helpers/instruct.js';

// JSON instruct bodies (spec 3.3), Content-Type application/grip-instruct.

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('parses the full JSON instruct shape of the spec', (t) => {
  const i = parseJson({
    hold: {
      mode: 'stream',
      channels: [{ name: 'c1', 'prev-id': '7', filters: ['skip-self'] }],
      timeout: 55,
      'keep-alive': { content: 'text', timeout: 20 },
      meta: { user: 'alice' },
    },
    response: { code: 200, reason: 'OK', headers: { 'Content-Type': 'text/plain' }, body: 'text' },
  });
  t.deepEqual(i, {
    code: 200,
    reason: 'OK',
    headers: [['Content-Type', 'text/plain']],
    body: Buffer.from('text'),
    meta: { user: 'alice' },
    hold: {
      mode: 'stream',
      channels: [{ name: 'c1', prevId: '7', filters: ['skip-self'] }],
      timeoutSec: 55,
      keepAlive: { content: Buffer.from('text'), mode: 'interval', timeoutSec: 20 },
    },
  });
});

test('the client response comes only from "response"; origin headers and body are discarded [observed 1.36]', (t) => {
  const i = parseJson(
    { hold: { channels: [{ name: 'c' }] }, response: { code: 201, headers: { 'X-I': '1' }, body: 'json body' } },
    [['Server', 'origin'], ['Date', 'today']],
  );
  t.is(i.code, 201);
  t.is(i.reason, 'Created');
  t.deepEqual(i.headers, [['X-I', '1']]);
  t.is(i.body?.toString(), 'json body');
});

test('a missing "response" gives an empty 200 with no headers', (t) => {
  const i = parseJson({ hold: { channels: [{ name: 'c' }] } }, [['X-Origin', '1']]);
  t.like(i, { code: 200, reason: 'OK', headers: [] });
  t.deepEqual(i.body, Buffer.alloc(0));
});

test('an empty JSON object is a valid instruct without a hold', (t) => {
  const i = parseJson({});
  t.is(i.hold, undefined);
  t.like(i, { code: 200, reason: 'OK' });
});

test('hold.mode defaults to response, and the timeout to 55 s with the 5 s minimum', (t) => {
  t.like(parseJson({ hold: { channels: [] } }).hold, { mode: 'response', timeoutSec: 55 });
  t.is(parseJson({ hold: { channels: [], timeout: 2 } }).hold?.timeoutSec, 5);
  t.is(parseJson({ hold: { channels: [], timeout: 0 } }).hold?.timeoutSec, 5);
  t.is(parseJson({ hold: { channels: [], timeout: 90 } }).hold?.timeoutSec, 90);
});

test('treats null optional fields as absent', (t) => {
  const i = parseJson({
    hold: { mode: null, channels: [{ name: 'c', 'prev-id': null, filters: null }], timeout: null, 'keep-alive': null, meta: null },
    response: null,
  });
  t.like(i.hold, { mode: 'response', timeoutSec: 55, channels: [{ name: 'c', filters: [] }] });
});

test('rejects a JSON instruct unless the origin status is 200', (t) => {
  t.is(instructError(() => parseJson({}, [], { code: 201 })), 'application/grip-instruct responses must have status 200, got 201');
});

test('rejects a JSON instruct without a body, with a body that is not JSON, or not an object', (t) => {
  t.is(instructError(() => parse([['Content-Type', 'application/grip-instruct']])), 'application/grip-instruct response has no body to parse');
  t.regex(instructError(() => parseJson(undefined, [], { body: '{"hold":' })), /^JSON instruct body is not valid JSON: /);
  t.regex(instructError(() => parseJson(undefined, [], { body: '' })), /^JSON instruct body is not valid JSON: /);
  t.is(instructError(() => parseJson([1])), 'JSON instruct body must be a JSON object, got "array"');
  t.is(instructError(() => parseJson('hold')), 'JSON instruct body must be a JSON object, got "string"');
});

test('rejects hold and response values that are not objects', (t) => {
  t.is(instructError(() => parseJson({ hold: 'stream' })), 'JSON instruct hold must be an object, got "stream"');
  t.is(instructError(() => parseJson({ response: [] })), 'JSON instruct response must be an object, got []');
});

test('rejects an unknown hold.mode', (t) => {
  t.is(instructError(() => parseJson({ hold: { mode: 'forever', channels: [] } })), 'JSON instruct hold.mode must be "response" or "stream", got "forever"');
  t.is(instructError(() => parseJson({ hold: { mode: 1, channels: [] } })), 'JSON instruct hold.mode must be a string, got 1');
});

test('requires hold.channels as a list of objects with a non-empty name', (t) => {
  t.is(instructError(() => parseJson({ hold: {} })), 'JSON instruct hold.channels is required and must be a list, got nothing');
  t.is(instructError(() => parseJson({ hold: { channels: 'c' } })), 'JSON instruct hold.channels is required and must be a list, got "c"');
  t.is(instructError(() => parseJson({ hold: { channels: ['c'] } })), 'JSON instruct hold.channels[0] must be an object with a name, got "c"');
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 'a' }, {}] } })), 'JSON instruct hold.channels[1].name must be a non-empty string, got nothing');
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: '' }] } })), 'JSON instruct hold.channels[0].name must be a non-empty string, got ""');
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 5 }] } })), 'JSON instruct hold.channels[0].name must be a string, got 5');
});

test('validates channel prev-id and filters, at most 5 filters', (t) => {
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 'c', 'prev-id': 7 }] } })), 'JSON instruct hold.channels[0].prev-id must be a string, got 7');
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 'c', 'prev-id': '' }] } })), 'JSON instruct hold.channels[0].prev-id must not be empty');
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 'c', filters: 'skip-self' }] } })), 'JSON instruct hold.channels[0].filters must be a list of non-empty strings, got "skip-self"');
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 'c', filters: [1] }] } })), 'JSON instruct hold.channels[0].filters must be a list of non-empty strings, got [1]');
  const five = ['a', 'b', 'c', 'd', 'e'];
  t.is(parseJson({ hold: { channels: [{ name: 'c', filters: five }] } }).hold?.channels[0]?.filters.length, 5);
  t.is(instructError(() => parseJson({ hold: { channels: [{ name: 'c', filters: [...five, 'f'] }] } })),
    'JSON instruct gives channel "c" 6 filters, at most 5 are allowed');
});

test('does not cap the JSON channel count', (t) => {
  const list = Array.from({ length: 30 }, (_, n) => ({ name: `c${n}` }));
  t.is(parseJson({ hold: { channels: list } }).hold?.channels.length, 30);
});

test('rejects a hold.timeout that is not a non-negative integer', (t) => {
  for (const v of [-1, 1.5, '30', true]) {
    t.is(instructError(() => parseJson({ hold: { channels: [], timeout: v } })), `JSON instruct hold.timeout must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
});

test('keep-alive: content-bin wins over content, timeout defaults to 55 and is at least 1, mode is interval', (t) => {
  const ka = (k: unknown) => parseJson({ hold: { mode: 'stream', channels: [], 'keep-alive': k } }).hold?.keepAlive;
  t.deepEqual(ka({ content: 'text', 'content-bin': b64('bin') }), { content: Buffer.from('bin'), mode: 'interval', timeoutSec: 55 });
  t.deepEqual(ka({ content: ':\n\n', timeout: 0 }), { content: Buffer.from(':\n\n'), mode: 'interval', timeoutSec: 1 });
});

test('keep-alive is kept only for a stream hold', (t) => {
  t.is(parseJson({ hold: { channels: [], 'keep-alive': { content: 'x' } } }).hold?.keepAlive, undefined);
});

test('rejects a keep-alive without content, with empty content, bad base64, or a bad timeout', (t) => {
  const ka = (k: unknown) => () => parseJson({ hold: { mode: 'stream', channels: [], 'keep-alive': k } });
  t.is(instructError(ka({ timeout: 5 })), `JSON instruct hold.keep-alive must give 'content' or 'content-bin'`);
  t.is(instructError(ka({ content: '' })), 'JSON instruct hold.keep-alive content must not be empty');
  t.is(instructError(ka({ 'content-bin': 'not base64!' })), 'JSON instruct hold.keep-alive.content-bin must be base64, got "not base64!"');
  t.is(instructError(ka({ content: 5 })), 'JSON instruct hold.keep-alive.content must be a string, got 5');
  t.is(instructError(ka({ content: 'x', timeout: 'soon' })), 'JSON instruct hold.keep-alive.timeout must be a non-negative integer, got "soon"');
  t.is(instructError(ka('x')), 'JSON instruct hold.keep-alive must be an object, got "x"');
});

test('hold.meta takes string values only', (t) => {
  t.deepEqual(parseJson({ hold: { channels: [], meta: { user: 'alice', id_format: '%(c)s' } } }).meta, { user: 'alice', id_format: '%(c)s' });
  t.is(instructError(() => parseJson({ hold: { channels: [], meta: { n: 1 } } })), 'JSON instruct hold.meta.n must be a string, got 1');
  t.is(instructError(() => parseJson({ hold: { channels: [], meta: ['a'] } })), 'JSON instruct hold.meta must be an object, got ["a"]');
});

test('response.code without reason takes the standard phrase; an empty reason counts as none', (t) => {
  t.like(parseJson({ response: { code: 404 } }), { code: 404, reason: 'Not Found' });
  t.like(parseJson({ response: { code: 299 } }), { code: 299, reason: 'Undefined Reason' });
  t.like(parseJson({ response: { code: 202, reason: '' } }), { code: 202, reason: 'Accepted' });
  t.like(parseJson({ response: { reason: 'Fine' } }), { code: 200, reason: 'Fine' });
});

test('rejects a response.code outside 0-999 and a reason with line breaks', (t) => {
  for (const v of [1000, -1, 20.5, '200']) {
    t.is(instructError(() => parseJson({ response: { code: v } })), `JSON instruct response.code must be an integer 0-999, got ${JSON.stringify(v)}`);
  }
  t.is(instructError(() => parseJson({ response: { reason: 'A\r\nX-Evil: 1' } })), 'JSON instruct response.reason contains U+000D at index 1 (allowed: tab and any char but control chars)');
});

test('rejects a response.reason or header value with a control char Node cannot write (D1)', (t) => {
  // Each of these crashed the process in writeHead (ERR_INVALID_CHAR) before.
  t.is(instructError(() => parseJson({ response: { reason: 'O\u0001K' } })), 'JSON instruct response.reason contains U+0001 at index 1 (allowed: tab and any char but control chars)');
  t.is(instructError(() => parseJson({ response: { reason: 'OK\u007f' } })), 'JSON instruct response.reason contains U+007F at index 2 (allowed: tab and any char but control chars)');
  t.is(instructError(() => parseJson({ response: { headers: { 'X-A': 'a\u0001b' } } })), 'JSON instruct response.headers.X-A header X-A value contains U+0001 at index 1 (allowed: tab and any char but control chars)');
  t.is(instructError(() => parseJson({ response: { headers: [['X-A', '\u007f']] } })), 'JSON instruct response.headers[0] header X-A value contains U+007F at index 0 (allowed: tab and any char but control chars)');
});

test('a reason or header value beyond latin1 is written as its UTF-8 bytes, which Node accepts', (t) => {
  const i = parseJson({ response: { reason: 'Prix 5 €', headers: { 'X-Price': '5 €', 'X-Tab': 'a\tb' } } });
  t.is(i.reason, Buffer.from('Prix 5 €').toString('latin1'));
  t.deepEqual(i.headers, [['X-Price', Buffer.from('5 €').toString('latin1')], ['X-Tab', 'a\tb']]);
});

test('JSON hold and keep-alive timeouts are capped at 24 h (D7)', (t) => {
  const i = parseJson({ hold: { mode: 'stream', channels: [], timeout: 3_000_000, 'keep-alive': { content: 'x', timeout: 2_147_483_647 } } });
  t.is(i.hold?.timeoutSec, 86400);
  t.is(i.hold?.keepAlive?.timeoutSec, 86400);
});

test('refuses a response.code below 200: a 1xx final response leaves the client hanging (D16)', (t) => {
  for (const code of [103, 100, 199, 99, 0]) {
    t.is(instructError(() => parseJson({ response: { code } })), `JSON instruct response.code ${code} cannot be the final response to the client (1xx are informational, below 100 is not HTTP; must be 200-999)`);
  }
});

test('a JSON instruct nested beyond 1024 levels is invalid, not a stack overflow reported as "origin unreachable" (D18)', (t) => {
  const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
  t.is(instructError(() => parseJson(undefined, [], { body: `{"hold":{"channels":[${deep}]}}` })), 'JSON instruct body is nested more than 1024 levels deep');
  t.is(instructError(() => parseJson(undefined, [], { body: `{"response":{"reason":${deep}}}` })), 'JSON instruct body is nested more than 1024 levels deep');
});

test('error messages quote at most a short prefix of a bad value', (t) => {
  const message = instructError(() => parseJson({ hold: { channels: ['x'.repeat(100_000)] } }));
  t.true(message.length < 300, message);
});

test('response.headers may be a list of pairs, repeats kept', (t) => {
  t.deepEqual(parseJson({ response: { headers: [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']] } }).headers,
    [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
});

test('response headers lose Grip-* and framing headers, and text values become UTF-8 wire strings', (t) => {
  const i = parseJson({ response: { headers: { 'Grip-Hold': 'stream', 'Content-Length': '99', 'X-Name': 'zoë' } } });
  t.deepEqual(i.headers, [['X-Name', Buffer.from('zoë', 'utf8').toString('latin1')]]);
});

test('rejects malformed response headers', (t) => {
  t.is(instructError(() => parseJson({ response: { headers: 'X: 1' } })), 'JSON instruct response.headers must be an object or a list of [name, value] pairs, got "X: 1"');
  t.is(instructError(() => parseJson({ response: { headers: [['X']] } })), 'JSON instruct response.headers[0] must be a [name, value] pair, got ["X"]');
  t.is(instructError(() => parseJson({ response: { headers: [['Bad Name', 'v']] } })), 'JSON instruct response.headers[0] header name must be an HTTP token, got "Bad Name"');
  t.is(instructError(() => parseJson({ response: { headers: { X: 1 } } })), 'JSON instruct response.headers.X header X must have a string value, got 1');
  t.is(instructError(() => parseJson({ response: { headers: { X: 'a\nb' } } })), 'JSON instruct response.headers.X header X value contains U+000A at index 1 (allowed: tab and any char but control chars)');
});

test('response body-bin wins over body; bad body values are refused', (t) => {
  t.is(parseJson({ response: { body: 'text', 'body-bin': b64('bin') } }).body?.toString(), 'bin');
  t.is(parseJson({ response: { body: 'ünï' } }).body?.toString('utf8'), 'ünï');
  t.is(instructError(() => parseJson({ response: { 'body-bin': 'a' } })), 'JSON instruct response.body-bin must be base64, got "a"');
  t.is(instructError(() => parseJson({ response: { body: { a: 1 } } })), 'JSON instruct response.body must be a string, got {"a":1}');
});

// ---- Headers first, then JSON overrides / adds -----------------------------------------------

test('JSON hold overrides Grip-Hold and Grip-Timeout and adds to Grip-Channel', (t) => {
  const i = parseJson({ hold: { mode: 'response', channels: [{ name: 'json' }], timeout: 20 } },
    [['Grip-Hold', 'stream'], ['Grip-Channel', 'header'], ['Grip-Timeout', '40']]);
  t.is(i.hold?.mode, 'response');
  t.is(i.hold?.timeoutSec, 20);
  t.deepEqual(i.hold?.channels.map((c) => c.name), ['header', 'json']);
});

test('without a JSON hold the header hold stands', (t) => {
  const i = parseJson({ response: { body: 'x' } }, [['Grip-Hold', 'stream'], ['Grip-Channel', 'c'], ['Grip-Keep-Alive', 'k']]);
  t.like(i.hold, { mode: 'stream', channels: [{ name: 'c', filters: [] }], keepAlive: { mode: 'idle', timeoutSec: 55 } });
});

test('JSON keep-alive replaces Grip-Keep-Alive', (t) => {
  const i = parseJson({ hold: { mode: 'stream', channels: [], 'keep-alive': { content: 'j' } } }, [['Grip-Keep-Alive', 'h; mode=idle']]);
  t.deepEqual(i.hold?.keepAlive, { content: Buffer.from('j'), mode: 'interval', timeoutSec: 55 });
});

test('JSON meta adds to Grip-Set-Meta and wins on the same key', (t) => {
  const i = parseJson({ hold: { channels: [], meta: { user: 'json', b: '2' } } }, [['Grip-Set-Meta', 'user=header, a=1']]);
  t.deepEqual(i.meta, { user: 'json', a: '1', b: '2' });
});

test('Grip-Status holds unless the JSON response gives a code or reason', (t) => {
  t.like(parseJson({}, [['Grip-Status', '202 Queued']]), { code: 202, reason: 'Queued' });
  t.like(parseJson({ response: { code: 201 } }, [['Grip-Status', '202 Queued']]), { code: 201, reason: 'Created' });
  t.like(parseJson({ response: { reason: 'Fine' } }, [['Grip-Status', '202 Queued']]), { code: 202, reason: 'Fine' });
});

test('Grip-Link headers still apply to a JSON instruct', (t) => {
  const i = parseJson({ hold: { mode: 'stream', channels: [{ name: 'c' }] } }, [['Grip-Link', '</next>; rel=next; timeout=10']]);
  t.deepEqual(i.nextLink, { url: 'http://origin.test/next', timeoutSec: 10 });
});

test('header errors are reported before the JSON body is read', (t) => {
  t.is(instructError(() => parseJson(undefined, [['Grip-Timeout', 'abc']], { body: 'not json' })), 'Grip-Timeout must be a non-negative integer, got "abc"');
});
