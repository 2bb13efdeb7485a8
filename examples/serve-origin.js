// The example origin on its own (docker-compose.yml runs it): listens on ORIGIN_PORT (8080) on
// every interface and publishes what the page posts to PUBLISH_URL (a sidecar's publish API).
import { createExampleOrigin } from './origin.js';

const port = Number(process.env.ORIGIN_PORT ?? 8080);
const publishUrl = process.env.PUBLISH_URL ?? 'http://127.0.0.1:5561/publish/';

const origin = createExampleOrigin({ publishUrl });
origin.listen(port, '0.0.0.0', () => {
  process.stdout.write(`example origin listening on :${port}, publishing to ${publishUrl}\n`);
});
const stop = () => origin.close(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
