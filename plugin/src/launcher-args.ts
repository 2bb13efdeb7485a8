// The launcher's command line, apart from the process so it can be tested.

export const USAGE = 'usage: grip-pluginserver --dump | --socket <absolute path of the Unix socket> [--verbose]';

export type Command = { kind: 'dump' } | { kind: 'serve'; socket: string; verbose: boolean } | { kind: 'help' };

/** Pure: the command line (Kong's `-dump` spelling included) to a command, or an error naming the problem. */
export function parseArgs(argv: readonly string[]): Command | { kind: 'error'; message: string } {
  let dump = false;
  let socket: string | undefined;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--dump' || arg === '-dump') dump = true;
    else if (arg === '--verbose' || arg === '-v') verbose = true;
    else if (arg === '--help' || arg === '-h') return { kind: 'help' };
    else if (arg === '--socket') {
      const value = argv[++i];
      if (value === undefined || value === '') return { kind: 'error', message: '--socket needs the path of the Unix socket' };
      socket = value;
    } else if (arg.startsWith('--socket=')) socket = arg.slice('--socket='.length);
    else return { kind: 'error', message: `unknown argument ${JSON.stringify(arg)}` };
  }
  if (dump && socket !== undefined) return { kind: 'error', message: '--dump and --socket exclude each other' };
  if (dump) return { kind: 'dump' };
  if (socket === undefined) return { kind: 'error', message: 'say --dump or --socket <path>' };
  if (!socket.startsWith('/')) return { kind: 'error', message: `--socket must be an absolute path (got ${JSON.stringify(socket)}): Kong starts this server from its own working directory` };
  if (Buffer.byteLength(socket) > 107) return { kind: 'error', message: `--socket path is ${Buffer.byteLength(socket)} bytes; a Unix socket path has at most 107` };
  return { kind: 'serve', socket, verbose };
}
