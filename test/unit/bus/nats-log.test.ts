import test from 'ava';
import { errorText, LogThrottle, redact } from '../../../sidecar/src/bus/nats-log.js';

test('lets a few lines a window through and counts the ones it holds back', (t) => {
  const throttle = new LogThrottle(1000, 2);
  t.is(throttle.admit(5000), 0);
  t.is(throttle.admit(5100), 0);
  t.is(throttle.admit(5200), undefined);
  t.is(throttle.admit(5999), undefined);
  // A new window: the first line says how many were suppressed since the last one.
  t.is(throttle.admit(6000), 2);
  t.is(throttle.admit(6001), 0);
  t.is(throttle.admit(6002), undefined);
});

test('removes user info from server URLs', (t) => {
  t.deepEqual(redact(['nats://user:secret@10.0.0.1:4222', 'nats://10.0.0.2:4222', 'tls://token@host']), [
    'nats://10.0.0.1:4222', 'nats://10.0.0.2:4222', 'tls://host',
  ]);
});

test('gives an error text even for errors with only a code', (t) => {
  t.is(errorText(new Error('boom')), 'boom');
  t.is(errorText(Object.assign(new Error(''), { code: 'CONNECTION_REFUSED' })), 'CONNECTION_REFUSED');
  t.is(errorText(new TypeError('')), 'TypeError');
  t.is(errorText('plain'), 'plain');
});
