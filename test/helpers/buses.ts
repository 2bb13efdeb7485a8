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

/**
 * Resolves as `wait` does, or fails naming `what` once `deadlineMs` pass: a wait that cannot
 * end otherwise fails on its own deadline, with a message, not at ava's 60 s timeout.
 */
export async function within<T>(what: string, wait: Promise<T>, deadlineMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)), deadlineMs);
  });
  try {
    return await Promise.race([wait, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
