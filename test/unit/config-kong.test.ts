import test from 'ava';
import { configError, writeTempYaml as yamlFile } from '../helpers/config-files.js';
import { loadConfig } from '../../sidecar/src/config.js';

// Kong mode's settings: kong.secret / --kong-secret / GRIP_KONG_SECRET, kong.allowedOrigins /
// --kong-allowed-origins / GRIP_KONG_ALLOWED_ORIGINS, kong.maxAgeSec, kong.replayCacheSize.

const SECRET = 'kong-mode-config-test-secret-0123456789';
/** Kong mode needs NATS (the fleet-wide nonce store). */
const NATS = ['--nats', 'nats://127.0.0.1:4222'];

test('flags turn Kong mode on with the documented defaults; no standalone origin is needed', (t) => {
  const c = loadConfig({ env: {}, argv: [...NATS, '--kong-secret', SECRET, '--kong-allowed-origins', 'http://origin:8080, https://api.test/app'] });
  t.deepEqual(c.kong, { secret: SECRET, allowedOrigins: ['http://origin:8080', 'https://api.test/app'], maxAgeSec: 30, replayCacheSize: 500_000, connectionLeaseSec: 15 });
  // Kong mode meters usage by default (docs/kong.md, "Usage metering").
  t.deepEqual(c.usage, { intervalSec: 60, subject: 'grip.usage' });
  t.is(c.origin, undefined);
  t.true(Object.isFrozen(c.kong));
});

test('the secret from the environment and the rest from the file combine', (t) => {
  const file = yamlFile('kong:\n  allowedOrigins: [http://origin:8080]\n  maxAgeSec: 10\n  replayCacheSize: 5000\n');
  const c = loadConfig({ env: { GRIP_KONG_SECRET: SECRET }, argv: [...NATS, '--config', file] });
  t.deepEqual(c.kong, { secret: SECRET, allowedOrigins: ['http://origin:8080'], maxAgeSec: 10, replayCacheSize: 5000, connectionLeaseSec: 15 });
});

test('the allow-list flag or variable replaces the file\'s list', (t) => {
  const file = yamlFile(`kong:\n  secret: ${SECRET}\n  allowedOrigins: [http://file:1]\n`);
  const c = loadConfig({ env: { GRIP_KONG_ALLOWED_ORIGINS: 'http://env:2' }, argv: [...NATS, '--config', file] });
  t.deepEqual(c.kong?.allowedOrigins, ['http://env:2']);
});

test('a secret shorter than the plugin accepts (32 bytes) is refused, and the message does not show it', (t) => {
  const message = configError(() => loadConfig({ env: {}, argv: ['--kong-secret', 'short-secret-1234', '--kong-allowed-origins', 'http://o:1'] }));
  t.regex(message, /kong.secret must be a string of at least 32 bytes, got 17 bytes/);
  t.notRegex(message, /short-secret-1234/);
});

test('the secret is counted in bytes, as Kong and the plugin count it: 16 two-byte characters are enough', (t) => {
  const c = loadConfig({ env: {}, argv: [...NATS, '--kong-secret', 'é'.repeat(16), '--kong-allowed-origins', 'http://o:1'] });
  t.is(c.kong?.secret, 'é'.repeat(16));
});

test('Kong mode without NATS is refused: the nonce store that makes a token single-use fleet-wide lives in JetStream', (t) => {
  const message = configError(() => loadConfig({ env: {}, argv: ['--kong-secret', SECRET, '--kong-allowed-origins', 'http://o:1'] }));
  t.regex(message, /kong.secret \(Kong mode\) needs nats \(--nats URL, a nats-server with JetStream/);
  t.notRegex(message, new RegExp(SECRET));
  t.notThrows(() => loadConfig({ env: { NATS_URL: 'nats://n:4222' }, argv: ['--kong-secret', SECRET, '--kong-allowed-origins', 'http://o:1'] }));
});

test('Kong mode without an allow-list is refused instead of refusing every request', (t) => {
  t.regex(configError(() => loadConfig({ env: {}, argv: ['--kong-secret', SECRET] })), /kong.allowedOrigins must list at least one origin URL/);
});

test('an allow-list entry that is not an http(s) base URL is refused, naming it', (t) => {
  const message = configError(() => loadConfig({ env: {}, argv: ['--kong-secret', SECRET, '--kong-allowed-origins', 'http://ok:1,origin:8080,http://o/?q'] }));
  t.regex(message, /kong.allowedOrigins\[1\] must be an http:\/\/ or https:\/\/ URL/);
  t.regex(message, /kong.allowedOrigins\[2\] must be an http:\/\/ or https:\/\/ URL without credentials, query or fragment/);
});

test('standalone origin and Kong mode exclude each other', (t) => {
  t.regex(configError(() => loadConfig({ env: {}, argv: ['--origin', 'http://o:1', '--kong-secret', SECRET, '--kong-allowed-origins', 'http://o:1'] })),
    /origin \(standalone mode\) and kong.secret \(Kong mode\) exclude each other/);
});

test('bad maxAgeSec, replayCacheSize and unknown kong keys are named', (t) => {
  const file = yamlFile(`kong:\n  secret: ${SECRET}\n  allowedOrigins: [http://o:1]\n  maxAgeSec: 0\n  replayCacheSize: 10\n  ttl: 5\n`);
  const message = configError(() => loadConfig({ env: {}, argv: ['--config', file] }));
  t.regex(message, /kong.maxAgeSec must be an integer 1-3600, got 0/);
  t.regex(message, /kong.replayCacheSize must be an integer 1000-100000000, got 10/);
  t.regex(message, /kong.ttl is not a known setting/);
});

test('usage metering: off by default outside Kong mode, settings checked, needs NATS, its subject kept apart from channel subjects', (t) => {
  const standalone = loadConfig({ env: {}, argv: ['--origin', 'http://origin:8080'] });
  t.is(standalone.usage, undefined);
  const withNats = loadConfig({ env: {}, argv: [...NATS, '--origin', 'http://origin:8080'], overrides: { usage: { enabled: true, intervalSec: 5, subject: 'billing.realtime' } } });
  t.deepEqual(withNats.usage, { intervalSec: 5, subject: 'billing.realtime' });
  const off = loadConfig({ env: {}, argv: [...NATS, '--kong-secret', SECRET, '--kong-allowed-origins', 'http://o:1'], overrides: { usage: { enabled: false } } });
  t.is(off.usage, undefined);
  const err = t.throws(() => loadConfig({ env: {}, argv: ['--origin', 'http://origin:8080'], overrides: { usage: { enabled: true } } }));
  t.regex(err.message, /usage\.enabled needs nats/);
  const bad = t.throws(() => loadConfig({
    env: {}, argv: [...NATS, '--kong-secret', SECRET, '--kong-allowed-origins', 'http://o:1'],
    overrides: { usage: { intervalSec: 0, subject: 'grip.ch.usage', extra: 1 }, kong: { connectionLeaseSec: 1 } },
  }));
  t.regex(bad.message, /usage\.intervalSec must be an integer 1-86400/);
  t.regex(bad.message, /usage\.subject must not be under the NATS prefix grip\.ch\./);
  t.regex(bad.message, /usage\.extra is not a known setting/);
  t.regex(bad.message, /kong\.connectionLeaseSec must be an integer 2-3600/);
  t.regex(t.throws(() => loadConfig({ env: {}, argv: [...NATS, '--origin', 'http://o:1'], overrides: { usage: { enabled: true, subject: 'grip.>' } } })).message,
    /usage\.subject must be a NATS subject without wildcards/);
});
