import test from 'ava';
import { serverCredentials } from '../../../sidecar/src/bus/nats-connection.js';
import { redact } from '../../../sidecar/src/bus/nats-log.js';

// Credentials in the server URLs (nats.js ignores user info, so the connection takes it out).

test('user and password in a server URL become the connection\'s credentials, and leave the URLs', (t) => {
  t.deepEqual(serverCredentials(['nats://sidecar:s%40cret@10.0.0.1:4222', 'nats://10.0.0.2:4222']), {
    servers: ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222'],
    credentials: { user: 'sidecar', pass: 's@cret' },
  });
});

test('a lone user info is a token; URLs without one stay as they are', (t) => {
  t.deepEqual(serverCredentials(['tls://t0ken@nats.example:4222']), { servers: ['tls://nats.example:4222'], credentials: { token: 't0ken' } });
  t.deepEqual(serverCredentials(['nats://127.0.0.1:4222', '127.0.0.1:4223']), { servers: ['nats://127.0.0.1:4222', '127.0.0.1:4223'], credentials: {} });
});

test('the first URL with user info gives the credentials for all servers', (t) => {
  const { servers, credentials } = serverCredentials(['nats://a:1@h1:4222', 'nats://b:2@h2:4222']);
  t.deepEqual(servers, ['nats://h1:4222', 'nats://h2:4222']);
  t.deepEqual(credentials, { user: 'a', pass: '1' });
  t.deepEqual(redact(['nats://a:1@h1:4222']), ['nats://h1:4222']);
});
