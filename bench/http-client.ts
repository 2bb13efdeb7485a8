// One-shot HTTP requests from the orchestrator: publishing to a proxy, readiness checks,
// reading the origin's counters. A fresh connection each time (Pushpin 1.36 closes its
// control-port connections after every response anyway).

import http from 'node:http';

export interface SimpleResponse {
  status: number;
  body: string;
}

export function request(port: number, method: string, path: string, body?: string, timeoutMs = 10_000): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} on port ${port}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A GRIP publish item carrying `content` in the formats the scenarios use. */
export interface PublishContent {
  channel: string;
  /** Body for long-poll (http-response) holds. */
  response?: string;
  /** Raw bytes appended to stream holds. */
  stream?: string;
  /** WebSocket text message. */
  ws?: string;
}

export function toPublishItem(c: PublishContent): Record<string, unknown> {
  const formats: Record<string, unknown> = {};
  if (c.response !== undefined) formats['http-response'] = { body: c.response };
  if (c.stream !== undefined) formats['http-stream'] = { content: c.stream };
  if (c.ws !== undefined) formats['ws-message'] = { content: c.ws };
  return { channel: c.channel, formats };
}

/** POSTs items to `/publish/`; throws unless the proxy answers 200. */
export async function publish(port: number, items: PublishContent[]): Promise<void> {
  const res = await request(port, 'POST', '/publish/', JSON.stringify({ items: items.map(toPublishItem) }));
  if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${res.body.trim().slice(0, 200)}`);
}
