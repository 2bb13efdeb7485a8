import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { withDeadline } from '../../bench/proc.js';

export interface SimpleResponse {
  status: number;
  reason: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** One HTTP request on a fresh connection; resolves with the whole response. */
export function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, reason: res.statusMessage ?? '', headers: res.headers, rawHeaders: res.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** An open streaming response whose text can be awaited piece by piece. */
export class StreamReader {
  text = '';
  ended = false;
  private waiters: Array<() => void> = [];

  constructor(readonly res: IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => { this.text += chunk; this.wake(); });
    res.on('end', () => { this.ended = true; this.wake(); });
    res.on('close', () => { this.ended = true; this.wake(); });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once the received text contains `needle` (or rejects if the stream ends first). */
  async waitFor(needle: string): Promise<string> {
    while (!this.text.includes(needle)) {
      if (this.ended) throw new Error(`stream ended without ${JSON.stringify(needle)}; got ${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.text;
  }

  async waitForEnd(): Promise<string> {
    while (!this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.text;
  }

  close(): void {
    this.res.destroy();
  }
}

/** Resolves once every stream has received `needle`; rejects, with what each got, after `ms`. */
export async function waitForEach(streams: StreamReader[], needle: string, ms = 10_000): Promise<void> {
  await withDeadline(Promise.all(streams.map((s) => s.waitFor(needle))), ms, () => `${JSON.stringify(needle)} on every stream; got ${JSON.stringify(streams.map((s) => s.text))}`);
}

export function openStream(url: string, headers: Record<string, string> = {}): Promise<StreamReader> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => resolve(new StreamReader(res)));
    req.on('error', reject);
  });
}

/** Starts a plain node:http server on a free port. */
export async function listenHttp(handler: http.RequestListener): Promise<{ server: http.Server; port: number; url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server, port, url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Resolves the next time `emitter` fires `event`. */
export function once<T = unknown>(register: (resolve: (value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve) => register(resolve));
}
