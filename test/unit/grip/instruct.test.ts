import test from 'ava';
import { isGripResponse, needsBufferedBody } from '../../../sidecar/src/grip/instruct.js';
import { instructError, parse } from '../../helpers/instruct.js';

// Header instructions (spec 3.1, 3.2, 3.4, 3.6 headers). JSON instructs: instruct-json.test.ts.

const hold = (mode: string, ...more: Array<[string, string]>): Array<[string, string]> => [['Grip-Hold', mode], ...more];
const channels = (...values: string[]) => parse(hold('response', ...values.map((v): [string, string] => ['Grip-Channel', v]))).hold?.channels;

// ---- 3.1 detection and header stripping --------------------------------------------------------

test('any Grip-* header makes a response GRIP, whatever its case', (t) => {
  t.true(isGripResponse([['Grip-Hold', 'response']]));
  t.true(isGripResponse([['grip-foo', 'bar']]));
  t.true(isGripResponse([['GRIP-STATUS', '404']]));
});

test('application/grip-instruct makes a response GRIP, parameters and case ignored', (t) => {
  t.true(isGripResponse([['Content-Type', 'application/grip-instruct']]));
  t.true(isGripResponse([['content-type', 'Application/Grip-Instruct; charset=utf-8']]));
  t.true(needsBufferedBody([['Content-Type', 'application/grip-instruct ; charset=utf-8']]));
});

test('a response without Grip-* headers or the instruct type is not GRIP', (t) => {
  t.false(isGripResponse([['Content-Type', 'application/json'], ['X-Grip-Hold', 'response'], ['Gripper', 'x']]));
  t.false(isGripResponse([]));
  t.false(needsBufferedBody([['Grip-Hold', 'stream'], ['Content-Type', 'text/plain']]));
  t.false(needsBufferedBody([]));
});

test('a Grip-Status-only response is relayed with the new status and no Grip headers [observed 1.36]', (t) => {
  const i = parse([['Grip-Status', '404 Nope'], ['Grip-Foo', 'bar'], ['Content-Type', 'text/plain']], { body: 'b' });
  t.is(i.hold, undefined);
  t.is(i.code, 404);
  t.is(i.reason, 'Nope');
  t.deepEqual(i.headers, [['Content-Type', 'text/plain']]);
  t.is(i.body?.toString(), 'b');
});

test('removes every Grip-* header and the framing headers from the client headers, keeping order and repeats', (t) => {
  const i = parse([
    ['Grip-Hold', 'response'], ['Grip-Channel', 'c'], ['grip-custom', 'x'], ['Set-Cookie', 'a=1'],
    ['Connection', 'keep-alive'], ['Keep-Alive', 'timeout=5'], ['Content-Encoding', 'gzip'],
    ['Transfer-Encoding', 'chunked'], ['content-length', '12'], ['Set-Cookie', 'b=2'], ['X-Custom', 'foo'],
  ]);
  t.deepEqual(i.headers, [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['X-Custom', 'foo']]);
});

test('passes the origin body through, and leaves it undefined when none was given', (t) => {
  t.is(parse(hold('response'), { body: 'timeout body' }).body?.toString(), 'timeout body');
  t.is(parse(hold('stream')).body, undefined);
});

test('keeps the origin status and reason, and fills an empty reason with the standard phrase', (t) => {
  const i = parse(hold('response'), { code: 201, reason: 'Made' });
  t.is(i.code, 201);
  t.is(i.reason, 'Made');
  t.is(parse(hold('response'), { code: 404, reason: '' }).reason, 'Not Found');
});

test('no instruction at all gives no hold, no links and empty meta', (t) => {
  const i = parse([['Grip-Foo', 'x']]);
  t.is(i.hold, undefined);
  t.is(i.nextLink, undefined);
  t.is(i.goneLink, undefined);
  t.deepEqual(i.meta, {});
});

// ---- Grip-Hold -------------------------------------------------------------------------------

test('Grip-Hold response and stream select the hold mode', (t) => {
  t.is(parse(hold('response')).hold?.mode, 'response');
  t.is(parse(hold('stream')).hold?.mode, 'stream');
  t.is(parse(hold(' stream ')).hold?.mode, 'stream');
});

test('rejects any other Grip-Hold value, compared case-sensitively as Pushpin does', (t) => {
  t.is(instructError(() => parse(hold('forever'))), 'Grip-Hold must be "response" or "stream", got "forever"');
  t.regex(instructError(() => parse(hold('Response'))), /got "Response"/);
  t.regex(instructError(() => parse(hold(''))), /got ""/);
});

test('a repeated Grip-Hold with the same value is fine, with different values it is refused', (t) => {
  t.is(parse([['Grip-Hold', 'stream'], ['grip-hold', 'stream']]).hold?.mode, 'stream');
  t.is(instructError(() => parse([['Grip-Hold', 'stream'], ['Grip-Hold', 'response']])),
    'Grip-Hold must appear once, got 2 different values: "stream", "response"');
});

// ---- Grip-Channel ----------------------------------------------------------------------------

test('two Grip-Channel headers with lists yield three channels (spec parsing example)', (t) => {
  t.deepEqual(channels('apple; prev-id=item1; filter=f1', 'banana; filter=f2, cherry'), [
    { name: 'apple', prevId: 'item1', filters: ['f1'] },
    { name: 'banana', filters: ['f2'] },
    { name: 'cherry', filters: [] },
  ]);
});

test('filter may repeat, in order, and parameter names are case-insensitive', (t) => {
  t.deepEqual(channels('apple; filter=f1; Filter=f2; PREV-ID=9'), [{ name: 'apple', prevId: '9', filters: ['f1', 'f2'] }]);
});

test('parameter values may be quoted, and unknown parameters are ignored', (t) => {
  t.deepEqual(channels('c; prev-id="a,b;c"; color=blue'), [{ name: 'c', prevId: 'a,b;c', filters: [] }]);
});

test('allows five filters on a channel and refuses six', (t) => {
  const five = Array.from({ length: 5 }, (_, n) => `filter=f${n}`).join('; ');
  t.is(channels(`c; ${five}`)?.[0]?.filters.length, 5);
  t.is(instructError(() => channels(`c; ${five}; filter=f5`)),
    'Grip-Channel gives channel "c" 6 filters, at most 5 are allowed');
});

test('refuses an empty Grip-Channel element', (t) => {
  const message = 'Grip-Channel must not contain an empty element (a channel name was expected)';
  t.is(instructError(() => channels('a,,b')), message);
  t.is(instructError(() => channels('a, ')), message);
  t.is(instructError(() => channels('')), message);
  t.is(instructError(() => channels('; prev-id=1')), message);
});

test('refuses an empty prev-id, a prev-id given twice and an empty filter', (t) => {
  t.is(instructError(() => channels('c; prev-id=')), 'Grip-Channel "c" prev-id must be a non-empty value');
  t.is(instructError(() => channels('c; prev-id')), 'Grip-Channel "c" prev-id must be a non-empty value');
  t.is(instructError(() => channels('c; prev-id=1; prev-id=2')), `Grip-Channel "c" gives 'prev-id' 2 times, expected at most once`);
  t.is(instructError(() => channels('c; filter=')), 'Grip-Channel "c" filter must be a non-empty filter name');
});

test('reports Grip-Channel syntax errors with the header name', (t) => {
  t.is(instructError(() => channels('c; prev-id="open')), 'Grip-Channel has an unterminated quoted string');
});

test('does not cap the channel count: the configured limit is the caller\'s', (t) => {
  const names = Array.from({ length: 25 }, (_, n) => `ch${n}`);
  t.deepEqual(channels(names.join(', '))?.map((c) => c.name), names);
});

test('decodes UTF-8 channel names, ids and filters sent as header bytes', (t) => {
  const wire = Buffer.from('café; prev-id=ünï', 'utf8').toString('latin1');
  t.deepEqual(channels(wire), [{ name: 'café', prevId: 'ünï', filters: [] }]);
});

test('channels without Grip-Hold subscribe nothing (no hold)', (t) => {
  t.is(parse([['Grip-Channel', 'c'], ['Grip-Status', '200']]).hold, undefined);
});

test('a hold may have no channels', (t) => {
  t.deepEqual(parse(hold('response')).hold?.channels, []);
});

// ---- Grip-Timeout ----------------------------------------------------------------------------

test('Grip-Timeout defaults to 55 s and keeps values of 5 s or more', (t) => {
  t.is(parse(hold('response')).hold?.timeoutSec, 55);
  t.is(parse(hold('response', ['Grip-Timeout', '30'])).hold?.timeoutSec, 30);
  t.is(parse(hold('response', ['Grip-Timeout', '5'])).hold?.timeoutSec, 5);
  t.is(parse(hold('response', ['Grip-Timeout', '3600'])).hold?.timeoutSec, 3600);
});

test('raises Grip-Timeout values below 5, 0 included, to 5 [observed 1.36]', (t) => {
  for (const v of ['0', '1', '2', '4']) t.is(parse(hold('response', ['Grip-Timeout', v])).hold?.timeoutSec, 5, v);
});

test('instruct timeouts are capped at 24 h, so none can overflow Node\'s timer (D7)', (t) => {
  for (const v of ['86401', '2147484', '2147483647']) {
    t.is(parse(hold('response', ['Grip-Timeout', v])).hold?.timeoutSec, 86400, v);
    t.is(parse(hold('stream', ['Grip-Keep-Alive', `x; timeout=${v}`])).hold?.keepAlive?.timeoutSec, 86400, v);
    t.is(parse(hold('stream', ['Grip-Link', `</n>; rel=next; timeout=${v}`])).nextLink?.timeoutSec, 86400, v);
  }
  t.is(parse(hold('response', ['Grip-Timeout', '86400'])).hold?.timeoutSec, 86400);
});

test('rejects a Grip-Timeout that is not a non-negative integer', (t) => {
  t.is(instructError(() => parse(hold('response', ['Grip-Timeout', 'abc']))), 'Grip-Timeout must be a non-negative integer, got "abc"');
  for (const v of ['-1', '1.5', '', '30s', '1e3', '+5', '2147483648']) {
    t.is(instructError(() => parse(hold('response', ['Grip-Timeout', v]))), `Grip-Timeout must be a non-negative integer, got ${JSON.stringify(v.trim())}`, v);
  }
});

test('refuses two different Grip-Timeout values', (t) => {
  t.regex(instructError(() => parse(hold('response', ['Grip-Timeout', '10'], ['Grip-Timeout', '20']))), /^Grip-Timeout must appear once/);
});

// ---- Grip-Keep-Alive -------------------------------------------------------------------------

const keepAlive = (value: string, mode = 'stream') => parse(hold(mode, ['Grip-Keep-Alive', value])).hold?.keepAlive;

test('Grip-Keep-Alive defaults to raw data, idle mode and 55 s', (t) => {
  const ka = keepAlive(': ping');
  t.is(ka?.content.toString(), ': ping');
  t.is(ka?.mode, 'idle');
  t.is(ka?.timeoutSec, 55);
});

test('Grip-Keep-Alive cstring example sends a newline every 30 s of idleness (spec example)', (t) => {
  const ka = keepAlive('\\n; format=cstring; timeout=30');
  t.deepEqual(ka, { content: Buffer.from('\n'), mode: 'idle', timeoutSec: 30 });
});

test('Grip-Keep-Alive SSE comment example from appendix A.2', (t) => {
  t.deepEqual(keepAlive(':\\n\\n; format=cstring; timeout=20'), { content: Buffer.from(':\n\n'), mode: 'idle', timeoutSec: 20 });
});

test('cstring decodes \\\\, \\r, \\n and \\xHH, and drops other escaped characters', (t) => {
  t.deepEqual([...(keepAlive('a\\\\b\\r\\n\\x00\\xfF\\tz; format=cstring')?.content ?? [])],
    [0x61, 0x5c, 0x62, 0x0d, 0x0a, 0x00, 0xff, 0x7a]);
});

test('rejects a bad cstring escape', (t) => {
  t.is(instructError(() => keepAlive('abc\\; format=cstring')), 'Grip-Keep-Alive cstring data ends with a lone backslash');
  t.is(instructError(() => keepAlive('\\xZ1; format=cstring')), 'Grip-Keep-Alive cstring data has \\x without two hex digits');
  t.is(instructError(() => keepAlive('\\x4; format=cstring')), 'Grip-Keep-Alive cstring data has \\x without two hex digits');
});

test('base64 data is decoded, and data that is not base64 is refused', (t) => {
  t.deepEqual([...(keepAlive(`${Buffer.from([0, 1, 255]).toString('base64')}; format=base64`)?.content ?? [])], [0, 1, 255]);
  t.is(instructError(() => keepAlive('not base64!; format=base64')), 'Grip-Keep-Alive data must be base64 (format=base64), got "not base64!"');
});

test('raw data is sent as its header bytes and may contain commas', (t) => {
  t.deepEqual([...(keepAlive('a,b\xff')?.content ?? [])], [0x61, 0x2c, 0x62, 0xff]);
  t.is(keepAlive('x; format=raw')?.content.toString(), 'x');
});

test('mode interval fires regardless of traffic; idle and empty mean idle', (t) => {
  t.is(keepAlive('x; mode=interval')?.mode, 'interval');
  t.is(keepAlive('x; mode=idle')?.mode, 'idle');
  t.is(keepAlive('x; mode=')?.mode, 'idle');
});

test('Grip-Keep-Alive timeout below 1 s is raised to 1 s', (t) => {
  t.is(keepAlive('x; timeout=0')?.timeoutSec, 1);
  t.is(keepAlive('x; timeout=1')?.timeoutSec, 1);
});

test('rejects empty keep-alive data, unknown format or mode, and a bad timeout', (t) => {
  t.is(instructError(() => keepAlive('; timeout=10')), 'Grip-Keep-Alive data must not be empty');
  t.is(instructError(() => keepAlive('')), 'Grip-Keep-Alive data must not be empty');
  t.is(instructError(() => keepAlive('x; format=hex')), 'Grip-Keep-Alive format must be raw, cstring or base64, got "hex"');
  t.is(instructError(() => keepAlive('x; mode=often')), 'Grip-Keep-Alive mode must be idle or interval, got "often"');
  t.is(instructError(() => keepAlive('x; timeout=soon')), 'Grip-Keep-Alive timeout must be a non-negative integer, got "soon"');
  t.is(instructError(() => keepAlive('x; timeout=-1')), 'Grip-Keep-Alive timeout must be a non-negative integer, got "-1"');
  t.is(instructError(() => keepAlive('x; timeout')), 'Grip-Keep-Alive timeout must be a non-negative integer, got nothing');
  t.is(instructError(() => keepAlive('x; timeout=1; timeout=2')), `Grip-Keep-Alive gives 'timeout' 2 times, expected at most once`);
});

test('a keep-alive is validated on any response but kept only for stream holds', (t) => {
  t.is(keepAlive('x', 'response'), undefined);
  t.regex(instructError(() => keepAlive('x; format=hex', 'response')), /format must be/);
});

// ---- Grip-Set-Meta ---------------------------------------------------------------------------

const meta = (...values: string[]) => parse(hold('stream', ...values.map((v): [string, string] => ['Grip-Set-Meta', v]))).meta;

test('Grip-Set-Meta sets key=value pairs from lists and repeated headers, later keys winning', (t) => {
  t.deepEqual(meta('user=alice, id_format="%(c)s,x"', 'room=1, user=bob'), { user: 'bob', id_format: '%(c)s,x', room: '1' });
});

test('Grip-Set-Meta is honoured without a hold and decodes UTF-8', (t) => {
  t.deepEqual(parse([['Grip-Set-Meta', Buffer.from('user=zoë', 'utf8').toString('latin1')]]).meta, { user: 'zoë' });
});

test('Grip-Set-Meta allows an empty value', (t) => {
  t.deepEqual(meta('user='), { user: '' });
});

test('rejects an empty Grip-Set-Meta element and elements that are not one key=value', (t) => {
  t.is(instructError(() => meta('a=1,,b=2')), 'Grip-Set-Meta must not contain an empty element (key=value was expected)');
  t.is(instructError(() => meta('user')), 'Grip-Set-Meta elements must each be one key=value, got "user"');
  t.is(instructError(() => meta('a=1; b=2')), 'Grip-Set-Meta elements must each be one key=value, got "a=1; b=2"');
  t.is(instructError(() => meta('=alice')), 'Grip-Set-Meta has a parameter value without a name near "=alice"');
});

// ---- Grip-Status -----------------------------------------------------------------------------

const status = (value: string) => parse([['Grip-Status', value]], { code: 200, reason: 'OK' });

test('Grip-Status sets code and reason, the reason keeping its spaces', (t) => {
  t.like(status('404 Not Here At All'), { code: 404, reason: 'Not Here At All' });
});

test('Grip-Status without a reason takes the standard phrase, or Undefined Reason [observed 1.36 for 299]', (t) => {
  t.like(status('201'), { code: 201, reason: 'Created' });
  t.like(status('299'), { code: 299, reason: 'Undefined Reason' });
  t.like(status('999'), { code: 999, reason: 'Undefined Reason' });
});

test('refuses a Grip-Status below 200: a 1xx is not a final response and the client would hang (D16)', (t) => {
  t.is(instructError(() => status('100')), 'Grip-Status 100 cannot be the final response to the client (1xx are informational, below 100 is not HTTP; must be 200-999)');
  t.is(instructError(() => status('103 Early Hints')), 'Grip-Status 103 cannot be the final response to the client (1xx are informational, below 100 is not HTTP; must be 200-999)');
  t.is(instructError(() => status('0')), 'Grip-Status 0 cannot be the final response to the client (1xx are informational, below 100 is not HTTP; must be 200-999)');
  t.is(instructError(() => parse(hold('response'), { code: 101 })), 'origin status 101 cannot be the final response to the client (1xx are informational, below 100 is not HTTP; must be 200-999)');
  t.like(status('200'), { code: 200 });
});

test('rejects a reason or client header Node could not write, whatever its source (D1)', (t) => {
  // Node's HTTP client passes a status-line reason with U+0001; writeHead then throws.
  t.is(instructError(() => parse(hold('response'), { reason: 'O\u0001K' })), 'origin status reason contains U+0001 at index 1 (allowed: tab, 0x20-0x7E, 0x80-0xFF)');
  t.is(instructError(() => status('200 O\u007fK')), 'Grip-Status reason contains U+007F at index 1 (allowed: tab, 0x20-0x7E, 0x80-0xFF)');
  t.is(instructError(() => parse(hold('response', ['X-A', 'a\u0001']))), 'origin header X-A value contains U+0001 at index 1 (allowed: tab, 0x20-0x7E, 0x80-0xFF)');
  t.is(instructError(() => parse(hold('response', ['Bad Name', 'v']))), 'origin header name must be an HTTP token, got "Bad Name"');
  // A reason the standard phrase replaces, or a header that is not relayed, does not matter.
  t.like(parse([['Grip-Status', '201']], { reason: 'O\u0001K' }), { code: 201, reason: 'Created' });
  t.like(parse([['Grip-Hold', 'response'], ['Grip-Expose-Headers', 'X-B'], ['X-A', '\u0001'], ['X-B', 'ok']]), { headers: [['X-B', 'ok']] });
});

test('Grip-Status applies with a hold too', (t) => {
  t.like(parse(hold('stream', ['Grip-Status', '202'])), { code: 202, reason: 'Accepted' });
});

test('rejects a Grip-Status code that is not an integer 0-999', (t) => {
  for (const v of ['abc', '1000', '-1', '', '20x OK', ' OK']) {
    t.is(instructError(() => status(v)), `Grip-Status must be "CODE[ REASON]" with CODE an integer 0-999, got ${JSON.stringify(v.trim())}`, v);
  }
});

// ---- Grip-Link -------------------------------------------------------------------------------

const links = (...values: string[]) => {
  const i = parse(hold('stream', ...values.map((v): [string, string] => ['Grip-Link', v])));
  return { next: i.nextLink, gone: i.goneLink };
};

test('rel=next resolves a relative URL against the request URL and defaults its timeout to 120 s', (t) => {
  t.deepEqual(links('</feed/recover?after=9>; rel=next').next, { url: 'http://origin.test/feed/recover?after=9', timeoutSec: 120 });
  t.deepEqual(links('<more>; rel=next; timeout=30').next, { url: 'http://origin.test/feed/more', timeoutSec: 30 });
});

test('rel=next keeps an absolute URL and accepts timeout 0', (t) => {
  t.deepEqual(links('<https://other.test/x>; rel="next"; timeout=0').next, { url: 'https://other.test/x', timeoutSec: 0 });
});

test('rel=gone gives a link with no timeout; next and gone may share one header', (t) => {
  const l = links('</n>; rel=next, </bye?a,b;c>; rel=gone');
  t.deepEqual(l.next, { url: 'http://origin.test/n', timeoutSec: 120 });
  t.deepEqual(l.gone, { url: 'http://origin.test/bye?a,b;c' });
});

test('Grip-Link applies without a hold (paged streaming)', (t) => {
  t.deepEqual(parse([['Grip-Link', '</page/2>; rel=next']]).nextLink, { url: 'http://origin.test/page/2', timeoutSec: 120 });
});

test('rel values compare case-insensitively; unknown rel and entries without parameters are ignored', (t) => {
  t.deepEqual(links('</n>; rel=NEXT').next?.url, 'http://origin.test/n');
  t.deepEqual(links('</x>; rel=prefetch', '</y>', 'not even a link', '</z>; title=z'), { next: undefined, gone: undefined });
});

test('rejects a Grip-Link target not written as <URL>', (t) => {
  t.is(instructError(() => links('/next; rel=next')), 'Grip-Link target must be written as <URL>, got "/next"');
  t.is(instructError(() => links('<>; rel=next')), 'Grip-Link target must be written as <URL>, got "<>"');
  t.is(instructError(() => links('</x; rel=next')), 'Grip-Link has an unterminated <...>');
});

test('rejects a Grip-Link URL that is invalid or not http(s)', (t) => {
  t.is(instructError(() => links('<http://[bad>; rel=next')), 'Grip-Link target is not a valid URL, got "http://[bad"');
  t.is(instructError(() => links('<ftp://h/x>; rel=gone')), 'Grip-Link target must be an http or https URL, got "ftp://h/x"');
});

test('rejects a bad Grip-Link timeout and repeated next or gone links', (t) => {
  t.is(instructError(() => links('</n>; rel=next; timeout=x')), 'Grip-Link timeout must be a non-negative integer, got "x"');
  t.is(instructError(() => links('</n>; rel=next; timeout=-5')), 'Grip-Link timeout must be a non-negative integer, got "-5"');
  t.is(instructError(() => links('</a>; rel=next', '</b>; rel=next')), 'Grip-Link must give at most one rel=next link');
  t.is(instructError(() => links('</a>; rel=gone, </b>; rel=gone')), 'Grip-Link must give at most one rel=gone link');
});

// ---- Grip-Expose-Headers ---------------------------------------------------------------------

test('Grip-Expose-Headers keeps only the named origin headers [observed 1.36]', (t) => {
  const i = parse(hold('response', ['Grip-Expose-Headers', 'Content-Type'], ['Content-Type', 'text/plain'],
    ['Server', 'x'], ['Date', 'today'], ['X-Custom', 'foo']));
  t.deepEqual(i.headers, [['Content-Type', 'text/plain']]);
});

test('Grip-Expose-Headers is a case-insensitive list, repeatable, and never exposes Grip-* or framing headers', (t) => {
  const i = parse(hold('stream', ['Grip-Expose-Headers', 'x-a, CONTENT-LENGTH'], ['grip-expose-headers', 'Grip-Hold, X-B'],
    ['X-A', '1'], ['x-b', '2'], ['X-C', '3'], ['Content-Length', '10']));
  t.deepEqual(i.headers, [['X-A', '1'], ['x-b', '2']]);
});

test('an empty Grip-Expose-Headers keeps every header', (t) => {
  t.deepEqual(parse(hold('stream', ['Grip-Expose-Headers', ' , '], ['X-A', '1'])).headers, [['X-A', '1']]);
});

// ---- Full example ----------------------------------------------------------------------------

test('parses the SSE stream of appendix A.2 in one go', (t) => {
  const i = parse([
    ['Content-Type', 'text/event-stream'], ['Grip-Hold', 'stream'], ['Grip-Channel', 'feed; prev-id=9'],
    ['Grip-Keep-Alive', ':\\n\\n; format=cstring; timeout=20'],
    ['Grip-Link', '</feed/recover?after=9>; rel=next; timeout=120'],
  ], { body: 'event: open\ndata:\n\n' });
  t.deepEqual(i, {
    code: 200,
    reason: 'OK',
    headers: [['Content-Type', 'text/event-stream']],
    body: Buffer.from('event: open\ndata:\n\n'),
    meta: {},
    nextLink: { url: 'http://origin.test/feed/recover?after=9', timeoutSec: 120 },
    hold: {
      mode: 'stream',
      channels: [{ name: 'feed', prevId: '9', filters: [] }],
      timeoutSec: 55,
      keepAlive: { content: Buffer.from(':\n\n'), mode: 'idle', timeoutSec: 20 },
    },
  });
});
