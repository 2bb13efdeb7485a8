// The nats-server helper lives in bench/ (the bench runs it too); tests import it from here.
export { NATS_SERVER_BIN, NatsServer, type NatsServerOptions, type SubszEntry } from '../../bench/nats-server.js';
export { waitUntil } from '../../bench/proc.js';
