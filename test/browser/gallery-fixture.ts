import http from 'node:http';
import type { AddressInfo } from 'node:net';
// @ts-expect-error plain JavaScript example, no types
import { createExampleOrigin } from '../../examples/origin.js';
import { startTestSidecar, waitForSubscribers, type TestSidecar } from '../helpers/sidecar.js';

// What `npm start` runs, in this process: the example origin and a sidecar on the in-process bus
// in front of it, with the sidecar alone stoppable and restartable on the same ports (so open
// pages reconnect to it).

export interface GalleryFixture {
  /** A URL of the gallery as a browser opens it (through the sidecar). */
  url(pathAndHash: string): string;
  /** The origin's own URL for a path: a backend posting straight to it, sidecar or not. */
  originUrl(path: string): string;
  /** The sidecar's publish API. */
  publishUrl: string;
  isSidecarRunning(): boolean;
  /** Waits until the running sidecar holds `count` subscribers on `channel`. */
  waitForSubscribers(channel: string, count: number): Promise<void>;
  stopSidecar(): Promise<void>;
  startSidecar(): Promise<void>;
  close(): Promise<void>;
}

export async function startGallery(): Promise<GalleryFixture> {
  // The origin must know the publish URL and the sidecar the origin's: the origin listens first
  // and hands requests to the example origin made once the sidecar's ports are known.
  let example: http.Server | undefined;
  const origin = http.createServer((req, res) => { example?.emit('request', req, res); });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const originBase = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

  let side: TestSidecar | undefined = await startTestSidecar({ origin: originBase, shutdown: { drainMs: 2000 } });
  const clientPort = side.sidecar.clientPort;
  const controlPort = side.sidecar.controlPort;
  const publishUrl = `http://127.0.0.1:${controlPort}/publish/`;
  example = createExampleOrigin({ publishUrl }) as http.Server;

  return {
    url: (pathAndHash) => `http://127.0.0.1:${clientPort}${pathAndHash}`,
    originUrl: (path) => `${originBase}${path}`,
    publishUrl,
    isSidecarRunning: () => side !== undefined,
    async waitForSubscribers(channel, count) {
      if (side === undefined) throw new Error('the sidecar is stopped');
      await waitForSubscribers(side.sidecar.hub, channel, count);
    },
    async stopSidecar() {
      const running = side;
      side = undefined;
      await running?.close();
    },
    async startSidecar() {
      if (side !== undefined) return;
      side = await startTestSidecar({
        origin: originBase, listen: `127.0.0.1:${clientPort}`, control: `127.0.0.1:${controlPort}`, shutdown: { drainMs: 2000 },
      });
    },
    async close() {
      await side?.close();
      side = undefined;
      origin.closeAllConnections();
      await new Promise<void>((resolve) => origin.close(() => resolve()));
    },
  };
}
