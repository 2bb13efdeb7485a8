// The orchestrator's side of the client agents: spawns them, sends commands, splits work.

import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AgentCommand, AgentReply } from './agent-protocol.js';
import { spawnWithMaxFiles, stopProcess } from './proc.js';

const AGENT_SCRIPT = fileURLToPath(new URL('./agent.ts', import.meta.url));

class Agent {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(readonly child: ChildProcess) {
    child.on('message', (raw: unknown) => {
      const msg = raw as AgentReply;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`agent: ${msg.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`agent exited (code ${code}, signal ${signal})`));
      this.pending.clear();
    });
  }

  send<T>(cmd: AgentCommand): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, ...cmd });
    });
  }
}

export class AgentPool {
  private constructor(private readonly agents: Agent[]) {}

  static async start(count: number): Promise<AgentPool> {
    const agents = Array.from({ length: count }, () => {
      const child = spawnWithMaxFiles(process.execPath, ['--import', 'tsx', AGENT_SCRIPT], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      return new Agent(child);
    });
    await Promise.all(
      agents.map(
        (a) =>
          new Promise<void>((resolve, reject) => {
            a.child.once('spawn', () => resolve());
            a.child.once('error', reject);
          }),
      ),
    );
    return new AgentPool(agents);
  }

  get size(): number {
    return this.agents.length;
  }

  /** Sends the same command to every agent. */
  all<T>(cmd: AgentCommand): Promise<T[]> {
    return Promise.all(this.agents.map((a) => a.send<T>(cmd)));
  }

  /** Sends `make(share)` to every agent, splitting `total` as evenly as possible. */
  split<T>(total: number, make: (share: number, agentIndex: number) => AgentCommand): Promise<T[]> {
    const n = this.agents.length;
    return Promise.all(
      this.agents.map((a, i) => {
        const share = Math.floor(total / n) + (i < total % n ? 1 : 0);
        return a.send<T>(make(share, i));
      }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.agents.map(async (a) => {
        if (a.child.connected) a.child.disconnect();
        await stopProcess(a.child, 3000);
      }),
    );
  }
}
