import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SIDECAR_CLI_SOURCE } from './kong-grip.js';
import { withDeadline } from './proc.js';

// A grip-sidecar as its own OS process (the CLI, run through tsx), for tests and benches that need
// several sidecars or worker processes. It listens on free ports; the ports are read from its
// "sidecar started" log line, so start() resolves on that event.

// Temporary config files are removed when this process exits.
const tempDirs: string[] = [];
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to a fresh sidecar.yml and returns its path. */
export function writeTempYaml(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
  tempDirs.push(dir);
  const path = join(dir, 'sidecar.yml');
  writeFileSync(path, text);
  return path;
}

export interface LogLine {
  msg?: string;
  level?: number;
  [field: string]: unknown;
}

export class SidecarProcess {
  clientPort = 0;
  controlPort = 0;
  readonly lines: LogLine[] = [];
  private stderrText = '';
  private waiters: Array<() => void> = [];

  private constructor(private readonly child: ChildProcess) {}

  /**
   * Starts the CLI with these flags (plus free ports) and an optional YAML config file body.
   * Logs at info unless overridden, since the start line is how the ports are learnt.
   */
  static async start(args: string[], options: { yaml?: string; env?: Record<string, string> } = {}): Promise<SidecarProcess> {
    const all = ['--listen', '127.0.0.1:0', '--control', '127.0.0.1:0', '--log-level', 'info', ...args];
    if (options.yaml !== undefined) {
      const file = writeTempYaml(options.yaml);
      all.push('--config', file);
    }
    const child = spawn(process.execPath, ['--import', 'tsx', SIDECAR_CLI_SOURCE, ...all], {
      env: { PATH: process.env['PATH'] ?? '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const side = new SidecarProcess(child);
    side.capture();
    // A start that fails or times out must not leave the process (and, with --workers, its
    // workers, which leave with it) running after the test.
    const started = await side.waitForLog((l) => l.msg === 'sidecar started').catch((err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    });
    const listen = String(started['listen']);
    const control = String(started['control']);
    side.clientPort = Number(listen.slice(listen.lastIndexOf(':') + 1));
    side.controlPort = Number(control.slice(control.lastIndexOf(':') + 1));
    return side;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.clientPort}${path}`;
  }

  get controlUri(): string {
    return `http://127.0.0.1:${this.controlPort}/`;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  private capture(): void {
    let partial = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ msg: line });
        }
        if (process.env['KG_TEST_LOG']) process.stderr.write(`[sidecar ${this.pid}] ${line}\n`);
      }
      this.wake();
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderrText += chunk;
    });
    this.child.once('exit', () => this.wake());
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves with the first log line matching `match` (past or future); rejects if the process
   * exits first, or if no such line has come within `deadlineMs`.
   */
  async waitForLog(match: (line: LogLine) => boolean, deadlineMs = 30_000): Promise<LogLine> {
    const found = async (): Promise<LogLine> => {
      for (;;) {
        const line = this.lines.find(match);
        if (line !== undefined) return line;
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          throw new Error(`sidecar exited (${this.child.exitCode ?? this.child.signalCode}) before the expected log line.\nstderr: ${this.stderrText}\nstdout: ${JSON.stringify(this.lines.slice(-10))}`);
        }
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    };
    return withDeadline(found(), deadlineMs, () => `sidecar ${this.pid} to log a line matching ${match.toString()}; last lines: ${JSON.stringify(this.lines.slice(-10))}`);
  }

  /** Sends a signal (SIGKILL: a crash; SIGTERM: a drain) without waiting. */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  async exited(): Promise<number | string | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode ?? this.child.signalCode;
    const [code, signal] = (await once(this.child, 'exit')) as [number | null, string | null];
    return code ?? signal;
  }

  /** Stops it with SIGTERM (a clean shutdown) and resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    return code;
  }
}
