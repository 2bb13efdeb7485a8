// Messages between the bench orchestrator (run.ts) and its client agents (agent.ts), which
// run in child processes so the clients' event loops are not the measuring process's.

export const StreamKind = { Sse: 'sse', Ws: 'ws' } as const;
export type StreamKind = (typeof StreamKind)[keyof typeof StreamKind];

export interface ConnectTarget {
  port: number;
  path: string;
  /** Local source addresses to spread connections over (empty: let the kernel choose). */
  srcAddrs: string[];
  /**
   * Local ports to bind on each source address: first, first + stride, first + 2·stride, …
   * (each agent its own `first`, `stride` the number of agents). Without them the kernel picks
   * each port, and its search for a free one on a bound address gets slower as ports fill up:
   * at 20,000 connections per address it cost milliseconds of system time per connection.
   */
  localPorts?: { first: number; stride: number };
  /** Maximum connection attempts in flight at once. */
  window: number;
  /** Further attempts for a connection that failed to open (a browser's EventSource retries too). */
  retries: number;
  /** Stop starting attempts this long after the first one (the scale run against a proxy that stalls). */
  deadlineMs?: number;
  /** Stop starting attempts after this many failed attempts with no success between them. */
  maxFailuresInARow?: number;
}

export type AgentCommand =
  | { op: 'open-streams'; kind: StreamKind; target: ConnectTarget; count: number }
  | { op: 'wait-message'; tag: 'M' | 'W'; seq: number; timeoutMs: number }
  | { op: 'collect' }
  | { op: 'close-streams' }
  | { op: 'poll-start'; target: ConnectTarget; count: number }
  | { op: 'poll-status' }
  | { op: 'poll-wait-round'; round: number; timeoutMs: number }
  | { op: 'poll-stop' }
  | { op: 'storm-open'; target: StormTarget; count: number }
  | { op: 'storm-wait-receiving'; timeoutMs: number }
  | { op: 'storm-mark'; port?: number }
  | { op: 'storm-await-moved'; timeoutMs: number }
  | { op: 'storm-wait-last'; lastIds: number[]; timeoutMs: number }
  | { op: 'storm-close' };

/** Where an agent's storm clients connect (see clients/storm-client.ts). */
export interface StormTarget extends Omit<ConnectTarget, 'port' | 'path'> {
  /** Ports on 127.0.0.1 every client knows (one for a proxy restarted in place). */
  ports: number[];
  /** Stream path per channel index. */
  paths: string[];
  /**
   * Client i of this agent is client number first + i·stride of the whole run: its channel is
   * that number mod paths.length, and its first port index floor(number / paths.length) mod
   * ports.length, so every channel has clients on every port.
   */
  first: number;
  stride: number;
}

export interface StormReceiving {
  clients: number;
  /** Clients that have received at least one id. */
  receiving: number;
  timedOut: boolean;
}

export interface StormMoved {
  /** Clients marked (held on the marked port when `storm-mark` arrived). */
  marked: number;
  /** Of those, clients that hold a newer stream. */
  moved: number;
  /** When the last marked client that moved got its new stream (monotonic ms; 0: none). */
  lastReheldAtMs: number;
  /** When the first and the last marked client's stream ended (monotonic ms; 0: none did). */
  firstDroppedAtMs: number;
  lastDroppedAtMs: number;
  /** Per moved client: from its stream's end to its new stream's head, ms. */
  gapsMs: number[];
  timedOut: boolean;
}

export interface StormTally {
  clients: number;
  held: number;
  /** Clients whose highest id reached their channel's last id. */
  complete: number;
  /** Clients that never received an id. */
  withoutIds: number;
  lost: number;
  duplicated: number;
  reconnects: number;
  /** Failed reconnect attempts by response status, and without a response. */
  statuses: Record<string, number>;
  connectionErrors: number;
  firstErrors: string[];
  timedOut: boolean;
}

export type AgentRequest = { id: number } & AgentCommand;

export interface OpenResult {
  opened: number;
  /** Connections that still failed after every retry. */
  failed: number;
  /** Failed attempts that were retried. */
  retried: number;
  firstErrors: string[];
  /** Why opening stopped before every connection was attempted (a limit above), if it did. */
  stoppedEarly?: string;
  startedAtMs: number;
  /** When the last connection that opened did (startedAtMs if none did). */
  lastOpenedAtMs: number;
  finishedAtMs: number;
}

export interface WaitResult {
  /** Streams (still open) that received the awaited message. */
  reached: number;
  open: number;
  timedOut: boolean;
}

export interface CollectResult {
  /** Publish→receive latencies of measured (`M`) messages, ms. */
  latenciesMs: number[];
  received: number;
  duplicates: number;
  outOfOrder: number;
  /** Streams the server closed or that failed after opening. */
  dropped: number;
  open: number;
  firstReceivedAtMs: number;
  lastReceivedAtMs: number;
  /** CPU time (user + system) this agent process used since the previous collect, ms. */
  cpuMs: number;
}

export interface PollStatus {
  clients: number;
  /** Clients with a request sent and no response yet. */
  waiting: number;
  statuses: Record<string, number>;
  connectionErrors: number;
}

export interface RoundResult {
  delivered: number;
  clients: number;
  timedOut: boolean;
  latenciesMs: number[];
}

export type AgentReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
