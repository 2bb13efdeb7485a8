import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import test from 'ava';
import { signHandoff } from '../../sidecar/src/kong/handoff-format.js';
import { PATH_OUTSIDE_BASE_TEXT } from '../../sidecar/src/origin/origin-url.js';
import { listenHttp } from '../helpers/http.js';
import { startTestSidecar } from '../helpers/sidecar.js';
import { useKongNats } from '../helpers/kong-nats.js';

// Kong mode needs NATS with JetStream (the fleet-wide nonce store): one server for the file.
const kongNats = useKongNats();

// The client boundary, probed with raw sockets: HTTP clients normalise paths and header names
// themselves, so what an attacker sends has to be written byte for byte.

const SECRET = 'boundaries-test-handoff-secret-0123456789abcdef';

interface Seen { url: string; headers: IncomingHttpHeaders; rawHeaders: string[] }

/** An origin that answers every request with 200 "ok" and records what it got. */
async function recordingOrigin() {
  const seen: Seen[] = [];
  const server = await listenHttp((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    res.end('ok\n');
  });
  return { ...server, seen };
}

/** Writes `head` to the port as it is and resolves with everything read until the server closes. */
function rawExchange(port: number, head: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    });
    socket.write(head);
  });
}

const get = (path: string, headers: Record<string, string> = {}) =>
  `GET ${path} HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

const upgrade = (path: string, headers: Record<string, string> = {}) =>
  `GET ${path} HTTP/1.1\r\nHost: sidecar\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`
  + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

const handoff = (origin: string) => signHandoff({
  iat: Math.floor(Date.now() / 1000), nonce: randomBytes(16).toString('base64url'), origin,
  routeId: null, serviceId: null, pluginId: 'boundaries-plugin', consumer: null,
}, SECRET);

const CLIMBING = ['/../admin/delete', '/%2E%2E/%2E%2E/etc', '/a/.%2e/../admin', '/..%2Fadmin', '/..\\admin'];

test('standalone: a path climbing out of the origin base path gets 400, plain and as a WebSocket upgrade; the origin sees nothing', async (t) => {
  const origin = await recordingOrigin();
  const side = await startTestSidecar({ origin: `${origin.url}/api` });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const port = side.sidecar.clientPort;
  for (const path of CLIMBING) {
    const plain = await rawExchange(port, get(path));
    t.is(plain.status, 400, path);
    t.true(plain.text.includes(`${PATH_OUTSIDE_BASE_TEXT}\n`), path);
    const ws = await rawExchange(port, upgrade(path));
    t.is(ws.status, 400, `upgrade ${path}`);
    t.true(ws.text.endsWith(`\r\n\r\n${PATH_OUTSIDE_BASE_TEXT}\n`), `upgrade ${path}`);
  }
  t.deepEqual(origin.seen, []);
});

test('standalone: dot segments that stay inside the base path are resolved there', async (t) => {
  const origin = await recordingOrigin();
  const side = await startTestSidecar({ origin: `${origin.url}/api` });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const res = await rawExchange(side.sidecar.clientPort, get('/a/../b/%2e/c?x=/../'));
  t.is(res.status, 200);
  t.deepEqual(origin.seen.map((s) => s.url), ['/api/b/c?x=/../']);
});

test('Kong mode: a path climbing past the handoff origin\'s base path gets 400, plain and as a WebSocket upgrade', async (t) => {
  const origin = await recordingOrigin();
  const base = `${origin.url}/api`;
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [base] } });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const port = side.sidecar.clientPort;
  for (const path of CLIMBING) {
    t.is((await rawExchange(port, get(path, { 'Kong-Grip-Handoff': handoff(base) }))).status, 400, path);
    t.is((await rawExchange(port, upgrade(path, { 'Kong-Grip-Handoff': handoff(base) }))).status, 400, `upgrade ${path}`);
  }
  t.is((await rawExchange(port, get('/../admin'))).status, 401, 'without a handoff the answer is still 401');
  t.deepEqual(origin.seen, []);
  t.is((await rawExchange(port, get('/x/../b', { 'Kong-Grip-Handoff': handoff(base) }))).status, 200);
  t.deepEqual(origin.seen.map((s) => s.url), ['/api/b']);
});

// Spellings of headers that only a verified handoff (or Kong's auth plugins) may set, which CGI,
// WSGI and PHP origins read as the real names (HTTP_KONG_GRIP_CONSUMER_ID), and Grip-* spellings.
const FORGED_SPELLINGS = {
  Kong_Grip_Consumer_Id: 'admin', 'kong-grip-consumer-username': 'admin', X_Consumer_ID: 'admin', 'X-Consumer-Groups': 'admins',
  'X-Authenticated-Userid': 'admin', X_Authenticated_Scope: 'all', 'X-Credential-Identifier': 'k', 'X-Anonymous-Consumer': 'false',
  Grip_Sig: 'forged', 'GRIP-LAST': 'c; last-id=1',
};

function forgedAtOrigin(seen: Seen | undefined): string[] {
  // Grip-Feature is the sidecar's own (the client's copy is spelled GRIP-LAST / Grip_Sig here).
  const names = (seen?.rawHeaders ?? []).filter((n, i) => i % 2 === 0 && n !== 'Grip-Feature');
  return names.filter((n) => /^(kong[-_]grip[-_]|x[-_](consumer|credential|authenticated|anonymous)[-_]|grip[-_])/i.test(n));
}

test('standalone: identity and Grip headers in any spelling never reach the origin', async (t) => {
  const origin = await recordingOrigin();
  const side = await startTestSidecar({ origin: origin.url });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const res = await rawExchange(side.sidecar.clientPort, get('/x', { ...FORGED_SPELLINGS, 'X-Kept': '1' }));
  t.is(res.status, 200);
  t.deepEqual(forgedAtOrigin(origin.seen[0]), []);
  t.is(origin.seen[0]?.headers['x-kept'], '1');
});

test('Kong mode: only the verified identity headers reach the origin, whatever the client spelled', async (t) => {
  const origin = await recordingOrigin();
  const side = await startTestSidecar({ nats: (await kongNats()).url, kongSecret: SECRET, kong: { allowedOrigins: [origin.url] } });
  t.teardown(async () => { await side.close(); await origin.close(); });
  const token = signHandoff({
    iat: Math.floor(Date.now() / 1000), nonce: randomBytes(16).toString('base64url'), origin: origin.url,
    routeId: null, serviceId: null, pluginId: 'boundaries-plugin', consumer: { id: 'alice', username: null, customId: null },
  }, SECRET);
  const res = await rawExchange(side.sidecar.clientPort, get('/x', { ...FORGED_SPELLINGS, 'Kong-Grip-Handoff': token }));
  t.is(res.status, 200);
  t.deepEqual(forgedAtOrigin(origin.seen[0]), ['Kong-Grip-Consumer-Id']);
  t.is(origin.seen[0]?.headers['kong-grip-consumer-id'], 'alice');
});
