// CPU time per process over an interval (from /proc), to name what was busy during the storm:
// the proxy's processes, nats-server, the origin, the client agents; and the RSS of a set of
// processes, for sampling often without walking all of /proc each time. Linux only.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { processTree } from './proc.js';

/** Units of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

export interface ProcessCpu {
  pid: number;
  /** The program and its script, e.g. `node cli.js`, `nats-server`. */
  name: string;
  cpuMs: number;
}

/** CPU used so far by `rootPid` and every descendant. */
export function cpuByProcess(rootPid: number): Map<number, ProcessCpu> {
  const out = new Map<number, ProcessCpu>();
  for (const pid of processTree(rootPid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cpuMs = ((Number(after[11]) + Number(after[12])) * 1000) / USER_HZ;
      out.set(pid, { pid, name: processName(readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')), cpuMs });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The program's base name and, for an interpreter, the first script it runs. */
export function processName(argv: string[]): string {
  const program = basename(argv[0] ?? '?');
  const script = argv.slice(1).find((a) => /\.(ts|js|mjs)$/.test(a));
  return script === undefined ? program : `${program} ${basename(script)}`;
}

/** What each process used between two readings, busiest first (processes gone by `to` left out). */
export function cpuBetween(from: Map<number, ProcessCpu>, to: Map<number, ProcessCpu>): ProcessCpu[] {
  const out: ProcessCpu[] = [];
  for (const [pid, p] of to) out.push({ ...p, cpuMs: p.cpuMs - (from.get(pid)?.cpuMs ?? 0) });
  return out.sort((a, b) => b.cpuMs - a.cpuMs);
}

/** Sum of VmRSS over these processes, in bytes (those gone meanwhile count 0). */
export function rssOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}
