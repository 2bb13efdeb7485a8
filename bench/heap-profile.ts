// Where the bytes of a held connection go: the sidecar (built, standalone, as the bench runs it)
// with N held SSE streams, then N held WebSockets, each on a fresh process. For each transport
// it prints, per connection:
//   - RSS delta, as the fan-out scenario measures it (settled RSS with N held − before, ÷ N);
//   - V8 heap committed (heapTotal) and used before any forced collection;
//   - live heap: heapUsed after the full collection a heap snapshot forces;
//   - heap slack: committed heap that is not live (young generation, old space not yet collected);
//   - native: RSS outside the V8 heap (sockets, libuv handles, HTTP parsers, Buffers' backing
//     stores, malloc arenas), i.e. RSS delta − heapTotal delta;
//   - the live heap by object kind (constructor or V8 type) from heap snapshots taken with N held
//     and at the baseline, as count and bytes per connection.
//
//   npm run build && npx tsx bench/heap-profile.ts [--n 5000] [--kinds sse,ws] [--top 30]
//     [--cli sidecar/dist/process/cli.js] [--node-arg FLAG]…
//
// The snapshots (written by the sidecar on SIGUSR2 with --heapsnapshot-signal) go to a temporary
// directory, removed at the end unless --keep is given.

import { readdirSync, readFileSync, rmSync, statSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AgentPool } from './agent-pool.js';
import type { StreamKind } from './agent-protocol.js';
import { request } from './http-client.js';
import { startKongGrip, SIDECAR_CLI } from './kong-grip.js';
import { spawnWithMaxFiles, stopProcess, treeRssBytes } from './proc.js';
import { closeStreams, openStreams, settledRss, uniqueChannel, warmUp } from './scenarios/common.js';
import type { ScenarioContext } from './scenarios/types.js';
import type { Target } from './target.js';

// The origin does not sign; any key will do.
const SIG_KEY = 'bench-sig-key';

interface HeapFigures {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
}

/** Per kind of heap object: how many and their own (shallow) bytes. */
type KindTable = Map<string, { count: number; bytes: number }>;

interface Sample {
  figures: HeapFigures;
  /** heapUsed right after the snapshot's full collection. */
  liveHeap: number;
  kinds: KindTable;
  retainers: KindTable;
}

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '5000' },
    kinds: { type: 'string', default: 'sse,ws' },
    top: { type: 'string', default: '30' },
    cli: { type: 'string' },
    'node-arg': { type: 'string', multiple: true },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(values.n);
const TOP = Number(values.top);
const KINDS = values.kinds.split(',').map((k) => {
  if (k !== 'sse' && k !== 'ws') throw new Error(`--kinds: sse or ws, not ${k}`);
  return k as StreamKind;
});
if (!Number.isInteger(N) || N <= 0) throw new Error('--n: a positive integer');
if (!Number.isInteger(TOP) || TOP <= 0) throw new Error('--top: a positive integer');

const log = (line: string): void => console.error(`[heap-profile] ${line}`);

/** The heap figures prom-client's default metrics give on the control port. */
async function heapFigures(target: Target): Promise<HeapFigures> {
  const res = await request(target.publishPort, 'GET', '/metrics');
  const gauge = (name: string): number => {
    const m = new RegExp(`^${name} (\\S+)`, 'm').exec(res.body);
    if (m === null) throw new Error(`/metrics has no ${name}`);
    return Number(m[1]);
  };
  return {
    rss: treeRssBytes(target.rootPid),
    heapTotal: gauge('nodejs_heap_size_total_bytes'),
    heapUsed: gauge('nodejs_heap_size_used_bytes'),
    external: gauge('nodejs_external_memory_bytes'),
  };
}

/** Asks the sidecar for a heap snapshot (SIGUSR2) and waits until it is written whole. */
async function takeSnapshot(target: Target, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(target.rootPid, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('no heap snapshot within 2 minutes');
    await new Promise((r) => setTimeout(r, 500));
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (file === undefined) continue;
    const path = join(dir, file);
    const size = statSync(path).size;
    await new Promise((r) => setTimeout(r, 1000));
    if (statSync(path).size !== size) continue;
    // The sidecar answers again only once the snapshot (written on its main thread) is done.
    await request(target.publishPort, 'GET', '/healthz', undefined, 120_000);
    if (statSync(path).size === size) return path;
  }
}

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Kinds too general to say anything alone: also counted by what holds them (see retainedBy). */
const GENERIC_KINDS = new Set(['(array)', 'Array', 'Object', '(string)', '(concatenated string)', '(closure) native_bind', '(hidden) system', 'system / Context', '(number)']);

/**
 * Live objects by kind: "Constructor" for objects, "(closure) name", "(type)" for the rest; and
 * the generic kinds again by their first retainer ("(array) <- ServerResponse.properties").
 */
function kindsOf(path: string): { kinds: KindTable; retainers: KindTable } {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as SnapshotJson;
  const { node_fields: fields, node_types: nodeTypes, edge_fields: edgeFields, edge_types: edgeTypes } = snap.snapshot.meta;
  const types = nodeTypes[0];
  const stride = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const edgeCountAt = fields.indexOf('edge_count');
  const edgeStride = edgeFields.length;
  const edgeTypeAt = edgeFields.indexOf('type');
  const edgeNameAt = edgeFields.indexOf('name_or_index');
  const edgeToAt = edgeFields.indexOf('to_node');
  const nodeCount = snap.nodes.length / stride;
  const kindOf = (n: number): string => {
    const type = types[snap.nodes[n * stride + typeAt]!]!;
    const name = snap.strings[snap.nodes[n * stride + nameAt]!]!;
    if (type === 'object' || type === 'native') return name.length > 60 ? `${name.slice(0, 57)}...` : name;
    if (type === 'closure') return `(closure) ${name || 'anonymous'}`;
    if (type === 'hidden' || type === 'object shape') return `(${type}) ${name.split(' ')[0]}`;
    return `(${type})`;
  };
  // First strong retainer of every node: parent node and edge name.
  const parentOf = new Int32Array(nodeCount).fill(-1);
  const edgeOf = new Array<string>(nodeCount);
  for (let n = 0, e = 0; n < nodeCount; n++) {
    const edgeCount = snap.nodes[n * stride + edgeCountAt]!;
    for (let k = 0; k < edgeCount; k++, e += edgeStride) {
      const edgeType = edgeTypes[0][snap.edges[e + edgeTypeAt]!]!;
      if (edgeType === 'weak' || edgeType === 'shortcut') continue;
      const to = snap.edges[e + edgeToAt]! / stride;
      if (parentOf[to] !== -1) continue;
      parentOf[to] = n;
      const nameOrIndex = snap.edges[e + edgeNameAt]!;
      edgeOf[to] = edgeType === 'element' || edgeType === 'hidden' ? '[]' : (snap.strings[nameOrIndex] ?? '?');
    }
  }
  const kinds: KindTable = new Map();
  const retainers: KindTable = new Map();
  const add = (table: KindTable, key: string, bytes: number): void => {
    const entry = table.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += bytes;
    table.set(key, entry);
  };
  for (let n = 0; n < nodeCount; n++) {
    const kind = kindOf(n);
    const bytes = snap.nodes[n * stride + sizeAt]!;
    add(kinds, kind, bytes);
    if (GENERIC_KINDS.has(kind)) {
      const parent = parentOf[n]!;
      add(retainers, `${kind} <- ${parent === -1 ? '(root)' : `${kindOf(parent)}.${edgeOf[n]}`}`, bytes);
    }
  }
  return { kinds, retainers };
}

/** Waits until the sidecar holds no connection and its origin requests are done, plus a second. */
async function settleClosed(target: Target): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const body = (await request(target.publishPort, 'GET', '/metrics')).body;
    const active = /^kong_grip_client_connections\{state="active"\} (\S+)/m.exec(body);
    if (active !== null && Number(active[1]) === 0) break;
    if (Date.now() > deadline) throw new Error('connections still open a minute after the clients closed them');
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 2000));
}

async function sample(target: Target, dir: string): Promise<Sample> {
  const figures = await heapFigures(target);
  const snapshot = await takeSnapshot(target, dir);
  const liveHeap = (await heapFigures(target)).heapUsed;
  const { kinds, retainers } = kindsOf(snapshot);
  if (!values.keep) rmSync(snapshot);
  return { figures, liveHeap, kinds, retainers };
}

function printTable(title: string, held: KindTable, base: KindTable): void {
  const rows: { kind: string; count: number; bytes: number }[] = [];
  for (const [k, v] of held) {
    const b = base.get(k) ?? { count: 0, bytes: 0 };
    rows.push({ kind: k, count: v.count - b.count, bytes: v.bytes - b.bytes });
  }
  rows.sort((a, b) => b.bytes - a.bytes);
  const total = rows.reduce((s, r) => s + r.bytes, 0);
  console.log(`\n${title}; total ${(total / N).toFixed(0)} B:\n`);
  console.log(`${'kind'.padEnd(70)} ${'objects'.padStart(8)} ${'bytes'.padStart(8)}`);
  for (const r of rows.slice(0, TOP)) {
    console.log(`${r.kind.padEnd(70)} ${(r.count / N).toFixed(2).padStart(8)} ${(r.bytes / N).toFixed(0).padStart(8)}`);
  }
}

async function startOrigin(): Promise<{ port: number; stop(): Promise<void> }> {
  const child = spawnWithMaxFiles(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'origin.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((res, rej) => {
    lines.once('line', (line) => res((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => rej(new Error(`origin exited with code ${code}`)));
  });
  return { port, stop: () => stopProcess(child, 3000) };
}

const kb = (bytes: number): string => (bytes / N / 1024).toFixed(2).padStart(8);

async function profile(kind: StreamKind, originPort: number, agents: AgentPool, workDir: string): Promise<void> {
  const snapDir = mkdtempSync(join(workDir, `snap-${kind}-`));
  const target = await startKongGrip({
    originPort, sigKey: SIG_KEY, workDir, cli: values.cli ?? SIDECAR_CLI,
    nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapDir}`, ...(values['node-arg'] ?? [])],
  });
  try {
    const ctx: ScenarioContext = { target, agents, originStats: () => Promise.reject(new Error('unused')), srcAddrs: [], window: 100, log };
    // As the fan-out scenario: warm the code paths with 10 streams, then the baseline.
    const warmChannel = uniqueChannel(`warm-${kind}`);
    await openStreams(ctx, kind, warmChannel, 10);
    await warmUp(ctx, kind, warmChannel, 2);
    await closeStreams(ctx);
    const rssBefore = await settledRss(ctx);
    const base = await heapFigures(target);
    const channel = uniqueChannel(`heap-${kind}`);
    const opened = await openStreams(ctx, kind, channel, N);
    if (opened.opened !== N) throw new Error(`only ${opened.opened} of ${N} ${kind} streams opened`);
    await warmUp(ctx, kind, channel);
    const rssAfter = await settledRss(ctx);
    const held = await sample(target, snapDir);
    await closeStreams(ctx);
    // The baseline snapshot comes after the N have closed (a snapshot disturbs the RSS that
    // follows), once the sidecar has let go of them and has told the origin (WebSocket DISCONNECTs).
    await settleClosed(target);
    const after = await sample(target, snapDir);

    const label = kind === 'ws' ? 'WebSocket' : 'SSE';
    console.log(`\n## ${label}, N = ${N} (KB per connection)\n`);
    console.log(`RSS delta (as the bench measures it)      ${kb(rssAfter - rssBefore)}`);
    console.log(`V8 heap committed (heapTotal) delta       ${kb(held.figures.heapTotal - base.heapTotal)}`);
    console.log(`V8 heap used delta, before a full GC      ${kb(held.figures.heapUsed - base.heapUsed)}`);
    console.log(`  live objects (after full GC; closed ones as baseline) ${kb(held.liveHeap - after.liveHeap)}`);
    console.log(`  heap slack (committed, not live)        ${kb(held.figures.heapTotal - base.heapTotal - (held.liveHeap - after.liveHeap))}`);
    console.log(`native (RSS delta - heapTotal delta)      ${kb(rssAfter - rssBefore - (held.figures.heapTotal - base.heapTotal))}`);
    console.log(`  of which external (Buffers' stores)     ${kb(held.figures.external - base.external)}`);

    printTable(`Live heap objects by kind (snapshot with N held − after they closed), per connection`, held.kinds, after.kinds);
    printTable('The generic kinds by their first retainer, per connection', held.retainers, after.retainers);
  } finally {
    await target.stop();
  }
}

const workDir = mkdtempSync('/tmp/kg-heap-');
const origin = await startOrigin();
const agents = await AgentPool.start(2);
try {
  for (const kind of KINDS) {
    log(`${kind}: ${N} connections`);
    await profile(kind, origin.port, agents, workDir);
  }
} finally {
  await agents.stop();
  await origin.stop();
  if (!values.keep) rmSync(workDir, { recursive: true, force: true });
}
