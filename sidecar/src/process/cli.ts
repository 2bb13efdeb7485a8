#!/usr/bin/env node
import cluster from 'node:cluster';
import { runPrimary, runWorker } from './cluster.js';
import { loadConfig, parseArgs, USAGE } from '../config.js';
import { isKgError } from '../errors.js';
import { createLogger } from '../log.js';
import { startSidecar } from '../sidecar.js';

// grip-sidecar: parse flags, env and file into a Config, start, stop cleanly on signals. With
// --workers N > 1 this process becomes the cluster primary and each worker runs this file again.

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let config;
  try {
    if (parseArgs(argv).help) {
      process.stdout.write(USAGE);
      return;
    }
    config = loadConfig({ argv });
  } catch (err) {
    if (isKgError(err, 'KG_ERR_CONFIG_INVALID')) {
      process.stderr.write(`grip-sidecar: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  if (config.workers > 1 && cluster.isWorker) {
    await runWorker(config, log);
    return;
  }
  const sidecar = config.workers > 1 ? await runPrimary(config, log) : await startSidecar({ config, log });
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    sidecar.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`grip-sidecar: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
