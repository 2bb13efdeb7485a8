// Kong's side of a plugin-server socket, the transport only: one Unix-socket connection that
// sends MessagePack-RPC requests `[0, msgid, method, [args]]` one at a time and reads until the
// answer `[1, msgid, error, result]`, as each pooled connection of a Kong worker does
// (kong/runloop/plugin_servers/rpc/mp_rpc.lua). Shared by the plugin-server bench and the tests'
// Kong driver.

import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { decodeMultiStream, encode } from '@msgpack/msgpack';

export class RpcError extends Error {}

export class KongRpcConnection {
  private msgId = 0;
  private socket: Socket | undefined;
  private reader: AsyncIterator<unknown> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Every RPC made, in order (method names as sent). */
  readonly sent: string[] = [];
  /** Called for each notification (`[2, label, args]`) read while waiting for an answer, as Kong's rpc_notifications. */
  onNotification: (label: unknown, args: unknown) => void = () => {};

  constructor(private readonly socketPath: string) {}

  private async open(): Promise<void> {
    if (this.socket && !this.socket.destroyed) return;
    if (!existsSync(this.socketPath)) throw new RpcError(`connect() to unix:${this.socketPath} failed (2: No such file or directory)`);
    const socket = connect(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {}); // surfaces as the end of the reader
    this.socket = socket;
    this.reader = decodeMultiStream(socket)[Symbol.asyncIterator]();
  }

  /** One call; calls on this connection never overlap (queued in order). Rejects with RpcError for an error answer. */
  call(method: string, ...args: unknown[]): Promise<unknown> {
    const run = async (): Promise<unknown> => {
      await this.open();
      const id = ++this.msgId;
      this.sent.push(method);
      (this.socket as Socket).write(encode([0, id, method, args]));
      for (;;) {
        const next = await (this.reader as AsyncIterator<unknown>).next();
        if (next.done) throw new RpcError('no data');
        const msg = next.value as unknown[];
        if (msg[0] === 2) {
          this.onNotification(msg[1], msg[2]);
          continue;
        }
        if (msg[0] !== 1 || msg[1] !== id) throw new RpcError(`unexpected RPC response ${JSON.stringify(msg)}`);
        if (msg[2] !== null && msg[2] !== undefined) throw new RpcError(String(msg[2]));
        return msg[3];
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.socket?.destroy();
  }
}

/** How Kong answers one PDK call the plugin made: with a value, or not at all (the request ended). */
export type PdkAnswer = { kind: 'value'; value: unknown } | { kind: 'ended' };

export interface PhaseRun {
  /** RPCs for this phase: HandleEvent plus one Step per PDK call answered. */
  roundTrips: number;
}

// Kong's get_step_method table (rpc/mp_rpc.lua): the Step variant that carries each PDK result.
export const STEP_BY_METHOD: Readonly<Record<string, string>> = {
  'kong.client.get_credential': 'plugin.StepCredential',
  'kong.client.load_consumer': 'plugin.StepConsumer',
  'kong.client.get_consumer': 'plugin.StepConsumer',
  'kong.client.authenticate': 'plugin.StepCredential',
  'kong.node.get_memory_stats': 'plugin.StepMemoryStats',
  'kong.router.get_route': 'plugin.StepRoute',
  'kong.router.get_service': 'plugin.StepService',
  'kong.request.get_query': 'plugin.StepMultiMap',
  'kong.request.get_headers': 'plugin.StepMultiMap',
  'kong.response.get_headers': 'plugin.StepMultiMap',
  'kong.service.response.get_headers': 'plugin.StepMultiMap',
};

/**
 * Runs one phase for one request as Kong's bridge loop does: HandleEvent, then each PDK call the
 * plugin makes answered with the Step variant Kong picks, until the plugin returns ("ret") or
 * ends the request (after kong.response.exit Kong never steps the event again).
 */
export async function runPhase(
  conn: KongRpcConnection, instanceId: number, phase: string, answer: (method: string, args: unknown[]) => PdkAnswer,
): Promise<PhaseRun> {
  const roundTripsBefore = conn.sent.length;
  let step = await conn.call('plugin.HandleEvent', { InstanceId: instanceId, EventName: phase }) as { EventId: number; Data: unknown };
  const eventId = step.EventId;
  while (step.Data !== 'ret') {
    const data = step.Data as { Method: string; Args?: unknown[] };
    const a = answer(data.Method, data.Args ?? []);
    if (a.kind === 'ended') break;
    const stepMethod = STEP_BY_METHOD[data.Method] ?? 'plugin.Step';
    // Lua drops a nil field from the table, so "no value" travels as a map without Data.
    const params = a.value === undefined || a.value === null ? { EventId: eventId } : { EventId: eventId, Data: a.value };
    step = await conn.call(stepMethod, params) as { EventId: number; Data: unknown };
  }
  return { roundTrips: conn.sent.length - roundTripsBefore };
}
