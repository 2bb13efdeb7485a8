import { pino, type Logger } from 'pino';
import { MemoryBus } from '../../sidecar/src/bus/memory-bus.js';
import { NatsBus, type NatsBusOptions } from '../../sidecar/src/bus/nats-bus.js';
import { DEFAULT_SUBJECT_PREFIX } from '../../sidecar/src/bus/subject.js';

/** Logger for buses under test: silent unless KG_TEST_LOG is set (e.g. KG_TEST_LOG=debug). */
export function testLogger(): Logger {
  return pino({ level: process.env['KG_TEST_LOG'] ?? 'silent' });
}

/** A NatsBus with test-friendly timings: no linger and quick retries. */
export function newNatsBus(url: string, overrides: Partial<NatsBusOptions> = {}): NatsBus {
  return new NatsBus({
    servers: [url],
    subjectPrefix: DEFAULT_SUBJECT_PREFIX,
    lingerMs: 0,
    reconnectWaitMs: 100,
    connectTimeoutMs: 2000,
    pingIntervalMs: 10_000,
    name: 'kong-grip-test',
    log: testLogger(),
    ...overrides,
  });
}

export function newMemoryBus(options: { lingerMs?: number; deferDelivery?: boolean } = {}): MemoryBus {
  return new MemoryBus({ log: testLogger(), ...options });
}
