// npm start: the example origin plus one sidecar in front of it. Uses the in-process bus unless
// NATS_URL is set. Flags are passed to the sidecar (e.g. npm start -- --listen 0.0.0.0:7999).
// In a terminal, r + Enter restarts the sidecar alone (the origin and its stores stay), to watch
// the reliable feed resume.
import { createExampleOrigin } from './origin.js';
import { loadConfig } from '../sidecar/dist/config.js';
import { startSidecar } from '../sidecar/dist/sidecar.js';
import { createLogger } from '../sidecar/dist/log.js';

const originPort = Number(process.env.EXAMPLE_ORIGIN_PORT ?? 8080);

async function main() {
  const base = loadConfig({ argv: process.argv.slice(2), overrides: { origin: `http://127.0.0.1:${originPort}` } });
  const publishUrl = `http://${base.control.host}:${base.control.port}/publish/`;
  const origin = createExampleOrigin({ publishUrl });
  await new Promise((resolve, reject) => origin.once('error', reject).listen(originPort, '127.0.0.1', resolve)).catch((err) => {
    if (err.code !== 'EADDRINUSE') throw err;
    throw new Error(`the example origin's port ${originPort} is taken: set EXAMPLE_ORIGIN_PORT to a free port`);
  });
  const log = createLogger(base.logLevel);
  let sidecar = await startSidecar({ config: base, log });
  const page = `http://${base.listen.host}:${sidecar.clientPort}/`;
  const item = JSON.stringify({ items: [{ channel: 'demo', formats: { 'http-stream': { content: 'data: {"text":"hello from curl"}\n\n' } } }] });
  process.stdout.write(`
kong-grip examples running
  open      ${page}   (SSE chat, long-poll notes, WebSocket chat, reliable feed)
  publish   curl -d '${item.replace(/\n/g, '\\n')}' http://${base.control.host}:${sidecar.controlPort}/publish/
  bus       ${base.nats ? `NATS ${base.nats.servers.join(',')}` : 'in-process (set NATS_URL to use NATS)'}
${process.stdin.isTTY ? '  restart   type r and Enter: the sidecar restarts, the origin keeps running\n' : ''}`);

  let restarting;
  const restart = async () => {
    process.stdout.write('restarting the sidecar…\n');
    await sidecar.close();
    // The same ports as before, even if the first start chose them (port 0).
    const config = loadConfig({
      argv: process.argv.slice(2),
      overrides: { origin: `http://127.0.0.1:${originPort}`, listen: `${base.listen.host}:${sidecar.clientPort}`, control: `${base.control.host}:${sidecar.controlPort}` },
    });
    sidecar = await startSidecar({ config, log });
    process.stdout.write('sidecar running again: open pages reconnect by themselves\n');
  };
  if (process.stdin.isTTY) {
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (text) => {
      if (text.trim() !== 'r' || restarting !== undefined) return;
      restarting = restart().catch((err) => {
        process.stderr.write(`example: the sidecar did not restart: ${err.message}\n`);
        process.exit(1);
      }).finally(() => { restarting = undefined; });
    });
  }

  const stop = async () => {
    await restarting;
    await sidecar.close();
    origin.closeAllConnections();
    origin.close(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  process.stderr.write(`example: ${err.message}\n`);
  process.exit(1);
});
