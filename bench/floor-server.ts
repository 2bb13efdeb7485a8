// The floor: a bare node:http fan-out server with no GRIP at all. `GET /sse?channel=` holds an
// SSE response; `POST /publish/` writes each item's `http-stream` content to every response on
// its channel. Run with the same clients as the proxies, it shows how much of a measured latency
// (and memory per connection) is the clients, the kernel and Node itself rather than the proxy.

import http from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnWithMaxFiles, stopProcess } from './proc.js';
import type { Target } from './target.js';

interface PublishBody {
  items?: Array<{ channel?: string; formats?: { 'http-stream'?: { content?: string } } }>;
}

async function listenFloorServer(): Promise<number> {
  const channels = new Map<string, Set<http.ServerResponse>>();
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://floor');
    if (req.method === 'GET' && url.pathname === '/sse') {
      const channel = url.searchParams.get('channel') ?? '';
      let set = channels.get(channel);
      if (!set) channels.set(channel, (set = new Set()));
      const subscribers = set;
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.write(': open\n\n');
      subscribers.add(res);
      res.once('close', () => subscribers.delete(res));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/publish/') {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        let body: PublishBody;
        try {
          body = JSON.parse(Buffer.concat(parts).toString('utf8')) as PublishBody;
        } catch {
          res.writeHead(400).end('Body is not valid JSON.\n');
          return;
        }
        for (const item of body.items ?? []) {
          const content = item.formats?.['http-stream']?.content;
          if (item.channel === undefined || content === undefined) continue;
          const bytes = Buffer.from(content);
          for (const sub of channels.get(item.channel) ?? []) sub.write(bytes);
        }
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('Published\n');
      });
      return;
    }
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('bench origin\n');
  };
  const server = http.createServer(handle);
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve()));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('floor server: no TCP address');
  return addr.port;
}

/** Starts the floor server in a process of its own (so its RSS is its own, as for the proxies). */
export async function startFloorServer(): Promise<Target> {
  const child = spawnWithMaxFiles(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`floor server exited with code ${code}`)));
  });
  return { name: 'floor', clientPort: port, publishPort: port, rootPid: child.pid!, logSummary: () => [], stop: () => stopProcess(child, 3000) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify({ port: await listenFloorServer() })}\n`);
}
