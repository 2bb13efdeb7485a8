// Runs the bench's scenarios against one proxy in a test: origin in-process, one client agent.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentPool } from '../../bench/agent-pool.js';
import { startOrigin, type RunningOrigin } from '../../bench/origin.js';
import type { Metric, ScenarioContext } from '../../bench/scenarios/types.js';
import type { StartTarget, Target } from '../../bench/target.js';

export interface BenchRig {
  origin: RunningOrigin;
  target: Target;
  agents: AgentPool;
  ctx: ScenarioContext;
  close(): Promise<void>;
}

export async function startBenchRig(start: StartTarget, agentCount = 1): Promise<BenchRig> {
  const workDir = mkdtempSync(join(tmpdir(), 'kgb-test-'));
  const origin = await startOrigin();
  let target: Target | undefined;
  let agents: AgentPool | undefined;
  try {
    target = await start({ originPort: origin.port, sigKey: 'test-sig-key', workDir });
    agents = await AgentPool.start(agentCount);
  } catch (err) {
    await target?.stop();
    await origin.close();
    throw err;
  }
  const ctx: ScenarioContext = {
    target,
    agents,
    originStats: async () => origin.stats(),
    srcAddrs: [],
    window: 20,
    log: () => {},
  };
  return {
    origin,
    target,
    agents,
    ctx,
    close: async () => {
      await agents.stop();
      await target.stop();
      await origin.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export function metric(metrics: Metric[], key: string): number {
  const m = metrics.find((x) => x.key === key);
  if (!m) throw new Error(`no metric ${key} in ${metrics.map((x) => x.key).join(', ')}`);
  return m.value;
}
