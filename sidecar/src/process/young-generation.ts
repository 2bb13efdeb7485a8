import v8 from 'node:v8';

// The sidecar's V8 young generation is kept at its initial size (two 1 MiB semi-spaces).
//
// Why: V8 doubles the young generation, up to 2 × 16 MiB, whenever much of what it scavenges
// survives. Opening held connections is exactly that (every stream's state lives on), so after
// a few thousand connections the young generation has grown to its maximum and stays there:
// about 30 MiB of pages that hold only short-lived garbage. At 5,000 held streams that was
// 5–6 KB of the 11–14 KB each connection cost in RSS (bench/README.md, "Where the bytes go").
// A held connection's state is promoted to old space within two scavenges either way; what the
// larger nursery saves is scavenges, and for this workload (small, short-lived objects per
// delivery, long-lived ones per connection) the scavenges of a 1 MiB semi-space are short.
//
// How: --semi-space-growth-factor=1 set at run time. V8 reads it each time it would grow the
// young generation, unlike --max-semi-space-size, which only counts before the heap is set up
// (so the CLI can apply it to every launch: the bin, `node cli.js`, the Docker image, cluster
// workers). An operator who sets the young generation's size or growth on the command line or
// in NODE_OPTIONS keeps their own setting.

/** --max-semi-space-size, --min-semi-space-size, --semi-space-growth-factor (V8 takes _ for - too). */
const OPERATOR_FLAG = /--(max-|min-)?semi-space-(size|growth-factor)/;

/** True when the operator sized the young generation on the command line or in NODE_OPTIONS. */
export function youngGenerationSetByOperator(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, nodeOptions ?? ''].some((arg) => OPERATOR_FLAG.test(arg.replaceAll('_', '-')));
}

/** Keeps the young generation at its initial size, unless the operator sized it; true if applied. */
export function limitYoungGeneration(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS): boolean {
  if (youngGenerationSetByOperator(execArgv, nodeOptions)) return false;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  return true;
}
