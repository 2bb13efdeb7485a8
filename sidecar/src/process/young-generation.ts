import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

// The sidecar's V8 young generation (the nursery) may grow to 2 × 4 MiB, not V8's 2 × 16 MiB.
//
// Why: V8 doubles the nursery, from 2 × 1 MiB up to 2 × 16 MiB, whenever much of what it scavenges
// survives. Opening held connections is exactly that (every stream's state lives on), so after a
// few thousand connections the nursery had grown to its maximum and stayed there: about 30 MiB of
// pages for short-lived garbage, 3–6 KB of the 11–14 KB each connection cost in RSS at 5,000
// held streams (bench/README.md, "Where the bytes go"). Kept at 2 × 1 MiB, the fan-out's own
// garbage is scavenged mid-fan-out and its p99 at 1,000 streams rose; 2 × 4 MiB keeps most of
// the saving.
//
// How: V8 takes the nursery's maximum (--max-semi-space-size) only before the heap is set up,
// which only a `node` command line can do. It reads --semi-space-growth-factor each time it
// would grow the nursery, though, so the CLI (every launch: the bin, `node cli.js`, the Docker
// image, cluster workers) watches the scavenges and sets that factor to 1 once the nursery has
// reached the size above. An operator who sizes the nursery on the command line or in
// NODE_OPTIONS keeps their own setting.

/** The nursery's size (both semi-spaces) at which it stops growing. */
export const MAX_NURSERY_BYTES = 2 * 4 * 2 ** 20;

/** --max-semi-space-size, --min-semi-space-size, --semi-space-growth-factor (V8 takes _ for - too). */
const OPERATOR_FLAG = /--(max-|min-)?semi-space-(size|growth-factor)/;

/** True when the operator sized the young generation on the command line or in NODE_OPTIONS. */
export function youngGenerationSetByOperator(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, nodeOptions ?? ''].some((arg) => OPERATOR_FLAG.test(arg.replaceAll('_', '-')));
}

/** The nursery's current size: both semi-spaces. */
export function nurseryBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/**
 * Stops the nursery's growth once it reaches `maxBytes` (checked after each collection), unless
 * the operator sized it; true if it will. `onLimited` runs when the growth has been stopped.
 */
export function limitYoungGeneration(
  options: { execArgv?: readonly string[]; nodeOptions?: string | undefined; maxBytes?: number; onLimited?: () => void } = {},
): boolean {
  const { execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS, maxBytes = MAX_NURSERY_BYTES } = options;
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
