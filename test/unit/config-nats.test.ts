import test from 'ava';
import { availableParallelism } from 'node:os';
import { configError, writeTempYaml } from '../helpers/config-files.js';
import { loadConfig } from '../../sidecar/src/config.js';

const ORIGIN = ['--origin', 'http://127.0.0.1:8080'];

test('NATS_URL and --nats take a comma-separated server list', (t) => {
  const fromEnv = loadConfig({ env: { NATS_URL: 'nats://a:4222, nats://b:4222' }, argv: ORIGIN });
  t.deepEqual(fromEnv.nats?.servers, ['nats://a:4222', 'nats://b:4222']);
  const fromFlag = loadConfig({ env: { NATS_URL: 'nats://env:1' }, argv: [...ORIGIN, '--nats', 'nats://flag:4222'] });
  t.deepEqual(fromFlag.nats?.servers, ['nats://flag:4222']);
  t.is(fromFlag.nats?.subjectPrefix, 'grip.ch.');
  t.is(fromFlag.nats?.reconnectWaitMs, 1000);
});

test('--nats-prefix sets the subject prefix and adds the final dot', (t) => {
  const c = loadConfig({ env: {}, argv: [...ORIGIN, '--nats', 'nats://n:4222', '--nats-prefix', 'myapp.grip'] });
  t.is(c.nats?.subjectPrefix, 'myapp.grip.');
  const env = loadConfig({ env: { NATS_URL: 'nats://n:4222', GRIP_NATS_PREFIX: 'x.' }, argv: ORIGIN });
  t.is(env.nats?.subjectPrefix, 'x.');
});

test('rejects a subject prefix with wildcards or empty tokens, naming the setting', (t) => {
  t.regex(configError(() => loadConfig({ env: {}, argv: [...ORIGIN, '--nats', 'nats://n:1', '--nats-prefix', 'a.*'] })), /nats\.subjectPrefix/);
  t.regex(configError(() => loadConfig({ env: {}, argv: [...ORIGIN, '--nats', 'nats://n:1', '--nats-prefix', 'a..b'] })), /empty token/);
  t.regex(configError(() => loadConfig({ env: {}, argv: [...ORIGIN, '--nats-prefix', 'a'] })), /natsPrefix needs nats/);
});

test('defaults to one worker without NATS and to one per core with NATS', (t) => {
  t.is(loadConfig({ env: {}, argv: ORIGIN }).workers, 1);
  t.is(loadConfig({ env: {}, argv: [...ORIGIN, '--nats', 'nats://n:4222'] }).workers, availableParallelism());
  t.is(loadConfig({ env: {}, argv: [...ORIGIN, '--nats', 'nats://n:4222', '--workers', '3'] }).workers, 3);
});

test('refuses several workers without NATS, since the in-process bus cannot reach them', (t) => {
  t.regex(configError(() => loadConfig({ env: {}, argv: [...ORIGIN, '--workers', '2'] })), /workers must be 1 without NATS/);
});

test('reads NATS timings and the channel linger from the file sections', (t) => {
  const c = loadConfig({
    env: {},
    overrides: {
      origin: 'http://127.0.0.1:8080',
      nats: { servers: 'nats://n:4222', reconnectWaitMs: 250, connectTimeoutMs: 900, pingIntervalMs: 3000 },
      hold: { channelLingerMs: 0 },
    },
  });
  t.like(c.nats, { reconnectWaitMs: 250, connectTimeoutMs: 900, pingIntervalMs: 3000 });
  t.is(c.hold.channelLingerMs, 0);
  t.regex(configError(() => loadConfig({ env: {}, overrides: { origin: 'http://o:1', nats: { servers: 'nats://n:1', lingerMs: 5 } } })), /nats\.lingerMs is not a known setting/);
});

test('--nats gives the servers while the file keeps the rest of the nats section', (t) => {
  const file = writeTempYaml('nats:\n  servers: nats://file:1\n  reconnectWaitMs: 250\n  jetstream:\n    stream: HIST\n');
  const c = loadConfig({ env: {}, argv: [...ORIGIN, '--config', file, '--nats', 'nats://flag:4222'] });
  t.deepEqual(c.nats?.servers, ['nats://flag:4222']);
  t.is(c.nats?.reconnectWaitMs, 250);
  t.is(c.nats?.jetstream?.stream, 'HIST');
});

test('nats.jetstream is off by default, true takes the defaults, and its settings are validated', (t) => {
  const base = { origin: 'http://o:1' };
  t.is(loadConfig({ env: {}, overrides: { ...base, nats: 'nats://n:1' } }).nats?.jetstream, undefined);
  t.like(loadConfig({ env: {}, overrides: { ...base, nats: { servers: 'nats://n:1', jetstream: true } } }).nats?.jetstream, {
    stream: 'GRIP', maxAgeSec: 3600, maxMessagesPerChannel: 1000, storage: 'file', republishPrefix: 'grip.js.', lastEventIdPaths: [],
  });
  const message = configError(() => loadConfig({
    env: {},
    overrides: { ...base, nats: { servers: 'nats://n:1', jetstream: { stream: 'a.b', storage: 'disk', lastEventIdPaths: ['events'], maxAge: 1 } } },
  }));
  t.regex(message, /nats\.jetstream\.stream must be 1-64 letters/);
  t.regex(message, /nats\.jetstream\.storage must be file or memory/);
  t.regex(message, /nats\.jetstream\.lastEventIdPaths must be a list of request path prefixes/);
  t.regex(message, /nats\.jetstream\.maxAge is not a known setting/);
});

test('with history, subject prefixes for channels, republished items and events must not overlap', (t) => {
  const base = { origin: 'http://o:1' };
  t.regex(configError(() => loadConfig({ env: {}, overrides: { ...base, nats: { servers: 'nats://n:1', subjectPrefix: 'grip.', jetstream: true } } })),
    /nats\.subjectPrefix \(grip\.\) and nats\.subscriptionEventPrefix \(grip\.sub\.\) must not overlap/);
  t.regex(configError(() => loadConfig({ env: {}, overrides: { ...base, nats: { servers: 'nats://n:1', jetstream: { republishPrefix: 'grip.ch.js' } } } })),
    /nats\.jetstream\.republishPrefix \(grip\.ch\.js\.\) must not overlap/);
  const c = loadConfig({ env: {}, overrides: { ...base, nats: { servers: 'nats://n:1', subscriptionEvents: false, subscriptionEventPrefix: 'x.' } } });
  t.false(c.nats?.subscriptionEvents);
  const core = loadConfig({ env: {}, overrides: { ...base, nats: { servers: 'nats://n:1', subjectPrefix: 'grip.' } } });
  t.is(core.nats?.subscriptionEventPrefix, 'grip.sub.', 'without history a channel subject is one token, so they cannot collide');
});

test('sequencing and shutdown take Pushpin-like defaults and are validated', (t) => {
  const c = loadConfig({ env: {}, argv: ORIGIN });
  t.deepEqual(c.sequencing, { waitMs: 5000, maxPending: 100, idTtlMs: 60_000 });
  t.deepEqual(c.shutdown, { drainMs: 10_000 });
  const message = configError(() => loadConfig({ env: {}, overrides: { origin: 'http://o:1', sequencing: { waitMs: -1, wait: 3 }, shutdown: { drainMs: 'soon' } } }));
  t.regex(message, /sequencing\.waitMs must be an integer 0-600000/);
  t.regex(message, /sequencing\.wait is not a known setting/);
  t.regex(message, /shutdown\.drainMs must be an integer/);
});

test('an invalid NATS server list is reported without the credentials in its URLs', (t) => {
  const message = configError(() => loadConfig({ env: {}, argv: [...ORIGIN, '--nats', 'nats://alice:s3cret@n:4222,http://x'] }));
  t.regex(message, /nats\.servers/);
  t.notRegex(message, /s3cret|alice/);
});
