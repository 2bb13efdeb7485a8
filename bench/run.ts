// The side-by-side benchmark: `npm run bench -- [options]`. Runs each scenario on Pushpin and
// on kong-grip in turn (a fresh proxy process for every scenario, the same origin process and
// client agents for both), prints a table of both with the ratio, and writes bench/RESULTS.md.
// Loopback only; every scenario has a deadline, and so does the whole run.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AgentPool } from './agent-pool.js';
import { request } from './http-client.js';
import { startKongGrip, startKongGripCluster } from './kong-grip.js';
import type { OriginStats } from './origin.js';
import { spawnWithMaxFiles, stopProcess, withDeadline } from './proc.js';
import { startFloorServer } from './floor-server.js';
import { median } from './wire/stats.js';
import { startPushpin } from './pushpin.js';
import { keptPart, pairRows, renderConsoleTable, renderResultsMarkdown, type SystemFigures } from './report.js';
import { runFanout } from './scenarios/fanout.js';
import { runHerd } from './scenarios/herd.js';
import { runPeak } from './scenarios/peak.js';
import { runScale, scaleBudgetMs, type ScaleParams } from './scenarios/scale.js';
import { runStorm, stormBudgetMs, type StormParams } from './scenarios/storm.js';
import { runStreamRate } from './scenarios/stream-rate.js';
import { startKongGripPair, startPushpinRestartable, type StormRig } from './storm-rig.js';
import { pluginServerMetrics } from './scenarios/plugin-server.js';
import { measurePluginServers } from './pluginserver.js';
import type { Metric, ScenarioContext, ScenarioResult } from './scenarios/types.js';
import type { StartTarget, Target } from './target.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SCENARIOS = ['sse', 'ws', 'herd', 'streams', 'peak', 'pluginserver', 'scale', 'storm'] as const;
type ScenarioName = (typeof SCENARIOS)[number];
/** What runs without --scenarios: everything but the long scale and storm runs. */
const DEFAULT_SCENARIOS: ScenarioName[] = ['sse', 'ws', 'herd', 'streams', 'peak', 'pluginserver'];
const SYSTEMS = ['pushpin', 'kong-grip'] as const;
type SystemName = (typeof SYSTEMS)[number];
/** The systems under test plus the floor (a bare node:http fan-out server, SSE fan-out only). */
type RunnerName = SystemName | 'floor';
const SIG_KEY = 'bench-sig-key';
/**
 * Connections per 127.0.0.x source address: every client connection goes to the same proxy
 * address and port, so each source address has one ephemeral port range (28,232 ports here).
 */
const CONNECTIONS_PER_SOURCE_ADDRESS = 20_000;
/**
 * Connections per client agent and per sidecar worker: each is one process, and the hard limit
 * of open files per process (20,000 here, not raisable without CAP_SYS_RESOURCE) caps what one
 * process holds. Workers get more headroom, since node:cluster's round-robin hands a new
 * connection to whichever worker is free first, which is not an exactly even split.
 */
const CONNECTIONS_PER_AGENT = 18_000;
const CONNECTIONS_PER_WORKER = 16_000;
/** Streams Pushpin's storm runs at: condure holds every client connection in one process (scale notes). */
const PUSHPIN_STORM_MAX = 15_000;

const USAGE = `npm run bench -- [options]
  --scenarios LIST     comma-separated: ${SCENARIOS.join(',')} (default: all but scale, storm)
  --systems LIST       comma-separated: ${SYSTEMS.join(',')} (default: both)
  --n LIST             connection counts: SSE fan-out runs once per value; ws, herd and streams
                       use the largest, peak the smallest (default: sse 1000,5000; others 5000;
                       peak 1000)
  --messages K         messages per fan-out run (default 5)
  --rounds R           long-poll herd rounds (default 5)
  --peak-messages K    messages in the peak-throughput run (default 500)
  --scale-n N          streams in the scale run (default 100000); kong-grip runs in cluster mode
                       with its own nats-server and --workers ceil(N / ${CONNECTIONS_PER_WORKER}) (at least 2)
  --scale-messages K   messages in the scale run (default 3)
  --storm-n N          streams in the storm run (default 20000; Pushpin's at most ${PUSHPIN_STORM_MAX});
                       kong-grip runs two sidecars, each --workers ceil(N / ${CONNECTIONS_PER_WORKER}) (at least 2)
  --storm-channels C   channels the storm's streams are spread over (default 100)
  --storm-rate R       items published per second during the storm, all channels (default 20)
  --agents A           client agent processes (default 2; a job of more than ${CONNECTIONS_PER_AGENT}
                       connections per agent gets more)
  --window W           connection attempts in flight per agent (default 100)
  --src-addrs LIST     client source addresses (default: 127.0.0.1, spread over 127.0.0.x
                       beyond ${CONNECTIONS_PER_SOURCE_ADDRESS} connections in a job)
  --kong-grip-arg ARG  extra argument for the sidecar CLI (repeatable)
  --kong-grip-node-arg ARG  extra node flag for the sidecar, e.g. --cpu-prof (repeatable)
  --pushpin-log-level L  Pushpin's log level (default 1 = warnings; 2 logs every request)
  --out FILE           results file (default bench/RESULTS.md; "-" to skip)
  --repeat R           run every scenario R times on each system, alternating, and report
                       the median of each figure (default 1)
  --skip-floor         do not run the SSE fan-out on the bare node:http floor server
  --max-minutes M      deadline for the whole run (default 30, plus the scale and storm runs' budgets)
  --keep-work          keep the temporary work directory (configs, logs)`;

interface Job {
  scenario: ScenarioName;
  name: string;
  /** Most client connections open at once (sizes the agents and source addresses). */
  connections: number;
  /** Deadline for one run of the job (default 5 minutes). */
  deadlineMs?: number;
  /** Starters that replace the usual ones for this job. */
  start?: Partial<Record<RunnerName, StartTarget>>;
  /** A line for the notes describing how the runner was set up, if it differs from the method. */
  setupNote?(runner: RunnerName, agents: number, srcAddrs: string[]): string | undefined;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

const JOB_DEADLINE_MS = 5 * 60_000;

function parseList(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function parsePositiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function parseCli(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenarios: { type: 'string' },
      systems: { type: 'string' },
      n: { type: 'string' },
      messages: { type: 'string' },
      rounds: { type: 'string' },
      'peak-messages': { type: 'string' },
      'scale-n': { type: 'string' },
      'scale-messages': { type: 'string' },
      'storm-n': { type: 'string' },
      'storm-channels': { type: 'string' },
      'storm-rate': { type: 'string' },
      agents: { type: 'string' },
      window: { type: 'string' },
      'src-addrs': { type: 'string' },
      'kong-grip-arg': { type: 'string', multiple: true },
      'kong-grip-node-arg': { type: 'string', multiple: true },
      'pushpin-log-level': { type: 'string' },
      out: { type: 'string' },
      'max-minutes': { type: 'string' },
      repeat: { type: 'string' },
      'skip-floor': { type: 'boolean' },
      'keep-work': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  const scenarios = (parseList(values.scenarios) ?? DEFAULT_SCENARIOS).map((s) => {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--scenarios: unknown scenario ${JSON.stringify(s)} (known: ${SCENARIOS.join(', ')})`);
    return s as ScenarioName;
  });
  const systems = (parseList(values.systems) ?? [...SYSTEMS]).map((s) => {
    if (!(SYSTEMS as readonly string[]).includes(s)) throw new Error(`--systems: unknown system ${JSON.stringify(s)} (known: ${SYSTEMS.join(', ')})`);
    return s as SystemName;
  });
  const n = parseList(values.n)?.map((v) => parsePositiveInt('n', v, 0));
  const scale: ScaleParams = {
    connections: parsePositiveInt('scale-n', values['scale-n'], 100_000),
    messages: parsePositiveInt('scale-messages', values['scale-messages'], 3),
  };
  const storm: StormParams = {
    clients: parsePositiveInt('storm-n', values['storm-n'], 20_000),
    channels: parsePositiveInt('storm-channels', values['storm-channels'], 100),
    ratePerS: parsePositiveInt('storm-rate', values['storm-rate'], 20),
  };
  const scaleMinutes =
    (scenarios.includes('scale') ? Math.ceil((systems.length * scaleBudgetMs(scale)) / 60_000) : 0) +
    (scenarios.includes('storm') ? Math.ceil((systems.length * stormBudgetMs(storm)) / 60_000) : 0);
  return {
    help: values.help ?? false,
    scenarios,
    systems,
    sseN: n ?? [1000, 5000],
    bigN: n ? Math.max(...n) : 5000,
    peakN: n ? Math.min(...n) : 1000,
    messages: parsePositiveInt('messages', values.messages, 5),
    rounds: parsePositiveInt('rounds', values.rounds, 5),
    peakMessages: parsePositiveInt('peak-messages', values['peak-messages'], 500),
    scale,
    storm,
    agents: parsePositiveInt('agents', values.agents, 2),
    window: parsePositiveInt('window', values.window, 100),
    srcAddrs: parseList(values['src-addrs']),
    kongGripArgs: values['kong-grip-arg'] ?? [],
    kongGripNodeArgs: values['kong-grip-node-arg'] ?? [],
    pushpinLogLevel: values['pushpin-log-level'] === undefined ? 1 : parsePositiveInt('pushpin-log-level', values['pushpin-log-level'], 1),
    out: values.out ?? join(HERE, 'RESULTS.md'),
    maxMinutes: parsePositiveInt('max-minutes', values['max-minutes'], 30 + scaleMinutes),
    repeat: parsePositiveInt('repeat', values.repeat, 1),
    floor: !(values['skip-floor'] ?? false),
    keepWork: values['keep-work'] ?? false,
  };
}

type Options = ReturnType<typeof parseCli>;

function buildJobs(o: Options): Job[] {
  const jobs: Job[] = [];
  for (const s of o.scenarios) {
    switch (s) {
      case 'sse':
        for (const n of o.sseN) jobs.push({ scenario: s, name: `sse-${n}`, connections: n, run: (ctx) => runFanout(ctx, { kind: 'sse', clients: n, messages: o.messages }) });
        break;
      case 'ws':
        jobs.push({ scenario: s, name: `ws-${o.bigN}`, connections: o.bigN, run: (ctx) => runFanout(ctx, { kind: 'ws', clients: o.bigN, messages: o.messages }) });
        break;
      case 'herd':
        jobs.push({ scenario: s, name: `herd-${o.bigN}`, connections: o.bigN, run: (ctx) => runHerd(ctx, { clients: o.bigN, rounds: o.rounds }) });
        break;
      case 'streams':
        jobs.push({ scenario: s, name: `streams-${o.bigN}`, connections: o.bigN, run: (ctx) => runStreamRate(ctx, { streams: o.bigN }) });
        break;
      case 'peak':
        jobs.push({ scenario: s, name: `peak-${o.peakN}`, connections: o.peakN, run: (ctx) => runPeak(ctx, { clients: o.peakN, messages: o.peakMessages }) });
        break;
      case 'pluginserver':
        break; // no proxy and no clients: run on its own in main()
      case 'scale': {
        const n = o.scale.connections;
        const workers = workersFor(n);
        const userWorkers = o.kongGripArgs.includes('--workers');
        jobs.push({
          scenario: s,
          name: `scale-${n}`,
          connections: n,
          deadlineMs: scaleBudgetMs(o.scale),
          start: {
            'kong-grip': (t) => startKongGripCluster({ ...t, workers, extraArgs: o.kongGripArgs, nodeArgs: o.kongGripNodeArgs }),
          },
          setupNote: (runner, agents, srcAddrs) => {
            const clients = `${agents} client agents, ${srcAddrs.length > 0 ? `source addresses ${srcAddrs.join(', ')}` : 'source address 127.0.0.1'}`;
            return runner === 'kong-grip'
              ? `scale N=${n}: kong-grip in cluster mode, \`--nats nats://127.0.0.1:… ${userWorkers ? '(--workers from --kong-grip-arg)' : `--workers ${workers}`}\` (a private nats-server); ${clients}`
              : `scale N=${n}: ${runner} as in every scenario; ${clients}`;
          },
          run: (ctx) => runScale(ctx, o.scale),
        });
        break;
      }
      case 'storm':
        jobs.push(stormJob(o));
        break;
      default: {
        const never: never = s;
        throw new Error(`unknown scenario ${String(never)}`);
      }
    }
  }
  return jobs;
}

/**
 * The storm: kong-grip as two sidecars on one nats-server with JetStream (startKongGripPair),
 * Pushpin restarted in place, at the N it can hold. `connections` counts the streams opened
 * again after the disruption too, since the first ones' ports may still be in TIME_WAIT: that
 * sizes the agents and source addresses.
 */
function stormJob(o: Options): Job {
  const n = o.storm.clients;
  const workers = workersFor(n);
  let rig: StormRig | undefined;
  const nFor = (runner: string): number => (runner === 'pushpin' ? Math.min(n, PUSHPIN_STORM_MAX) : n);
  return {
    scenario: 'storm',
    name: `storm-${n}`,
    connections: 2 * n,
    deadlineMs: stormBudgetMs(o.storm),
    start: {
      'kong-grip': async (t) => (rig = await startKongGripPair({ ...t, workers, extraArgs: o.kongGripArgs, nodeArgs: o.kongGripNodeArgs })),
      pushpin: async (t) => (rig = await startPushpinRestartable({ ...t, logLevel: o.pushpinLogLevel })),
    },
    setupNote: (runner, agents, srcAddrs) =>
      `storm: ${runner === 'kong-grip' ? `two sidecars, each \`--workers ${workers}\`, on one nats-server with JetStream` : `Pushpin restarted in place at N = ${nFor(runner)}${nFor(runner) < n ? ` (not ${n}: condure holds every client connection in one process, limited to the open-files limit)` : ''}; not like for like`}; ` +
      `${agents} client agents, ${srcAddrs.length > 0 ? `source addresses ${srcAddrs.join(', ')}` : 'source address 127.0.0.1'}`,
    run: (ctx) => {
      if (rig === undefined || rig.name !== ctx.target.name) throw new Error('storm: the rig was not started');
      return runStorm(ctx, rig, { ...o.storm, clients: nFor(ctx.target.name) });
    },
  };
}

/** Sidecar workers for the scale run: enough processes for N connections, and always a cluster. */
function workersFor(connections: number): number {
  return Math.max(2, Math.ceil(connections / CONNECTIONS_PER_WORKER));
}

function agentsFor(o: Options, job: Job): number {
  return Math.max(o.agents, Math.ceil(job.connections / CONNECTIONS_PER_AGENT));
}

/**
 * Source addresses so no (source address, destination) pair runs out of ports. Every agent
 * spreads its connections over all of them, so it is the job's total that counts.
 */
function sourceAddresses(o: Options, job: Job): string[] {
  if (o.srcAddrs) return o.srcAddrs;
  if (job.connections <= CONNECTIONS_PER_SOURCE_ADDRESS) return [];
  const count = Math.ceil(job.connections / CONNECTIONS_PER_SOURCE_ADDRESS);
  return Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
}

interface OriginProcess {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startOriginProcess(): Promise<OriginProcess> {
  const child = spawnWithMaxFiles(process.execPath, ['--import', 'tsx', join(HERE, 'origin.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((res, rej) => {
    lines.once('line', (line) => res((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => rej(new Error(`origin exited with code ${code}`)));
  });
  return { port, pid: child.pid!, stop: () => stopProcess(child, 3000) };
}

function shell(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unavailable';
  }
}

function machineFacts(o: Options, loadAtStart: number[]): string[] {
  const cpus = os.cpus();
  return [
    `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}`,
    `Node ${process.version}; ${shell('pushpin', ['--version'])} (Debian package, with condure and zurl)`,
    `open files per process: ${shell('sh', ['-c', 'ulimit -Hn'])} (hard limit; the bench raises the soft limit to it)`,
    `load average (1 / 5 / 15 min) at the start ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')}, at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}; other work on the machine shows here`,
    `kong-grip commit ${shell('git', ['-C', HERE, 'rev-parse', '--short', 'HEAD'])}; ${o.agents} client agent processes (more where a job has over ${CONNECTIONS_PER_AGENT.toLocaleString('en-US')} connections per agent), ${o.window} connection attempts in flight per agent`,
  ];
}

const METHOD = [
  'Every scenario starts a fresh proxy process (tree) and runs on Pushpin, then on kong-grip. Clients are raw `net` sockets in separate agent processes (reading into one shared buffer via `onread`, minimal parsing; no EventSource or ws library); the notes give the CPU they used per delivery. The origin (bench/origin.ts, plain node:http) runs in its own process.',
  'Pushpin 1.36 runs from a private config directory (own rundir, ports, and a zurl it starts itself), with `message_rate` and `message_hwm` raised to 100,000,000 so its delivery limiter does not cap it; log level 1. Everything else is the packaged default (including zurl\'s max_open_requests=2000).',
  'kong-grip runs as `node sidecar/dist/process/cli.js --listen … --control … --origin … --sig-key …` (standalone, in-process bus), except in the scale run (below).',
  'Fan-out: N streams on one channel; warm-up probes are published until every stream has one (so every subscription is in place); then K messages, one after another, each carrying its publish time from the system-wide monotonic clock. Latency = receive time in the agent − publish time (taken just before the publish POST), over all N×K deliveries. Completeness counts deliveries; order counts messages received after a later one.',
  'Memory per held connection: RSS of all the proxy\'s processes (for Pushpin: runner, condure, zurl, proxy, handler), after a warm-up with 10 streams and 1 s of settling, subtracted from the RSS 1 s after the N fan-out connections are held, divided by N.',
  'Long-poll herd: N long-polls on one channel; a round is published once every client has a request outstanding and the origin has seen no poll for 1.5 s (Pushpin refreshes every held request 1 s after a channel\'s first subscription); each client re-polls the moment it gets its response. A round is fully delivered when all N got it within 30 s. Errors: non-200 responses, and connections that failed. Re-poll herd: time from a round’s full delivery (or its 30 s deadline) until every client is held again, checked every 100 ms; a client answered with an error polls again after 250 ms.',
  'New held streams per second: M SSE streams opened with a bounded number of attempts in flight (each an origin round trip and a subscription); streams whose response head arrived ÷ time from the first attempt to the last head. Before it, a warm-up of min(1,000, M/5) streams is opened and closed on another channel and the proxy gets 0.5 s to tear them down, so the rate is the steady one, not that of a process in its first second.',
  'Floor: the SSE fan-out also runs against a bare node:http server with no GRIP (bench/floor-server.ts: holds the responses, writes each published item to every one), in its own process, with the same clients. Its figures (last column) show what the clients, the kernel and a plain node:http server cost with no proxy logic at all; it is a reference, not a hard lower bound (it writes through node:http, one write per response). For new streams per second the floor is the clients talking to the origin directly, with no proxy between.',
  'With `--repeat R`, each scenario runs R times per system, alternating systems, and the table shows the median of each figure; the notes keep every run.',
  'Scale run (`--scenarios scale`, not in the default set): N SSE streams on one channel (`--scale-n`, default 100,000), opened like the fan-out\'s from enough client agents that none holds more than 18,000 and from source addresses 127.0.0.2… (20,000 connections each, every agent binding its own series of ports on them), since one process may hold at most the hard open-files limit. kong-grip runs in cluster mode, `--nats nats://127.0.0.1:P --workers W` with its own nats-server and W = ceil(N / 16,000), at least 2: each worker is a process with its own limit. Opening stops at a deadline (2 min + 6 ms per stream) or after 2 × window failed attempts in a row in an agent, so a proxy that runs out of descriptors is measured at what it holds. Then warm-up probes until every stream has one, memory as in the fan-out (all the proxy\'s processes; nats-server\'s RSS in the notes, not counted), and K messages (`--scale-messages`, default 3) 500 ms apart: delivered = deliveries ÷ (streams held × K), latency over every delivery.',
  'Plugin server (kong-grip only; Pushpin has none): the one plugin-server process of a Kong node runs every new request\'s access phase. bench/pluginserver.ts starts it as Kong does (empty environment, its own Unix socket) and drives it over 4 connections, as 4 Kong workers: StartInstance once each, 200 warm-up phases, then access phases back to back for 5 s with every PDK call answered at once (get_consumer with a consumer row, set_headers), forward_consumer on. Access phases per second, and the server process\'s CPU (user + system, from /proc) per phase. Measured for grip-pluginserver (what kong-grip ships) and, beside it, for kong-pdk\'s own kong-js-pluginserver with the same plugin. The driver shares the machine\'s cores with the server.',
  'Storm run (`--scenarios storm`, not in the default set): kong-grip runs as two standalone sidecars, each `--workers W` (W = ceil(N / 16,000), at least 2), on one nats-server with JetStream, history on and Last-Event-ID resumption for the SSE path (a YAML config). N SSE streams (`--storm-n`, default 20,000) over C channels (`--storm-channels`, default 100), half on each sidecar, every channel on both; items published at R per second (`--storm-rate`, default 20) through the survivor\'s publish API, each with an id (sequential per channel) that is also its SSE `id:`. Once every client has received an item, SIGTERM to one sidecar: its clients, whose streams it ends, reconnect to the other with Last-Event-ID, as an EventSource does, each agent keeping a window of attempts in flight and trying the other address after a failed attempt. Publishing goes on until 2 s after every moved client holds a new stream, then stops; once every client has its channel\'s last id (bounded wait), each client\'s lost ids (from the first id it received to the last) and duplicated ids are summed. Re-held time: from the SIGTERM to the last moved client\'s new response head. The survivor\'s RSS (all its processes) is read every 100 ms, its /metrics every second (nodejs_eventloop_lag_max_seconds: the maximum over its processes since the previous scrape). Pushpin: one instance stopped and started on the same ports, clients reconnecting to it with Last-Event-ID; it has no history, so what was published meanwhile is lost; at most 15,000 streams (its condure holds every client connection in one process). Not like for like.',
  'Peak deliveries per second: N SSE streams; K messages published back to back (10 items per publish request, 2 requests in flight); deliveries received ÷ time from the first publish to the last delivery.',
];

function emptyFigures(): SystemFigures {
  return { metrics: new Map(), errors: new Map(), notes: [] };
}

async function main(): Promise<void> {
  const o = parseCli(process.argv.slice(2));
  if (o.help) {
    console.log(USAGE);
    return;
  }
  const startedAt = new Date();
  const loadAtStart = os.loadavg();
  const deadline = Date.now() + o.maxMinutes * 60_000;
  const workDir = mkdtempSync('/tmp/kgb-');
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const log = (line: string): void => console.error(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)}s] ${line}`);
  log(`work dir ${workDir}`);

  const origin = await startOriginProcess();
  const starters: Record<RunnerName, StartTarget> = {
    pushpin: (t) => startPushpin({ ...t, logLevel: o.pushpinLogLevel }),
    'kong-grip': (t) => startKongGrip({ ...t, extraArgs: o.kongGripArgs, nodeArgs: o.kongGripNodeArgs }),
    floor: () => startFloorServer(),
  };
  // For new streams the floor is the origin itself, no proxy: what clients and origin can do alone.
  const originAsTarget = async (): Promise<Target> => ({
    name: 'floor',
    clientPort: origin.port,
    publishPort: origin.port,
    rootPid: origin.pid,
    logSummary: () => [],
    stop: async () => {},
  });
  const figures: Record<RunnerName, SystemFigures> = { pushpin: emptyFigures(), 'kong-grip': emptyFigures(), floor: emptyFigures() };
  const samples: Record<RunnerName, Map<string, Metric[]>> = { pushpin: new Map(), 'kong-grip': new Map(), floor: new Map() };

  let agents = await AgentPool.start(o.agents);
  const originStats = async (): Promise<OriginStats> => JSON.parse((await request(origin.port, 'GET', '/_stats')).body) as OriginStats;
  try {
    for (const job of buildJobs(o)) {
      const srcAddrs = sourceAddresses(o, job);
      const agentCount = agentsFor(o, job);
      if (agents.size !== agentCount) {
        log(`${job.name}: ${agentCount} client agents${srcAddrs.length > 0 ? `, source addresses ${srcAddrs.join(', ')}` : ''}`);
        await agents.stop();
        agents = await AgentPool.start(agentCount);
      }
      const hasFloor = o.floor && (job.scenario === 'sse' || job.scenario === 'streams');
      const runners: RunnerName[] = [...o.systems, ...(hasFloor ? (['floor'] as const) : [])];
      for (let rep = 1; rep <= o.repeat; rep++) {
        for (const runner of runners) {
          const f = figures[runner];
          const label = o.repeat > 1 ? `${job.name} (run ${rep} of ${o.repeat})` : job.name;
          const left = deadline - Date.now();
          if (left < 10_000) {
            f.errors.set(job.name, 'skipped: the run reached --max-minutes');
            continue;
          }
          log(`${label} on ${runner}`);
          let target: Target | undefined;
          try {
            const jobDir = mkdirp(join(workDir, `${job.name}-${rep}-${runner}`));
            const start = runner === 'floor' && job.scenario === 'streams' ? originAsTarget : (job.start?.[runner] ?? starters[runner]);
            target = await start({ originPort: origin.port, sigKey: SIG_KEY, workDir: jobDir });
            const ctx: ScenarioContext = { target, agents, originStats, srcAddrs, window: o.window, log };
            const setup = job.setupNote?.(runner, agents.size, srcAddrs);
            if (setup !== undefined && rep === 1) f.notes.push(setup);
            const result = await withDeadline(job.run(ctx), Math.min(left, job.deadlineMs ?? JOB_DEADLINE_MS), `${label} on ${runner} to finish`);
            for (const m of result.metrics) {
              const list = samples[runner].get(m.key) ?? [];
              list.push(m);
              samples[runner].set(m.key, list);
            }
            const prefix = o.repeat > 1 ? `run ${rep}: ` : '';
            f.notes.push(...result.notes.map((n) => prefix + n));
            for (const line of target.logSummary()) f.notes.push(`${prefix}${job.name}, ${runner} log: ${line}`);
          } catch (err) {
            const msg = (err as Error).message;
            log(`${label} on ${runner} failed: ${msg}`);
            f.errors.set(job.name, msg);
            // A scenario cut short may leave connections behind in the agents: start afresh.
            await agents.stop();
            agents = await AgentPool.start(agentCount);
          } finally {
            await target?.stop();
          }
        }
      }
    }
    if (o.scenarios.includes('pluginserver') && o.systems.includes('kong-grip')) {
      for (let rep = 1; rep <= o.repeat; rep++) {
        log(`pluginserver${o.repeat > 1 ? ` (run ${rep} of ${o.repeat})` : ''}`);
        try {
          const result = pluginServerMetrics(await measurePluginServers());
          for (const m of result.metrics) {
            const list = samples['kong-grip'].get(m.key) ?? [];
            list.push(m);
            samples['kong-grip'].set(m.key, list);
          }
          figures['kong-grip'].notes.push(...result.notes.map((n) => (o.repeat > 1 ? `run ${rep}: ${n}` : n)));
        } catch (err) {
          log(`pluginserver failed: ${(err as Error).message}`);
          figures['kong-grip'].errors.set('pluginserver', (err as Error).message);
        }
      }
    }
  } finally {
    await agents.stop();
    await origin.stop();
    if (!o.keepWork) rmSync(workDir, { recursive: true, force: true });
  }
  for (const runner of Object.keys(samples) as RunnerName[]) {
    for (const [key, ms] of samples[runner]) figures[runner].metrics.set(key, { ...ms[0]!, value: median(ms.map((m) => m.value)) });
  }

  const rows = pairRows(figures.pushpin, figures['kong-grip'], figures.floor);
  console.log(renderConsoleTable(rows));
  for (const runner of Object.keys(figures) as RunnerName[]) for (const [job, err] of figures[runner].errors) console.log(`${runner} ${job}: ${err}`);
  if (o.out !== '-') {
    const durationS = (Date.now() - startedAt.getTime()) / 1000;
    const doc = renderResultsMarkdown({
      command,
      startedAt: startedAt.toISOString(),
      durationS,
      machine: machineFacts(o, loadAtStart),
      rows,
      pushpin: figures.pushpin,
      kongGrip: figures['kong-grip'],
      floor: figures.floor,
      method: METHOD,
      kept: keptPart(existsSync(resolve(o.out)) ? readFileSync(resolve(o.out), 'utf8') : undefined),
    });
    writeFileSync(resolve(o.out), doc);
    log(`wrote ${resolve(o.out)}`);
  }
}

function mkdirp(dir: string): string {
  execFileSync('mkdir', ['-p', dir]);
  return dir;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  console.error(USAGE);
  process.exitCode = 1;
});
