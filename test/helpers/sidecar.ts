import { loadConfig } from '../../sidecar/src/config.js';
import type { Hub } from '../../sidecar/src/hub/hub.js';
import { createLogger } from '../../sidecar/src/log.js';
import { startSidecar, type Sidecar, type SidecarOptions } from '../../sidecar/src/sidecar.js';

export interface TestSidecar {
  sidecar: Sidecar;
  /** Client-facing URL for a path. */
  url(path: string): string;
  /** Base URL of the control port (publish API), with trailing slash. */
  controlUri: string;
  close(): Promise<void>;
}

/** A sidecar on free ports in this process, quiet unless KG_TEST_LOG is set. */
export async function startTestSidecar(
  overrides: Record<string, unknown>, extra: Omit<SidecarOptions, 'config'> = {},
): Promise<TestSidecar> {
  const config = loadConfig({
    env: {},
    overrides: { listen: '127.0.0.1:0', control: '127.0.0.1:0', workers: 1, logLevel: process.env['KG_TEST_LOG'] ?? 'silent', ...overrides },
  });
  const sidecar = await startSidecar({ config, log: createLogger(config.logLevel, process.stderr), ...extra });
  return {
    sidecar,
    url: (path) => `http://127.0.0.1:${sidecar.clientPort}${path}`,
    controlUri: `http://127.0.0.1:${sidecar.controlPort}/`,
    close: () => sidecar.close(),
  };
}

/**
 * Resolves once `channel` has `count` local subscribers (checked each turn of the event loop);
 * rejects, naming the channel and what it has, if that has not happened within `deadlineMs`.
 */
export async function waitForSubscribers(hub: Hub, channel: string, count: number, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (hub.subscriberCount(channel) !== count) {
    if (Date.now() > until) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${count} subscriber(s) on ${JSON.stringify(channel)} (it has ${hub.subscriberCount(channel)})`);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}
