import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { FakeKongRequest, KongRpcDriver, RpcError } from './kong-rpc-driver.js';

// A stand-in for Kong's proxy path in end-to-end tests: key-auth (apikey header or query →
// consumer, 401 otherwise), then the grip plugin's access phase run through the real plugin
// server (KongRpcDriver), then its effects applied (exit, or the upstream headers as the plugin
// left them), then the request proxied to the sidecar with the response streamed back
// unbuffered (response_buffering: false). Like Kong, a plugin server it cannot reach is logged
// and skipped: the request then goes upstream without the plugin's effects (fail open), which
// the sidecar must refuse.

export interface GatewayConsumer {
  id: string;
  username: string;
  custom_id?: string;
}

export interface GatewayRoute {
  /** Plugin instance id (from StartInstance) and the plugin entity it was started for. */
  instanceId: number;
  pluginId: string;
}

export interface GatewayOptions {
  driver: () => KongRpcDriver;
  sidecarPort: number;
  route: GatewayRoute;
  /** apikey → consumer, as key-auth's credentials. */
  consumers: Record<string, GatewayConsumer>;
}

export interface Gateway {
  url(path: string): string;
  /** Every access phase run, with what the plugin did. */
  readonly runs: FakeKongRequest[];
  /** Plugin-server failures Kong would have logged. */
  readonly pluginErrors: string[];
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const runs: FakeKongRequest[] = [];
  const pluginErrors: string[] = [];

  type Admission =
    | { kind: 'refused'; status: number; headers: Record<string, string>; body: string }
    | { kind: 'admitted'; path: string; headers: Array<[string, string | string[]]> };

  /** key-auth, then the grip plugin's access phase through the real plugin server. */
  const admit = async (req: IncomingMessage): Promise<Admission> => {
    const url = new URL(req.url ?? '/', 'http://gateway.invalid');
    // key-auth: key in header or query; hide_credentials removes it before upstream.
    const key = (req.headers['apikey'] as string | undefined) ?? url.searchParams.get('apikey') ?? undefined;
    const consumer = key === undefined ? undefined : options.consumers[key];
    if (consumer === undefined) {
      return { kind: 'refused', status: 401, headers: { 'Content-Type': 'application/json' }, body: '{"message":"No API key found in request"}' };
    }
    url.searchParams.delete('apikey');
    const headers: Record<string, string[]> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = (req.rawHeaders[i] as string).toLowerCase();
      if (name === 'apikey' || HOP_BY_HOP.has(name)) continue;
      (headers[name] ??= []).push(req.rawHeaders[i + 1] as string);
    }
    // key-auth's set_consumer: identity headers set (or cleared) for the upstream.
    headers['x-consumer-id'] = [consumer.id];
    headers['x-consumer-username'] = [consumer.username];
    if (consumer.custom_id !== undefined) headers['x-consumer-custom-id'] = [consumer.custom_id];
    else delete headers['x-consumer-custom-id'];
    headers['x-forwarded-for'] = [req.socket.remoteAddress ?? ''];
    headers['x-forwarded-proto'] = ['http'];

    const kongReq = new FakeKongRequest({ pluginId: options.route.pluginId, consumer: { ...consumer, created_at: 1767225000, tags: null }, headers });
    runs.push(kongReq);
    try {
      await options.driver().runPhase(options.route.instanceId, 'access', kongReq);
    } catch (err) {
      if (!(err instanceof RpcError) && (err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Kong: "trying to connect: ..." in the error log, then the request proceeds.
      pluginErrors.push((err as Error).message);
      kongReq.headers.clear();
      for (const [k, v] of Object.entries(headers)) kongReq.headers.set(k, v);
    }
    if (kongReq.luaError !== undefined) {
      return { kind: 'refused', status: 500, headers: { 'Content-Type': 'application/json' }, body: '{"message":"An unexpected error occurred"}' };
    }
    if (kongReq.exit !== undefined) {
      const body = kongReq.exit.body === undefined ? '' : JSON.stringify(kongReq.exit.body);
      return { kind: 'refused', status: kongReq.exit.status, headers: { 'Content-Type': 'application/json', ...kongReq.exit.headers }, body };
    }
    return {
      kind: 'admitted', path: url.pathname + url.search,
      headers: [...kongReq.headers].map(([k, v]) => [k, v.length === 1 ? v[0] as string : v]),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const admission = await admit(req);
    if (admission.kind === 'refused') {
      res.writeHead(admission.status, admission.headers);
      res.end(admission.body);
      req.resume();
      return;
    }
    const upstream = http.request({
      host: '127.0.0.1', port: options.sidecarPort, method: req.method, path: admission.path, agent: false,
      headers: Object.fromEntries(admission.headers),
    }, (up) => {
      const relayed: string[] = [];
      for (let i = 0; i < up.rawHeaders.length; i += 2) {
        const name = up.rawHeaders[i] as string;
        if (!HOP_BY_HOP.has(name.toLowerCase())) relayed.push(name, up.rawHeaders[i + 1] as string);
      }
      res.writeHead(up.statusCode ?? 502, up.statusMessage, relayed);
      res.flushHeaders();
      up.pipe(res);
      res.once('close', () => up.destroy());
    });
    upstream.once('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.once('close', () => upstream.destroy());
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  // WebSocket upgrades: admitted like any request, then tunnelled byte for byte to the sidecar,
  // as nginx does for Kong routes with Upgrade/Connection passed through.
  server.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => {
    client.on('error', () => undefined);
    admit(req).then((admission) => {
      if (admission.kind === 'refused') {
        client.end(`HTTP/1.1 ${admission.status} Refused\r\nContent-Length: ${Buffer.byteLength(admission.body)}\r\nConnection: close\r\n\r\n${admission.body}`);
        return;
      }
      const upstream = netConnect(options.sidecarPort, '127.0.0.1');
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      const lines = [`${req.method ?? 'GET'} ${admission.path} HTTP/1.1`, 'Connection: Upgrade', `Upgrade: ${String(req.headers.upgrade)}`];
      for (const [name, value] of admission.headers) {
        for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    }, () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    runs,
    pluginErrors,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
