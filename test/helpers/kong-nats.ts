import test from 'ava';
import { NatsServer } from './nats-server.js';

// Kong mode needs NATS with JetStream (the fleet-wide handoff nonce store). One nats-server -js
// per test file, started on first use and stopped after the file's tests. Call useKongNats() at
// the top level of a test file (it registers the after hook), then `await nats()` in a test.

export function useKongNats(): () => Promise<NatsServer> {
  let server: Promise<NatsServer> | undefined;
  test.after.always(async () => {
    if (server !== undefined) await (await server).dispose();
  });
  return () => (server ??= NatsServer.start({ jetstream: true }));
}
