// A client agent: a child process of the bench that holds thousands of client connections and
// reports what they received. Commands arrive over the IPC channel (see agent-protocol.ts).

import type {
  AgentReply,
  AgentRequest,
  CollectResult,
  ConnectTarget,
  OpenResult,
  PollStatus,
  RoundResult,
  StormMoved,
  StormReceiving,
  StormTally,
  WaitResult,
} from './agent-protocol.js';
import { DeliveryRecorder } from './clients/delivery-recorder.js';
import { LocalEndpoints, openMany, sourceAddress } from './clients/open-many.js';
import { PollHerd } from './clients/poll-client.js';
import { StormAgent } from './clients/storm-agent.js';
import { StreamClient } from './clients/stream-client.js';

if (!process.send) throw new Error('bench agent must be started with an IPC channel');

const recorder = new DeliveryRecorder();
let streams: StreamClient[] = [];
let herd: PollHerd | undefined;
const storm = new StormAgent();
let cpuMark = process.cpuUsage();

type Result = OpenResult | WaitResult | CollectResult | PollStatus | RoundResult | StormReceiving | StormMoved | StormTally | { marked: number } | { closed: number };

async function handle(req: AgentRequest): Promise<Result> {
  switch (req.op) {
    case 'open-streams': {
      const { target, kind, count } = req;
      const limits = { deadlineMs: target.deadlineMs, maxFailuresInARow: target.maxFailuresInARow };
      const endpoints = endpointsFor(target.srcAddrs, target.localPorts);
      return openMany(count, target.window, target.retries, (i) => {
        const client = new StreamClient(kind, target.port, target.path, endpoints.take(i), recorder);
        streams.push(client);
        return client.opened;
      }, limits);
    }
    case 'wait-message':
      return recorder.waitFor(req.tag, req.seq, req.timeoutMs);
    case 'collect': {
      const cpu = process.cpuUsage(cpuMark);
      cpuMark = process.cpuUsage();
      return { ...recorder.collect(), cpuMs: (cpu.user + cpu.system) / 1000 };
    }
    case 'close-streams': {
      const closed = streams.length;
      for (const s of streams) s.close();
      streams = [];
      return { closed };
    }
    case 'poll-start': {
      const { target, count } = req;
      const h = new PollHerd(target.port, target.path);
      herd = h;
      return openMany(count, target.window, target.retries, (i) => h.add(sourceAddress(target.srcAddrs, i)));
    }
    case 'poll-status':
      return requireHerd().status();
    case 'poll-wait-round':
      return requireHerd().waitRound(req.round, req.timeoutMs);
    case 'poll-stop': {
      const h = requireHerd();
      h.stop();
      herd = undefined;
      return { closed: h.status().clients };
    }
    case 'storm-open':
      return storm.open(req.target, req.count);
    case 'storm-wait-receiving':
      return storm.waitReceiving(req.timeoutMs);
    case 'storm-mark':
      return storm.mark(req.port);
    case 'storm-await-moved':
      return storm.awaitMoved(req.timeoutMs);
    case 'storm-wait-last':
      return storm.waitLast(req.lastIds, req.timeoutMs);
    case 'storm-close':
      return storm.close();
    default: {
      const never: never = req;
      throw new Error(`unknown agent command ${JSON.stringify(never)}`);
    }
  }
}

/** One series of local ports per setting, kept across commands (see LocalEndpoints). */
const endpointSeries = new Map<string, LocalEndpoints>();

function endpointsFor(srcAddrs: string[], localPorts: ConnectTarget['localPorts']): LocalEndpoints {
  const key = JSON.stringify([srcAddrs, localPorts]);
  let e = endpointSeries.get(key);
  if (e === undefined) endpointSeries.set(key, (e = new LocalEndpoints(srcAddrs, localPorts)));
  return e;
}

function requireHerd(): PollHerd {
  if (!herd) throw new Error('no long-poll herd started in this agent');
  return herd;
}

function reply(msg: AgentReply): void {
  process.send!(msg);
}

process.on('message', (raw: unknown) => {
  const req = raw as AgentRequest;
  handle(req).then(
    (result) => reply({ id: req.id, ok: true, result }),
    (err: unknown) => reply({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
