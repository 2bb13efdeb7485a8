import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

// The sidecar's V8 young generation (the nursery) may grow to 2 × 4 MiB, not V8's 2 × 16 MiB,
// and is scavenged on the main thread alone.
//
// Why: V8 doubles the nursery, from 2 × 1 MiB up to 2 × 16 MiB, whenever much of what it scavenges
// survives. Opening held connections is exactly that (every stream's state lives on), so after a
// few thousand connections the nursery had grown to its maximum and stayed there: about 30 MiB of
// pages for short-lived garbage, 3–6 KB of the 11–14 KB each connection cost in RSS at 5,000
// held streams (bench/README.md, "Where the bytes go"). A smaller nursery is scavenged more often,
// also in the middle of a fan-out; a parallel scavenge then waits for helper threads, and on a
// machine whose cores are busy (here: with the clients) that wait raised the SSE fan-out p99 at
// 1,000 streams. Scavenged on the main thread alone it was even with V8's defaults in most runs
// (bench/README.md has the figures, and the runs that were not).
//
// How: V8 takes the nursery's maximum (--max-semi-space-size) only before the heap is set up,
// which only a `node` command line can do. It reads --semi-space-growth-factor each time it
// would grow the nursery, though, and --parallel-scavenge at each scavenge, so the CLI (every
// launch: the bin, `node cli.js`, the Docker image, cluster workers) sets the latter off at once
// and, watching the collections, the growth factor to 1 once the nursery has reached the size
// below. An operator who sets either on the command line or in NODE_OPTIONS keeps their own.

/** The nursery's size (both semi-spaces) at which it stops growing. */
export const MAX_NURSERY_BYTES = 2 * 4 * 2 ** 20;

/** --max-semi-space-size, --min-semi-space-size, --semi-space-growth-factor (V8 takes _ for - too). */
const OPERATOR_FLAG = /--(max-|min-)?semi-space-(size|growth-factor)/;

/** --parallel-scavenge, --no-parallel-scavenge. */
const OPERATOR_SCAVENGE_FLAG = /--(no-)?parallel-scavenge/;

function givenByOperator(flag: RegExp, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, nodeOptions ?? ''].some((arg) => flag.test(arg.replaceAll('_', '-')));
}

/** True when the operator sized the young generation on the command line or in NODE_OPTIONS. */
export function youngGenerationSetByOperator(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return givenByOperator(OPERATOR_FLAG, execArgv, nodeOptions);
}

/** True when the operator chose parallel scavenging or not on the command line or in NODE_OPTIONS. */
export function scavengeSetByOperator(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return givenByOperator(OPERATOR_SCAVENGE_FLAG, execArgv, nodeOptions);
}

/** The nursery's current size: both semi-spaces. */
export function nurseryBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/**
 * Scavenges on the main thread alone, unless the operator chose; stops the nursery's growth once
 * it reaches `maxBytes` (checked after each collection), unless the operator sized it: true if it
 * will. `onLimited` runs when the growth has been stopped.
 */
export function limitYoungGeneration(
  options: { execArgv?: readonly string[]; nodeOptions?: string | undefined; maxBytes?: number; onLimited?: () => void } = {},
): boolean {
  const { execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS, maxBytes = MAX_NURSERY_BYTES } = options;
  if (!scavengeSetByOperator(execArgv, nodeOptions)) v8.setFlagsFromString('--no-parallel-scavenge');
  if (youngGenerationSetByOperator(execArgv, nodeOptions)) return false;
  const stopGrowth = (): boolean => {
    if (nurseryBytes() < maxBytes) return false;
    v8.setFlagsFromString('--semi-space-growth-factor=1');
    options.onLimited?.();
    return true;
  };
  if (stopGrowth()) return true;
  const observer = new PerformanceObserver(() => {
    if (stopGrowth()) observer.disconnect();
  });
  observer.observe({ entryTypes: ['gc'] });
  return true;
}
