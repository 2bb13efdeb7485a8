import { randomBytes } from 'node:crypto';
import Server from 'kong-pdk/server.js';
import { Module } from 'kong-pdk/lib/mod.js';
import * as grip from './grip.js';

// kong-pdk's plugin server with the grip plugin loaded from this bundle (no plugins directory
// to scan, no TypeScript loader) and instance numbers that start at a random point.
//
// Why random: kong-pdk numbers instances 0, 1, 2, ... in each process. Kong's workers cache
// "route A's plugin = instance #N". When the plugin server restarts, the new process hands #N to
// whichever configuration Kong starts first, say route B's; a worker that still holds #N for
// route A then runs B's configuration for A's requests (B's origin, B's identity in the token),
// and nothing reports it. With a random 52-bit start, an old number almost surely names nothing
// in the new process: the server answers "no plugin instance #N", and every supported Kong
// answers that by starting a fresh instance with the right configuration and retrying the
// request. The chance that one of n old numbers lands among m new ones is below (n + m) / 2^52:
// under 2^-30 per restart for up to two million instances. Needs no request-time check (no
// kong.plugin.get_id round trip) and no worker event (reset_instances exists only from Kong 3.6).

/** Instance numbers stay below 2^53: exact in Lua's doubles and in MessagePack both ways. */
const START_BITS = 52;

/** A random first instance number in [0, 2^52), leaving 2^52 numbers of headroom below 2^53. */
export function randomInstanceStart(): number {
  return Number(randomBytes(8).readBigUInt64BE(0) >> BigInt(64 - START_BITS));
}

export interface ServerLog {
  debug(line: string): void;
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
}

/** kong-pdk's logger interface (variadic, like console) onto one-line log calls. */
function pdkLogger(log: ServerLog): ConstructorParameters<typeof Server>[1] {
  const join = (args: unknown[]): string => args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(' ');
  return {
    debug: (...a: unknown[]) => log.debug(join(a)),
    info: (...a: unknown[]) => log.info(join(a)),
    warn: (...a: unknown[]) => log.warn(join(a)),
    error: (...a: unknown[]) => log.error(join(a)),
  };
}

export interface GripPluginServer {
  readonly server: Server;
  /** The first instance number this process hands out. */
  readonly firstInstance: number;
}

/** PDK calls after which Kong ends the request and never steps the event again. */
const ENDING_CALLS = new Set(['kong.response.exit', 'kong.response.error']);

/**
 * kong-pdk forgets an event when the plugin's phase returns, which Kong learns from the "ret" it
 * steps to. After kong.response.exit Kong sends no further Step, so kong-pdk would keep that
 * event (its queues and the phase's closure) for the life of the process: one per refused
 * request. Forget it as soon as the call that ends the request goes out.
 */
function forgetEndedEvents(server: Server): void {
  const forgetIfEnding = <R extends { Data: unknown; EventId: number }>(r: R): R => {
    const method = (r.Data as { Method?: unknown } | null)?.Method;
    if (typeof method === 'string' && ENDING_CALLS.has(method)) server.events.delete(r.EventId);
    return r;
  };
  // then() rather than async wrappers: one promise fewer per call on the access path.
  const handleEvent = server.HandleEvent.bind(server);
  server.HandleEvent = (event) => handleEvent(event).then(forgetIfEnding);
  // Every Step variant goes through step().
  const step = server.step.bind(server);
  server.step = (data, isError) => step(data, isError).then(forgetIfEnding);
}

export function createGripPluginServer(log: ServerLog, firstInstance: number = randomInstanceStart()): GripPluginServer {
  const server = new Server(null, pdkLogger(log));
  const mod = new Module(grip.Name, undefined, grip);
  server.plugins.set(mod.name, mod);
  server.instanceID = firstInstance;
  forgetEndedEvents(server);
  return { server, firstInstance };
}
