// A private nats-server for the sidecar's cluster mode (`--nats URL --workers N`): on a free
// port, logging into the job's work dir, stopped with the sidecar. Only core NATS (no JetStream):
// the bench measures live fan-out, not history.

import { existsSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnWithMaxFiles, stopProcess, waitForPort } from './proc.js';

/** NATS_SERVER_BIN, else the Debian package's binary, else `nats-server` on PATH. */
export const NATS_SERVER_BIN = process.env['NATS_SERVER_BIN'] ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');

export interface RunningNatsServer {
  url: string;
  pid: number;
  logPath: string;
  stop(): Promise<void>;
}

export async function startNatsServer(workDir: string): Promise<RunningNatsServer> {
  const port = await freePort();
  const logPath = join(workDir, 'nats-server.log');
  const fd = openSync(logPath, 'a');
  const child = spawnWithMaxFiles(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', fd, fd], cwd: workDir });
  closeSync(fd); // the child has its own copy
  const isAlive = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = (): Promise<void> => stopProcess(child, 5000);
  try {
    await new Promise<void>((res, rej) => {
      child.once('spawn', () => res());
      child.once('error', (err) => rej(new Error(`cannot start ${NATS_SERVER_BIN}: ${err.message}`)));
    });
    await waitForPort(port, 10_000, isAlive);
  } catch (err) {
    await stop();
    throw new Error(`nats-server did not start (log: ${logPath}): ${(err as Error).message}`);
  }
  return { url: `nats://127.0.0.1:${port}`, pid: child.pid!, logPath, stop };
}
