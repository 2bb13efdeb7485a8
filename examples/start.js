// npm start: the example origin plus one sidecar in front of it. Uses the in-process bus unless
// NATS_URL is set. Flags are passed to the sidecar (e.g. npm start -- --listen 0.0.0.0:7999).
import { createExampleOrigin } from './origin.js';
import { loadConfig } from '../sidecar/dist/config.js';
import { startSidecar } from '../sidecar/dist/sidecar.js';
import { createLogger } from '../sidecar/dist/log.js';

const originPort = Number(process.env.EXAMPLE_ORIGIN_PORT ?? 8080);

async function main() {
  const base = loadConfig({ argv: process.argv.slice(2), overrides: { origin: `http://127.0.0.1:${originPort}` } });
  const publishUrl = `http://${base.control.host}:${base.control.port}/publish/`;
  const origin = createExampleOrigin({ publishUrl });
  await new Promise((resolve, reject) => origin.once('error', reject).listen(originPort, '127.0.0.1', resolve));
  const log = createLogger(base.logLevel);
  const sidecar = await startSidecar({ config: base, log });
  const page = `http://${base.listen.host}:${sidecar.clientPort}/`;
  const item = JSON.stringify({ items: [{ channel: 'demo', formats: { 'http-stream': { content: 'data: {"text":"hello from curl"}\n\n' } } }] });
  process.stdout.write(`
kong-grip example running
  open      ${page}
  publish   curl -d '${item.replace(/\n/g, '\\n')}' http://${base.control.host}:${sidecar.controlPort}/publish/
  bus       ${base.nats ? `NATS ${base.nats.servers.join(',')}` : 'in-process (set NATS_URL to use NATS)'}
`);
  const stop = () => sidecar.close().then(() => origin.close(() => process.exit(0)));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  process.stderr.write(`example: ${err.message}\n`);
  process.exit(1);
});
