import cluster from 'node:cluster';

// How the workers of `--workers N` get their connections. node:cluster's default (except on
// Windows) is round-robin: the primary accepts every connection and hands it to a worker over
// IPC, one at a time per worker, waiting for that worker's event loop to take it. Under load
// that hand-off is the bottleneck: in a reconnect storm (bench/README.md, "Storm run"), with the
// survivor's workers busy delivering, 10,000 reconnecting clients waited up to minutes and 3,020
// attempts got no response within 30 s; with the workers accepting on the shared socket
// themselves, none waited that long. On Linux the kernel spreads the accepts evenly enough for
// held connections (100,000 streams over 7 workers: 13,700 to 15,400 each) and they opened
// faster (2,049/s against 1,255/s). An operator's NODE_CLUSTER_SCHED_POLICY still decides.

/** The policy the primary should set: 'none' (workers accept) or undefined (node's own choice). */
export function acceptPolicyFor(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): 'none' | undefined {
  if (env['NODE_CLUSTER_SCHED_POLICY'] !== undefined) return undefined;
  return platform === 'linux' ? 'none' : undefined;
}

/** Applies acceptPolicyFor before the first fork (node:cluster freezes the policy then). */
export function setAcceptPolicy(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): void {
  if (acceptPolicyFor(env, platform) === 'none') cluster.schedulingPolicy = cluster.SCHED_NONE;
}
