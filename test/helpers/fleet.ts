import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../sidecar/src/log.js';
import { waitForReadiness } from './nats-e2e.js';
import { SidecarProcess } from './sidecar-process.js';

// Pieces shared by the fleet tests (several sidecar processes on one NATS).

interface Teardown {
  teardown(fn: () => Promise<void> | void): void;
}

/**
 * `count` sidecar processes with the same arguments, started one after the other (clusters
 * starting at once on a busy machine start slowly), each stopped at the end even when another
 * failed to start, and killed if the test worker exits without teardowns (an ava timeout).
 * Resolves once every one is ready (/readyz).
 */
export async function startFleet(t: Teardown, args: string[], options: { yaml?: string; count?: number } = {}): Promise<SidecarProcess[]> {
  const started: Array<{ side?: SidecarProcess; failure?: unknown }> = [];
  for (let i = 0; i < (options.count ?? 2); i++) {
    started.push(await SidecarProcess.start(args, options.yaml === undefined ? {} : { yaml: options.yaml })
      .then((side) => ({ side }), (failure: unknown) => ({ failure })));
  }
  for (const { side } of started) {
    if (side === undefined) continue;
    t.teardown(() => side.stop().then(() => undefined));
    process.once('exit', () => { try { process.kill(side.pid, 'SIGKILL'); } catch { /* already gone */ } });
  }
  const sides = started.map(({ side, failure }) => { if (side === undefined) throw failure; return side; });
  await Promise.all(sides.map((side) => waitForReadiness(side, true)));
  return sides;
}

/** A logger that keeps its JSON lines in `lines`. */
export function captureLog(lines: Array<Record<string, unknown>>): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return createLogger('info', sink);
}
