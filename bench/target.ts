// A proxy under test, as the scenarios see it.

export interface Target {
  /** Display name: "pushpin" or "kong-grip". */
  name: string;
  /** Where clients connect (HTTP, SSE, WebSocket). */
  clientPort: number;
  /** Where the Pushpin-compatible publish API listens (POST /publish/). */
  publishPort: number;
  /** Root of the proxy's process tree; memory is the RSS of the whole tree. */
  rootPid: number;
  /**
   * Processes the proxy needs that are not in its tree (kong-grip's nats-server in cluster mode):
   * their memory is reported beside the proxy's, never added to it.
   */
  companions?: { name: string; pid: number }[];
  /** The proxy's warnings and errors so far, condensed (see log-summary.ts). */
  logSummary(): string[];
  stop(): Promise<void>;
}

export interface TargetOptions {
  originPort: number;
  /** Grip-Sig key shared with the origin. */
  sigKey: string;
  /** Where to put config and logs. */
  workDir: string;
}

export type StartTarget = (opts: TargetOptions) => Promise<Target>;
