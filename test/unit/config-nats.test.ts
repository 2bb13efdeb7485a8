import test from 'ava';
import { availableParallelism } from 'node:os';
import { configError } from '../helpers/config-files.js';
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
