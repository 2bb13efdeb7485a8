import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import '../helpers/fc-seed.js';
import { isKgError, KgError } from '../../sidecar/src/errors.js';
import { originUrl } from '../../sidecar/src/origin/origin-url.js';

const base = new URL('http://origin:8080/');
const app = new URL('https://api.internal/app');

test('the request path and query follow the origin base path', (t) => {
  t.is(originUrl(base, '/events?x=1&y=%20').href, 'http://origin:8080/events?x=1&y=%20');
  t.is(originUrl(app, '/events').href, 'https://api.internal/app/events');
  t.is(originUrl(new URL('https://api.internal/app/'), '/').href, 'https://api.internal/app/');
  t.is(originUrl(base, undefined).href, 'http://origin:8080/');
});

test('a target starting with // stays a path on the origin, never another host', (t) => {
  const u = originUrl(base, '//evil.test/x?q=1');
  t.is(u.host, 'origin:8080');
  t.is(u.pathname, '//evil.test/x');
  t.is(u.search, '?q=1');
  t.is(originUrl(app, '//evil.test/x').host, 'api.internal');
});

test('an absolute-form target keeps only its path and query', (t) => {
  t.is(originUrl(base, 'http://evil.test/steal?a=1').href, 'http://origin:8080/steal?a=1');
  t.is(originUrl(app, 'https://evil.test:444/x').href, 'https://api.internal/app/x');
});

test('an asterisk-form target falls back to /; a # is part of the path', (t) => {
  t.is(originUrl(base, '*').href, 'http://origin:8080/');
  t.is(originUrl(base, '/a#frag').href, 'http://origin:8080/a%23frag');
});

const api = new URL('http://o/api');

/** The KG_ERR_PATH_INVALID a path that leaves the base is refused with. */
function refused(t: ExecutionContext, b: URL, target: string): void {
  const err = t.throws(() => originUrl(b, target), { instanceOf: KgError }, target) as KgError;
  t.true(isKgError(err, 'KG_ERR_PATH_INVALID'), target);
  t.is(err.status, 400);
  t.false(err.message.includes(b.href) || err.message.includes(b.hostname + '/'), 'the text does not name the origin');
}

test('a path that climbs out of the origin base path is refused with 400 KG_ERR_PATH_INVALID', (t) => {
  for (const target of [
    '/../admin/delete', '/%2E%2E/%2E%2E/etc', '/%2e%2e/x', '/.%2e/x', '/%2e./x', '/%2E%2e/x', '/a/../../x',
    '/../admin?x=1', '/..', '/a/./../..', '/..\\admin', '/a\\..\\..\\x', '/.\t./admin', '/%2e\n%2e/admin',
  ]) refused(t, api, target);
  refused(t, base, '/../../etc/passwd');
  refused(t, base, '/..');
  // absolute-form: its path is checked the same way
  refused(t, api, 'http://evil.test/../admin');
  refused(t, api, 'mailto:x'); // no path of its own: "x" would land beside the base (/apix)
});

test('dot segments that stay inside the base path are resolved within it', (t) => {
  t.is(originUrl(api, '/a/../b').href, 'http://o/api/b');
  t.is(originUrl(api, '/a/%2e%2E/b?q=1').href, 'http://o/api/b?q=1');
  t.is(originUrl(api, '/./a/./b').href, 'http://o/api/a/b');
  t.is(originUrl(api, '/a/..').href, 'http://o/api/');
  t.is(originUrl(api, '/a/.').href, 'http://o/api/a/');
  t.is(originUrl(api, '/a/b/../../c').href, 'http://o/api/c');
  t.is(originUrl(new URL('http://o/api/'), '/a/../b').href, 'http://o/api/b');
  t.is(originUrl(base, '/a/../b').href, 'http://origin:8080/b');
  // dots inside a segment are not dot segments
  t.is(originUrl(api, '/a..b/...//.x/x.').href, 'http://o/api/a..b/...//.x/x.');
  t.is(originUrl(api, '/a/../b?x=/../..').href, 'http://o/api/b?x=/../..', 'the query is not a path');
});

test('a dot-dot joined by an encoded slash or backslash is refused, whatever the origin decodes', (t) => {
  for (const target of ['/..%2Fadmin', '/x%2f..%2f..%2fetc', '/%2e%2e%5cadmin', '/a/..%5C..%5Cb']) refused(t, api, target);
  t.is(originUrl(api, '/a%2Fb').href, 'http://o/api/a%2Fb', 'an encoded slash alone is passed on');
});

const segment = fc.oneof(
  fc.constantFrom('.', '..', '%2e', '%2E', '.%2e', '%2E.', '%2e%2E', 'a', 'b.c', '', '...', '%41'),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/),
);
const path = fc.array(segment, { maxLength: 8 }).map((s) => `/${s.join('/')}`);
const basePath = fc.array(fc.stringMatching(/^[a-z0-9]{1,4}$/), { maxLength: 3 }).map((s) => `/${s.join('/')}`);

test('property: the result is under the base path or the request is refused, and it has no dot segments', (t) => {
  t.notThrows(() => fc.assert(fc.property(basePath, path, (bp, p) => {
    const b = new URL(`http://o${bp}`);
    const prefix = b.pathname.endsWith('/') ? b.pathname : `${b.pathname}/`;
    let u: URL;
    try {
      u = originUrl(b, p);
    } catch (err) {
      return isKgError(err, 'KG_ERR_PATH_INVALID');
    }
    const under = `${u.pathname}/`.startsWith(prefix) || u.pathname === b.pathname;
    const dots = u.pathname.split('/').some((s) => /^(\.|%2e){1,2}$/i.test(s));
    return u.host === 'o' && under && !dots;
  }), { numRuns: 2000 }));
});

test('property: resolution agrees with the URL parser whenever the path stays inside the base', (t) => {
  t.notThrows(() => fc.assert(fc.property(basePath, path, (bp, p) => {
    const b = new URL(`http://o${bp}/`);
    // The WHATWG parser resolves the same dot segments; when it stays under the base, so must we.
    const parsed = new URL(`.${p}`, b);
    if (!parsed.pathname.startsWith(b.pathname)) return true;
    let u: URL;
    try {
      u = originUrl(b, p);
    } catch {
      return true; // stricter than the parser: climbing out and back in is refused
    }
    return u.pathname === parsed.pathname;
  }), { numRuns: 2000 }));
});
