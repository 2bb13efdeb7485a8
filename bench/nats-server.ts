import type { ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { spawnWithMaxFiles } from './proc.js';

// A real nats-server for the tests and the bench: started on free ports (the first start lets the
// server pick them, so there is no race with other processes), stopped, killed and restarted on
// the same ports, with its monitoring endpoint readable. Readiness is the server's own "Server is
// ready" log line followed by a TCP probe that reads the INFO line, never a sleep. It runs with
// the highest open-files limit allowed, as the bench's cluster mode needs.

/** NATS_SERVER_BIN, else the Debian package's binary, else whatever `nats-server` is on PATH. */
export const NATS_SERVER_BIN = process.env['NATS_SERVER_BIN']
  ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');

export interface NatsServerOptions {
  /** Enable JetStream with a temporary store directory (kept across restarts). */
  jetstream?: boolean;
  /** Also append the server's log to this file (the bench keeps it in the job's work dir). */
  logFile?: string;
}

export interface SubszEntry {
  subject: string;
  sid: string;
  msgs: number;
  cid: number;
}

export class NatsServer {
  port = 0;
  monitorPort = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private storeDir: string | undefined;
  private log = '';

  private constructor(private readonly options: NatsServerOptions) {}

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const server = new NatsServer(options);
    if (options.jetstream) server.storeDir = await mkdtemp(join(tmpdir(), 'kong-grip-nats-'));
    await server.launch();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** The process id while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== undefined;
  }

  /** The server's log so far (for failure messages). */
  get output(): string {
    return this.log;
  }

  private async launch(): Promise<void> {
    const args = ['-a', '127.0.0.1', '-p', String(this.port || -1), '-m', String(this.monitorPort || -1)];
    if (this.storeDir !== undefined) args.push('-js', '-sd', this.storeDir);
    const child = spawnWithMaxFiles(NATS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => {
      this.log += chunk.toString('utf8');
      if (this.options.logFile !== undefined) appendFileSync(this.options.logFile, chunk);
    });
    this.exited = once(child, 'exit').then(() => {
      if (this.child === child) this.child = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      const onData = (chunk: Buffer): void => {
        buffered += chunk.toString('utf8');
        const client = /Listening for client connections on [^\s]+:(\d+)/.exec(buffered);
        if (client?.[1] !== undefined) this.port = Number(client[1]);
        const monitor = /Starting http monitor on [^\s]+:(\d+)/.exec(buffered);
        if (monitor?.[1] !== undefined) this.monitorPort = Number(monitor[1]);
        if (buffered.includes('Server is ready')) {
          cleanup();
          resolve();
        }
      };
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`nats-server exited (${code}) before it was ready:\n${this.log}`));
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new Error(`cannot start ${NATS_SERVER_BIN}: ${err.message}`));
      };
      const cleanup = (): void => {
        child.stderr!.off('data', onData);
        child.off('exit', onExit);
        child.off('error', onError);
      };
      child.stderr!.on('data', onData);
      child.on('exit', onExit);
      child.on('error', onError);
    });
    await probe(this.port);
  }

  /** Stops the server: SIGTERM is a clean shutdown, SIGKILL a crash. Resolves once it has exited. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill(signal);
    await this.exited;
  }

  /** Starts again on the same client and monitoring ports (and the same JetStream store). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** GET a monitoring endpoint (`/subsz?subs=1`, `/connz?subs=1`, `/varz`) as JSON. */
  async monitor<T = Record<string, unknown>>(path: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.monitorPort}${path}`);
    if (!res.ok) throw new Error(`nats monitoring ${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  /** Every client subscription the server holds (from /subsz?subs=1). */
  async subscriptions(): Promise<SubszEntry[]> {
    const body = await this.monitor<{ subscriptions_list?: SubszEntry[] }>('/subsz?subs=1&limit=100000');
    return body.subscriptions_list ?? [];
  }

  /** The subjects subscribed by clients, sorted, one entry per subscription. */
  async subjects(): Promise<string[]> {
    return (await this.subscriptions()).map((s) => s.subject).sort();
  }

  /** Stops the server and removes its store directory. */
  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.storeDir !== undefined) await rm(this.storeDir, { recursive: true, force: true });
  }
}

/** Resolves once a TCP connection to the port receives the server's INFO line. */
async function probe(port: number): Promise<void> {
  const socket = connectTcp({ host: '127.0.0.1', port });
  try {
    let received = '';
    for await (const chunk of socket) {
      received += (chunk as Buffer).toString('latin1');
      if (received.startsWith('INFO ')) return;
      if (received.length >= 5) break;
    }
    throw new Error(`port ${port} did not answer with a NATS INFO line (got ${JSON.stringify(received)})`);
  } finally {
    socket.destroy();
  }
}
