import { createGripPluginServer, type ServerLog } from './plugin-server.js';
import { listenRpc } from './rpc-listener.js';
import { USAGE, parseArgs } from './launcher-args.js';

// grip-pluginserver: the plugin server Kong starts for the grip plugin.
//   grip-pluginserver --dump              pluginserver_grip_query_cmd: the plugin info, one JSON array on stdout
//   grip-pluginserver --socket <path>     pluginserver_grip_start_cmd: serve Kong on that Unix socket
// Kong runs both with an empty environment (no PATH): give absolute paths in kong.conf.
// stdout carries only the dump (Kong parses it whole); every log line goes to stderr, which
// Kong copies into its error log.

function stderrLog(verbose: boolean): ServerLog {
  const line = (level: string, text: string): void => { process.stderr.write(`[grip-pluginserver] ${level} ${text}\n`); };
  return {
    debug: (t) => { if (verbose) line('debug', t); },
    info: (t) => line('info', t),
    warn: (t) => line('warn', t),
    error: (t) => line('error', t),
  };
}

async function main(argv: readonly string[]): Promise<number> {
  const cmd = parseArgs(argv);
  if (cmd.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (cmd.kind === 'error') {
    process.stderr.write(`grip-pluginserver: ${cmd.message}\n${USAGE}\n`);
    return 2;
  }
  const log = stderrLog(cmd.kind === 'serve' && cmd.verbose);
  const { server, firstInstance } = createGripPluginServer(log);
  if (cmd.kind === 'dump') {
    const info = await server.GetPluginInfo('grip');
    server.close();
    process.stdout.write(`${JSON.stringify([info])}\n`);
    return 0;
  }
  let listener;
  try {
    listener = await listenRpc(cmd.socket, server as unknown as Record<string, unknown>, log);
  } catch (err) {
    server.close();
    log.error(`cannot listen on ${cmd.socket}: ${(err as Error).message}`);
    return 1;
  }
  // One line per start, in Kong's error log: which process, and where its numbers begin.
  log.info(`server started at ${cmd.socket} (pid ${process.pid}, instance numbers from ${firstInstance})`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  server.close();
  await listener.close();
  return 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`grip-pluginserver: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
