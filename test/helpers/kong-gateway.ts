import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { FakeKongRequest, KongRpcDriver, RpcError } from './kong-rpc-driver.js';

// A stand-in for Kong's proxy path in end-to-end tests: the route is chosen by path (Kong's
// regex paths `~...` first, then the longest prefix) and method; its plugins run in Kong's
// priority order: key-auth (key in a header or the query → consumer, 401 otherwise), acl (the
// consumer's groups against `allow`, 403 otherwise), then the grip plugin's access phase run
// through the real plugin server (KongRpcDriver), its effects applied (exit, or the upstream
// headers as the plugin left them); then the request is proxied to the route's upstream port
// (strip_path and the service path applied) with the response streamed back unbuffered
// (response_buffering: false). Like Kong, a plugin server it cannot reach is logged and skipped:
// the request then goes upstream without the plugin's effects (fail open), which the sidecar
// must refuse. Not emulated: rate-limiting, request-size-limiting, anonymous consumers.
// Without `routes`, one catch-all route with key-auth (apikey, header or query) and grip.

export interface GatewayConsumer {
  id: string;
  username: string;
  custom_id?: string;
  /** ACL groups (kong.yml `acls`). */
  groups?: string[];
}

export interface GatewayRoute {
  /** Plugin instance id (from StartInstance) and the plugin entity it was started for. */
  instanceId: number;
  pluginId: string;
}

/** key-auth's config, as in kong.yml. */
export interface KeyAuthConfig {
  key_names: string[];
  key_in_header?: boolean;
  key_in_query?: boolean;
  hide_credentials?: boolean;
}

/** acl's config, as in kong.yml. */
export interface AclConfig {
  allow: string[];
  hide_groups_header?: boolean;
}

/** One Kong route with its service's upstream and plugins. */
export interface GatewayRouteSpec {
  name: string;
  /** Kong paths: a prefix, or `~` and a regex anchored at the start of the path. */
  paths: string[];
  methods?: string[];
  strip_path?: boolean;
  /** The service's path, prefixed to what the route passes on. */
  servicePath?: string;
  upstreamPort: number;
  keyAuth?: KeyAuthConfig;
  acl?: AclConfig;
  grip?: GatewayRoute;
}

export interface GatewayOptions {
  driver?: () => KongRpcDriver;
  /** key → consumer, as key-auth's credentials. */
  consumers: Record<string, GatewayConsumer>;
  routes?: GatewayRouteSpec[];
  /** The catch-all route's upstream and grip instance (when `routes` is not given). */
  sidecarPort?: number;
  route?: GatewayRoute;
}

export interface Gateway {
  url(path: string): string;
  /** Every access phase run, with what the plugin did. */
  readonly runs: FakeKongRequest[];
  /** Plugin-server failures Kong would have logged. */
  readonly pluginErrors: string[];
  close(): Promise<void>;
}

/** Kong's route selection: regex paths first (in order), then the longest matching prefix. */
export function matchRoute(routes: readonly GatewayRouteSpec[], method: string, path: string): { route: GatewayRouteSpec; matched: string } | undefined {
  const allowed = routes.filter((r) => r.methods === undefined || r.methods.includes(method));
  for (const route of allowed) {
    for (const p of route.paths) {
      if (!p.startsWith('~')) continue;
      const m = new RegExp(`^(?:${p.slice(1)})`).exec(path);
      if (m) return { route, matched: m[0] };
    }
  }
  let best: { route: GatewayRouteSpec; matched: string } | undefined;
  for (const route of allowed) {
    for (const p of route.paths) {
      if (!p.startsWith('~') && path.startsWith(p) && (best === undefined || p.length > best.matched.length)) best = { route, matched: p };
    }
  }
  return best;
}

/** The upstream path Kong sends: strip_path removes the matched prefix, the service path goes first. */
function upstreamPath(route: GatewayRouteSpec, matched: string, path: string): string {
  const rest = route.strip_path === true ? path.slice(matched.length) : path;
  const base = route.servicePath ?? '';
  if (base === '') return rest === '' ? '/' : rest;
  if (rest === '') return base;
  return base.endsWith('/') && rest.startsWith('/') ? base + rest.slice(1) : !base.endsWith('/') && !rest.startsWith('/') ? `${base}/${rest}` : base + rest;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const runs: FakeKongRequest[] = [];
  const pluginErrors: string[] = [];
  const routes: GatewayRouteSpec[] = options.routes ?? [{
    name: 'default', paths: ['/'], upstreamPort: options.sidecarPort ?? 0,
    keyAuth: { key_names: ['apikey'], key_in_header: true, key_in_query: true, hide_credentials: true },
    ...(options.route === undefined ? {} : { grip: options.route }),
  }];

  type Admission =
    | { kind: 'refused'; status: number; headers: Record<string, string>; body: string }
    | { kind: 'admitted'; port: number; path: string; headers: Array<[string, string | string[]]> };
  const refuse = (status: number, message: string): Admission => ({
    kind: 'refused', status, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify({ message }),
  });

  /** Route, key-auth, acl, then the grip plugin's access phase through the real plugin server. */
  const admit = async (req: IncomingMessage): Promise<Admission> => {
    const url = new URL(req.url ?? '/', 'http://gateway.invalid');
    const found = matchRoute(routes, req.method ?? 'GET', url.pathname);
    if (found === undefined) return refuse(404, 'no Route matched with those values');
    const { route } = found;
    const headers: Record<string, string[]> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = (req.rawHeaders[i] as string).toLowerCase();
      if (HOP_BY_HOP.has(name)) continue;
      (headers[name] ??= []).push(req.rawHeaders[i + 1] as string);
    }
    let consumer: GatewayConsumer | undefined;
    if (route.keyAuth !== undefined) {
      // key-auth: the first key name found in a header, then in the query; hide_credentials
      // removes it before upstream.
      const ka = route.keyAuth;
      let key: string | undefined;
      for (const name of ka.key_names) {
        const lower = name.toLowerCase();
        if (key === undefined && ka.key_in_header !== false) key = headers[lower]?.[0];
        if (key === undefined && ka.key_in_query !== false) key = url.searchParams.get(name) ?? undefined;
        if (ka.hide_credentials === true) {
          delete headers[lower];
          if (ka.key_in_query !== false) url.searchParams.delete(name);
        }
      }
      if (key === undefined || key === '') return refuse(401, 'No API key found in request');
      consumer = options.consumers[key];
      if (consumer === undefined) return refuse(401, 'Invalid authentication credentials');
      // key-auth's set_consumer: identity headers set (or cleared) for the upstream.
      headers['x-consumer-id'] = [consumer.id];
      headers['x-consumer-username'] = [consumer.username];
      if (consumer.custom_id !== undefined) headers['x-consumer-custom-id'] = [consumer.custom_id];
      else delete headers['x-consumer-custom-id'];
    }
    if (route.acl !== undefined) {
      if (consumer === undefined) return refuse(401, 'Unauthorized');
      const groups = consumer.groups ?? [];
      if (!groups.some((g) => route.acl?.allow.includes(g))) return refuse(403, 'You cannot consume this service');
      if (route.acl.hide_groups_header === true) delete headers['x-consumer-groups'];
      else headers['x-consumer-groups'] = [groups.join(', ')];
    }
    headers['x-forwarded-for'] = [req.socket.remoteAddress ?? ''];
    headers['x-forwarded-proto'] = ['http'];
    const path = upstreamPath(route, found.matched, url.pathname) + url.search;
    if (route.grip === undefined) {
      return { kind: 'admitted', port: route.upstreamPort, path, headers: Object.entries(headers).map(([k, v]) => [k, v.length === 1 ? v[0] as string : v]) };
    }

    const kongReq = new FakeKongRequest({
      pluginId: route.grip.pluginId, headers,
      ...(consumer === undefined ? {} : { consumer: { id: consumer.id, username: consumer.username, ...(consumer.custom_id === undefined ? {} : { custom_id: consumer.custom_id }), created_at: 1767225000, tags: null } }),
    });
    runs.push(kongReq);
    try {
      if (options.driver === undefined) throw new Error('a grip route needs options.driver');
      await options.driver().runPhase(route.grip.instanceId, 'access', kongReq);
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
      kind: 'admitted', port: route.upstreamPort, path,
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
      host: '127.0.0.1', port: admission.port, method: req.method, path: admission.path, agent: false,
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
      const upstream = netConnect(admission.port, '127.0.0.1');
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
