import test from 'ava';
import { configError, writeTempYaml as yamlFile } from '../helpers/config-files.js';
import { loadConfig, parseArgs } from '../../sidecar/src/config.js';

test('defaults match Pushpin where Pushpin has one', (t) => {
  const c = loadConfig({ env: {}, argv: ['--origin', 'http://127.0.0.1:8080'] });
  t.deepEqual(c.listen, { host: '127.0.0.1', port: 7999 });
  t.deepEqual(c.control, { host: '127.0.0.1', port: 5561 });
  t.is(c.sigIss, 'pushpin');
  t.is(c.limits.maxChannelsPerConnection, 20);
  t.is(c.limits.maxRequestBodyBytes, 100_000);
  t.is(c.limits.maxPublishBodyBytes, 1_000_000);
  t.true(Object.isFrozen(c) && Object.isFrozen(c.limits));
});

test('flags beat the environment, which beats the file, which beats the defaults', (t) => {
  const file = yamlFile('origin: http://file:1\nlisten: 127.0.0.1:7000\nsigIss: file-iss\nlimits:\n  maxQueueItems: 7\n');
  const c = loadConfig({
    env: { GRIP_LISTEN: '127.0.0.1:6000', GRIP_SIG_ISS: 'env-iss', GRIP_SIG_KEY: 'from-env', GRIP_CONTROL: '0.0.0.0:6001' },
    argv: ['--config', file, '--listen=127.0.0.1:8000'],
  });
  t.deepEqual(c.listen, { host: '127.0.0.1', port: 8000 });
  t.deepEqual(c.control, { host: '0.0.0.0', port: 6001 });
  t.is(c.origin, 'http://file:1/');
  t.is(c.sigKey, 'from-env');
  t.is(c.sigIss, 'env-iss');
  t.is(c.limits.maxQueueItems, 7);
});

test('NATS_URL takes a comma-separated server list', (t) => {
  const c = loadConfig({ env: { NATS_URL: 'nats://a:4222, nats://b:4222' }, argv: ['--origin', 'http://o'] });
  t.deepEqual(c.nats?.servers, ['nats://a:4222', 'nats://b:4222']);
  t.is(c.nats?.subjectPrefix, 'grip.ch.');
});

test('every problem is reported at once, each naming its setting', (t) => {
  const file = yamlFile('listen: nope\nlimits:\n  maxConnections: -1\n  bogus: 1\nextra: 1\n');
  const message = configError(() => loadConfig({ env: {}, argv: ['--config', file, '--origin', 'ftp://x', '--workers', 'many'] }));
  t.regex(message, /listen must be HOST:PORT, got "nope"/);
  t.regex(message, /limits.maxConnections must be an integer/);
  t.regex(message, /limits.bogus is not a known setting/);
  t.regex(message, /extra is not a known setting/);
  t.regex(message, /origin must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x"/);
  t.regex(message, /workers must be an integer 1-256, got "many"/);
});

test('an origin is required outside Kong mode; unknown flags and missing values are named', (t) => {
  t.regex(configError(() => loadConfig({ env: {}, argv: [] })), /origin is required/);
  t.regex(configError(() => parseArgs(['--lissten', 'x'])), /unknown option "--lissten"/);
  t.regex(configError(() => parseArgs(['--origin'])), /option --origin needs a value/);
  t.regex(configError(() => loadConfig({ env: {}, argv: ['--config', '/nonexistent/kg.yml'] })), /cannot read config file/);
  t.regex(configError(() => loadConfig({ env: {}, argv: ['--config', yamlFile('a: [')] })), /not valid YAML/);
});

test('--help is recognised without other validation', (t) => {
  t.true(parseArgs(['--help']).help);
});

test('the ws section defaults to Pushpin\'s WebSocket-over-HTTP values and is validated', (t) => {
  const c = loadConfig({ env: {}, argv: ['--origin', 'http://127.0.0.1:8080'] });
  t.deepEqual(c.ws, {
    maxMessageBytes: 200_000, maxPendingBytes: 200_000, maxResponseBytes: 1_000_000, keepAliveMinSec: 20,
    retries: 5, retryBaseMs: 1000, answerPings: false,
  });
  t.true(Object.isFrozen(c.ws));
  const file = yamlFile('origin: http://o:1\nws:\n  retries: -1\n  answerPings: maybe\n  keepAlive: 5\n');
  const message = configError(() => loadConfig({ env: {}, argv: ['--config', file] }));
  t.regex(message, /ws\.retries must be an integer 0-20, got -1/);
  t.regex(message, /ws\.answerPings must be true or false, got "maybe"/);
  t.regex(message, /ws\.keepAlive is not a known setting/);
});
