import type { IncomingMessage, ServerResponse } from 'node:http';
import { ServeGrip } from '@fanoutio/serve-grip';
import { listenHttp } from './http.js';

export const TEST_SIG_KEY = 'test-sig-key-0123456789';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
  isSigned: boolean;
}

type Route = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void | Promise<void>;

/**
 * An origin written the way users write one for Pushpin: @fanoutio/serve-grip validates the
 * Grip-Sig (HS256, iss "pushpin") and refuses requests that did not come through the proxy.
 * Every request is recorded, and each can be awaited.
 */
export async function startGripOrigin(routes: Record<string, Route>, options: {
  sigKey?: string;
  /** Paths answered by hand without serve-grip (e.g. WebSocket-over-HTTP, whose body serve-grip would read again). */
  rawPaths?: readonly string[];
} = {}) {
  const serveGrip = new ServeGrip({
    grip: { control_uri: 'http://127.0.0.1:1/', verify_key: options.sigKey ?? TEST_SIG_KEY, verify_iss: 'pushpin' },
    gripProxyRequired: true,
  });
  const seen: SeenRequest[] = [];
  let waiters: Array<() => void> = [];
  const http = await listenHttp(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const isRaw = options.rawPaths?.includes((req.url ?? '/').split('?')[0] as string) === true;
    if (!isRaw && !(await serveGrip.run(req, res))) return;
    const entry: SeenRequest = {
      method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders,
      body: Buffer.concat(chunks).toString('utf8'), isSigned: req.grip?.isSigned ?? false,
    };
    seen.push(entry);
    const w = waiters;
    waiters = [];
    for (const f of w) f();
    const path = (req.url ?? '/').split('?')[0] as string;
    const route = routes[path];
    if (route === undefined) {
      res.writeHead(404);
      res.end('no such route\n');
      return;
    }
    await route(req, res, entry);
  });
  return {
    ...http,
    seen,
    /** Resolves once at least `count` requests have arrived. */
    async waitForRequests(count: number): Promise<SeenRequest[]> {
      while (seen.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
      return seen;
    },
  };
}
