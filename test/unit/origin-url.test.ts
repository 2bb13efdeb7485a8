import test from 'ava';
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

test('dot segments cannot climb above the origin host; other forms fall back to /', (t) => {
  t.is(originUrl(base, '/../../etc/passwd').host, 'origin:8080');
  t.is(originUrl(base, '*').href, 'http://origin:8080/');
  t.is(originUrl(base, '/a#frag').href, 'http://origin:8080/a%23frag');
});
