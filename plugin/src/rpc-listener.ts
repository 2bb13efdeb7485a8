import { unlinkSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { Encoder } from '@msgpack/msgpack';
import { MAX_MESSAGE_BYTES, MessageStream } from './msgpack-stream.js';
import type { ServerLog } from './plugin-server.js';

// Kong's side of a plugin server socket speaks MessagePack-RPC: requests [0, msgid, "plugin.X",
// [args]], answers [1, msgid, error, result]. kong-pdk ships a listener for this, but it ends
// the whole process on the first socket error (an ECONNRESET from a worker that exits), and it
// decodes one chunk at a time (two requests in one read, or a request split at an unlucky byte,
// are lost or fatal). This one reads a real message stream per connection, answers only the
// methods Kong calls, and treats every malformed input as that connection's problem alone.

/** The RPC methods Kong (3.4 to 3.9) calls on a MessagePack plugin server. */
export const KONG_METHODS = new Set([
  'StartInstance', 'InstanceStatus', 'CloseInstance', 'HandleEvent', 'GetPluginInfo', 'GetStatus',
  'Step', 'StepError', 'StepMultiMap', 'StepService', 'StepConsumer', 'StepRoute', 'StepPlugin',
  'StepCredential', 'StepMemoryStats',
]);

export type RpcTarget = Record<string, unknown>;

/** What one decoded message means: a call to make, an error to answer, or a connection to drop. */
export type RpcRequest =
  | { kind: 'call'; msgId: number; method: string; args: unknown[] }
  | { kind: 'refuse'; msgId: number; error: string }
  | { kind: 'drop'; reason: string };

/** Pure: validates one decoded message against the protocol and the allowed methods. */
export function readRequest(message: unknown): RpcRequest {
  if (!Array.isArray(message) || message.length !== 4 || message[0] !== 0) {
    return { kind: 'drop', reason: 'not a MessagePack-RPC request ([0, msgid, method, args])' };
  }
  const [, msgId, method, args] = message as [0, unknown, unknown, unknown];
  if (typeof msgId !== 'number' || !Number.isSafeInteger(msgId) || msgId < 0) {
    return { kind: 'drop', reason: 'the request id is not a non-negative integer' };
  }
  if (typeof method !== 'string') return { kind: 'refuse', msgId, error: 'the method name is not a string' };
  const dot = method.indexOf('.');
  const ns = dot < 0 ? method : method.slice(0, dot);
  const cmd = dot < 0 ? '' : method.slice(dot + 1);
  if (ns !== 'plugin') return { kind: 'refuse', msgId, error: `RPC for ${ns} is not supported` };
  if (!KONG_METHODS.has(cmd)) return { kind: 'refuse', msgId, error: `unknown method ${cmd} (not one Kong calls)` };
  if (!Array.isArray(args)) return { kind: 'refuse', msgId, error: `${method}: the arguments are not an array` };
  return { kind: 'call', msgId, method: cmd, args };
}

function errorText(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err instanceof Error) return err.message;
  return 'plugin server error';
}

function serveConnection(socket: Socket, target: RpcTarget, log: ServerLog, maxMessageBytes: number): void {
  // One encoder per connection: encode() would build a new one (and its buffer) per answer.
  const encoder = new Encoder();
  const answer = (msgId: number, error: string | null, result: unknown): void => {
    if (!socket.destroyed) socket.write(encoder.encode([1, msgId, error, result]));
  };
  // Kong reads notifications ([2, label, args]) ahead of an answer, and on a serverPid that
  // differs from the last one it saw forgets every instance it started on this server. Sent
  // first on every connection, so a worker's first call after a plugin-server restart drops its
  // stale instance numbers. Random numbering alone covers Kong 3.4 and 3.7+; Kong 3.5 and 3.6
  // answer "no plugin instance" by retrying the same cached number (in workers whose
  // reset_instances handler does not run) until this clears it.
  socket.write(encoder.encode([2, 'serverPid', process.pid]));
  const call = (msgId: number, method: string, args: unknown[]): void => {
    let result: unknown;
    try {
      const fn = target[method] as (...a: unknown[]) => unknown;
      result = fn.apply(target, args);
    } catch (err) {
      // "no plugin instance #N" must reach Kong as is: it is how Kong learns to start a new one.
      answer(msgId, errorText(err), null);
      return;
    }
    // Not awaited: HandleEvent answers only when the plugin makes its first PDK call, and
    // Kong's next message on this connection may be the Step that call is waiting for.
    Promise.resolve(result).then((value) => answer(msgId, null, value), (err: unknown) => answer(msgId, errorText(err), null));
  };
  const drop = (reason: string): void => {
    log.warn(`closing a plugin-server connection: ${reason}`);
    socket.destroy();
  };
  const onMessage = (message: unknown): boolean => {
    const req = readRequest(message);
    if (req.kind === 'call') {
      call(req.msgId, req.method, req.args);
      return true;
    }
    if (req.kind === 'refuse') {
      log.warn(`refused RPC #${req.msgId}: ${req.error}`);
      answer(req.msgId, req.error, null);
      return true;
    }
    drop(req.reason);
    return false;
  };
  const messages = new MessageStream(maxMessageBytes);
  socket.on('data', (chunk: Buffer) => {
    try {
      messages.push(chunk, onMessage);
    } catch (err) {
      // Not MessagePack, or a message past the bound: this connection's problem alone.
      drop(errorText(err));
    }
  });
}

export interface RpcListener {
  readonly server: NetServer;
  close(): Promise<void>;
}

/** Listens on a Unix socket at `path` (replacing a stale socket file), private to this user. */
export function listenRpc(path: string, target: RpcTarget, log: ServerLog, maxMessageBytes: number = MAX_MESSAGE_BYTES): Promise<RpcListener> {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    // A worker that exits or is killed resets its connection: that connection closes,
    // nothing else. Without a listener the error would end the process.
    socket.on('error', () => {});
    serveConnection(socket, target, log, maxMessageBytes);
  });
  return new Promise((resolve, reject) => {
    // Anything that can write to the socket can run plugin phases: owner only.
    const mask = process.umask(0o077);
    server.once('error', (err) => {
      process.umask(mask);
      reject(err);
    });
    server.listen(path, () => {
      process.umask(mask);
      server.removeAllListeners('error');
      server.on('error', (err) => log.error(`plugin-server socket: ${err.message}`));
      resolve({
        server,
        // Stopping ends Kong's pooled connections too: Kong reconnects to the next server.
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          for (const socket of open) socket.destroy();
          try { unlinkSync(path); } catch { /* already gone */ }
        }),
      });
    });
  });
}
