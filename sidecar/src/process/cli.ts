#!/usr/bin/env node
import cluster from 'node:cluster';
import { runPrimary, runWorker } from './cluster.js';
import { loadConfig, readArgs, USAGE } from '../config.js';
import { isKgError } from '../errors.js';
import { createLogger } from '../log.js';
import { startSidecar } from '../sidecar.js';
import { limitYoungGeneration } from './young-generation.js';

// grip-sidecar: parse flags, env and file into a Config, start, stop cleanly on signals. With
// --workers N > 1 this process becomes the cluster primary and each worker runs this file again.
// Exit status: 2 for an invalid configuration, 1 when start-up fails (a port that cannot be
// bound, named with the option that sets it), 0 after a clean stop.

function fail(message: string, code: number): void {
  process.stderr.write(`grip-sidecar: ${message}\n`);
  process.exitCode = code;
}

async function main(): Promise<void> {
  // Before anything is allocated: the young generation stays small (young-generation.ts).
  limitYoungGeneration();
  const argv = process.argv.slice(2);
  let config;
  try {
    // --help wins even next to mistakes; the mistakes are reported with every other problem.
    if (readArgs(argv).help) {
      process.stdout.write(USAGE);
      return;
    }
    config = loadConfig({ argv });
  } catch (err) {
    if (isKgError(err, 'KG_ERR_CONFIG_INVALID')) {
      fail(err.message, 2);
      return;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  if (config.workers > 1 && cluster.isWorker) {
    await runWorker(config, log);
    return;
  }
  let sidecar: { close(): Promise<void> } | undefined;
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    (sidecar?.close() ?? Promise.resolve()).then(() => process.exit(0), () => process.exit(1));
  };
  try {
    sidecar = config.workers > 1
      ? await runPrimary(config, log, (message) => {
        // A worker could not bind the listen port: stop everything rather than serve half.
        fail(message, 1);
        (sidecar?.close() ?? Promise.resolve()).finally(() => process.exit(1));
      })
      : await startSidecar({ config, log });
  } catch (err) {
    // Nothing may keep serving after a failed start (a client port without its control port).
    fail(err instanceof Error ? err.message : String(err), 1);
    process.exit(1);
  }
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  fail(err instanceof Error ? err.message : String(err), 1);
  process.exit(1);
});
