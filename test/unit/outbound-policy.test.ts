import test from 'ava';
import fc from 'fast-check';
import '../helpers/fc-seed.js';
import { canonicalHost, checkOutboundUrl, createOutboundPolicy, type OutboundPolicyOptions } from '../../sidecar/src/origin/outbound-policy.js';

const listeners = [{ host: '0.0.0.0', port: 7999 }, { host: '127.0.0.1', port: 5561 }];
const standalone: OutboundPolicyOptions = { listeners };
const kong: OutboundPolicyOptions = { listeners, allowedOrigins: ['http://feeds.internal:8080/v1', 'https://api.internal'] };
const request = new URL('http://origin.internal:8080/app/events?x=1');

const reason = (target: string, options: OutboundPolicyOptions, req: URL = request) => {
  const d = checkOutboundUrl(target, req, options);
  return d.allowed ? 'allowed' : d.reason;
};

test('a link on the request\'s origin may be fetched, at any path; a relative one resolves against the request', (t) => {
  t.is(reason('http://origin.internal:8080/app/events?after=2', standalone), 'allowed');
  t.is(reason('http://ORIGIN.internal:8080/elsewhere', standalone), 'allowed');
  const d = checkOutboundUrl('next?after=3', request, standalone);
  t.true(d.allowed);
  t.is(d.allowed ? d.url.href : '', 'http://origin.internal:8080/app/next?after=3');
});

test('standalone, another origin is refused: other host, port or scheme', (t) => {
  t.is(reason('http://evil.test/steal', standalone), 'other_origin');
  t.is(reason('http://origin.internal:8081/app', standalone), 'other_origin');
  t.is(reason('https://origin.internal:8080/app', standalone), 'other_origin');
  t.is(reason('http://169.254.169.254/latest/meta-data/', standalone), 'other_origin');
});

test('in Kong mode a link under an allow-list entry may be fetched, matched as handoff origins are', (t) => {
  t.is(reason('http://feeds.internal:8080/v1/next', kong), 'allowed');
  t.is(reason('http://feeds.internal:8080/v1', kong), 'allowed');
  t.is(reason('https://api.internal/anything', kong), 'allowed');
  t.is(reason('http://feeds.internal:8080/v10/next', kong), 'other_origin', 'path prefix on a segment boundary');
  t.is(reason('http://feeds.internal:8080/admin', kong), 'other_origin');
  t.is(reason('http://api.internal/anything', kong), 'other_origin', 'scheme must match');
  t.is(reason('http://evil.test/', kong), 'other_origin');
});

test('only http and https, and no credentials', (t) => {
  for (const target of ['ftp://origin.internal:8080/x', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/plain,x', 'ws://origin.internal:8080/']) {
    t.is(reason(target, kong), 'scheme', target);
  }
  t.is(reason('http://user:pw@origin.internal:8080/x', standalone), 'credentials');
  t.is(reason('http://[not a url', standalone, request), 'invalid');
});

test('the sidecar\'s own listeners are refused in every spelling, even as the request\'s own origin', (t) => {
  const selfOrigin = new URL('http://127.0.0.1:5561/'); // an origin misconfigured as the control port
  for (const host of ['127.0.0.1', 'localhost', 'LOCALHOST.', 'api.localhost', '[::1]', '[0:0:0:0:0:0:0:1]', '0.0.0.0', '[::]', '[::ffff:127.0.0.1]', '127.1', '2130706433', '0x7f.1', '127.9.9.9']) {
    for (const port of [7999, 5561]) t.is(reason(`http://${host}:${port}/publish/`, standalone, selfOrigin), 'own_listener', `${host}:${port}`);
  }
  const withNames: OutboundPolicyOptions = { ...kong, ownHosts: ['sidecar-7', '10.0.0.5'], allowedOrigins: ['http://sidecar-7:7999', 'http://10.0.0.5:5561'] };
  t.is(reason('http://sidecar-7:7999/x', withNames), 'own_listener', 'a name of this machine, even on the allow-list');
  t.is(reason('http://10.0.0.5:5561/publish/', withNames), 'own_listener');
  t.is(reason('http://127.0.0.1:8080/x', standalone, new URL('http://127.0.0.1:8080/')), 'allowed', 'a local origin on another port is fine');
  const bound: OutboundPolicyOptions = { listeners: [{ host: '192.168.1.9', port: 80 }] };
  t.is(reason('http://192.168.1.9/x', bound, new URL('http://192.168.1.9/')), 'own_listener', 'a listener on a specific address, default port');
});

test('canonicalHost writes hosts the way the URL parser does, IPv4-mapped IPv6 as IPv4', (t) => {
  t.is(canonicalHost('[::ffff:127.0.0.1]'), '127.0.0.1');
  t.is(canonicalHost('::ffff:7f00:1'), '127.0.0.1');
  t.is(canonicalHost('::'), '0.0.0.0');
  t.is(canonicalHost(''), '0.0.0.0');
  t.is(canonicalHost('0:0:0:0:0:0:0:1'), '::1');
  t.is(canonicalHost('Example.TEST.'), 'example.test');
});

// ---- properties ----------------------------------------------------------------------------------

const loopbackHost = fc.constantFrom('127.0.0.1', 'localhost', 'Localhost.', 'x.localhost', '[::1]', '0.0.0.0', '[::]', '[::ffff:127.0.0.1]', '127.0.0.53', '0x7f000001', '0');
const anyHost = fc.oneof(loopbackHost, fc.constantFrom('origin.internal', 'feeds.internal', 'api.internal', 'evil.test', '10.0.0.5', '[fe80::1]'));
const port = fc.oneof(fc.constantFrom(80, 443, 5561, 7999, 8080), fc.integer({ min: 1, max: 65535 }));
const scheme = fc.constantFrom('http', 'https', 'ftp', 'file', 'ws');
const pathPart = fc.stringMatching(/^(\/[A-Za-z0-9._~%-]{0,6}){0,4}(\?[a-z=&]{0,6})?$/);

test('property: whatever is allowed is http(s), on the request\'s origin or the allow-list, and not an own listener', (t) => {
  const policy = createOutboundPolicy(kong);
  const allowList = kong.allowedOrigins!.map((o) => new URL(o));
  t.notThrows(() => fc.assert(fc.property(scheme, anyHost, port, pathPart, (s, h, p, path) => {
    let target: URL;
    try {
      target = new URL(`${s}://${h}:${p}${path}`);
    } catch {
      return true;
    }
    const d = policy(target, request);
    if (!d.allowed) return true;
    const u = d.url;
    const effectivePort = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
    const local = /^(127\.|0\.0\.0\.0$|\[::1\]$|\[::\]$|\[::ffff:7f|localhost$|.*\.localhost$)/.test(u.hostname.replace(/\.$/, ''));
    const onAllowList = allowList.some((a) => a.origin === u.origin && (`${u.pathname}/`).startsWith(a.pathname.endsWith('/') ? a.pathname : `${a.pathname}/`));
    return (u.protocol === 'http:' || u.protocol === 'https:')
      && (u.origin === request.origin || onAllowList)
      && !(local && (effectivePort === 5561 || effectivePort === 7999));
  }), { numRuns: 3000 }));
});

test('property: a loopback spelling on a listener port is refused even when it is the request\'s origin and on the allow-list', (t) => {
  t.notThrows(() => fc.assert(fc.property(loopbackHost, fc.constantFrom(5561, 7999), fc.constantFrom('http', 'https'), pathPart, (h, p, s, path) => {
    const origin = new URL(`${s}://${h}:${p}/`);
    const policy = createOutboundPolicy({ listeners, allowedOrigins: [origin.href] });
    const d = policy(`${s}://${h}:${p}${path}`, origin);
    return !d.allowed && d.reason === 'own_listener';
  })));
});

test('property: any path and query on the request\'s own (non-listener) origin is allowed', (t) => {
  const policy = createOutboundPolicy(standalone);
  t.notThrows(() => fc.assert(fc.property(pathPart, (path) => policy(`http://origin.internal:8080${path}`, request).allowed)));
});
