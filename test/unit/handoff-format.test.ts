import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import test from 'ava';
import {
  HandoffError, LIMITS, encodeHandoffPayload, openHandoff, signHandoff, type HandoffClaims,
} from '../../sidecar/src/kong/handoff-format.js';
import { HANDOFF_VECTORS, VECTOR_SECRET } from '../helpers/handoff-vectors.js';

/** A token with a valid MAC over an arbitrary payload text, to test the checks behind the MAC. */
function forge(payloadText: string, secret = VECTOR_SECRET): string {
  const signed = `v1.${Buffer.from(payloadText, 'utf8').toString('base64url')}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

function reason(t: { throws: (fn: () => unknown, e?: object) => unknown }, fn: () => unknown): string {
  const err = t.throws(fn, { instanceOf: HandoffError }) as HandoffError;
  return err.reason;
}

const base = HANDOFF_VECTORS[0]!.claims;

for (const v of HANDOFF_VECTORS) {
  test(`signing reproduces the shared vector: ${v.name}`, (t) => {
    t.is(encodeHandoffPayload(v.claims), v.payloadJson);
    t.is(signHandoff(v.claims, VECTOR_SECRET), v.token);
  });

  test(`opening the shared vector gives back its claims: ${v.name}`, (t) => {
    t.deepEqual(openHandoff(v.token, [VECTOR_SECRET]), v.claims);
  });

  test(`the vector is HMAC-SHA256 over "v1." plus the base64url payload: ${v.name}`, (t) => {
    const [version, payload, mac] = v.token.split('.') as [string, string, string];
    t.is(version, 'v1');
    t.is(Buffer.from(payload, 'base64url').toString('utf8'), v.payloadJson);
    t.is(mac, createHmac('sha256', VECTOR_SECRET).update(`v1.${payload}`).digest('base64url'));
  });
}

test('a token signed with another secret is refused as bad_signature', (t) => {
  const token = signHandoff(base, 'a-completely-different-secret-0123456789');
  t.is(reason(t, () => openHandoff(token, [VECTOR_SECRET])), 'bad_signature');
});

test('any of several secrets opens a token (key rotation)', (t) => {
  const token = HANDOFF_VECTORS[0]!.token;
  t.deepEqual(openHandoff(token, ['old-secret-that-no-longer-signs-0000', VECTOR_SECRET]), base);
});

test('a changed payload is refused as bad_signature', (t) => {
  const [v, , mac] = HANDOFF_VECTORS[0]!.token.split('.') as [string, string, string];
  const other = Buffer.from(HANDOFF_VECTORS[0]!.payloadJson.replace('web-app', 'admin')).toString('base64url');
  t.is(reason(t, () => openHandoff(`${v}.${other}.${mac}`, [VECTOR_SECRET])), 'bad_signature');
});

test('a truncated MAC is refused as bad_signature', (t) => {
  t.is(reason(t, () => openHandoff(HANDOFF_VECTORS[0]!.token.slice(0, -4), [VECTOR_SECRET])), 'bad_signature');
});

test('a token whose version is not v1 is refused as malformed, even with a valid MAC over it', (t) => {
  const payload = Buffer.from(HANDOFF_VECTORS[0]!.payloadJson).toString('base64url');
  const mac = createHmac('sha256', VECTOR_SECRET).update(`v2.${payload}`).digest('base64url');
  t.is(reason(t, () => openHandoff(`v2.${payload}.${mac}`, [VECTOR_SECRET])), 'malformed');
});

test('tokens that are not three base64url parts are refused as malformed', (t) => {
  for (const bad of ['', 'v1', 'v1.abc', 'v1.a.b.c', 'v1.a+b.c', 'v1.abc.d=', 'Bearer v1.a.b']) {
    t.is(reason(t, () => openHandoff(bad, [VECTOR_SECRET])), 'malformed', bad);
  }
});

test(`a token longer than ${LIMITS.tokenChars} characters is refused before any MAC work`, (t) => {
  t.is(reason(t, () => openHandoff(`v1.${'a'.repeat(LIMITS.tokenChars)}.b`, [VECTOR_SECRET])), 'malformed');
});

test('a correctly signed payload that is not JSON is refused as malformed', (t) => {
  t.is(reason(t, () => openHandoff(forge('not json'), [VECTOR_SECRET])), 'malformed');
});

test('a correctly signed payload with an unknown or missing field is refused, naming the field', (t) => {
  const extra = JSON.parse(HANDOFF_VECTORS[0]!.payloadJson) as Record<string, unknown>;
  extra['admin'] = true;
  const e1 = t.throws(() => openHandoff(forge(JSON.stringify(extra)), [VECTOR_SECRET]), { instanceOf: HandoffError });
  t.regex(e1.message, /unknown field "admin"/);
  const missing = JSON.parse(HANDOFF_VECTORS[0]!.payloadJson) as Record<string, unknown>;
  delete missing['nonce'];
  const e2 = t.throws(() => openHandoff(forge(JSON.stringify(missing)), [VECTOR_SECRET]), { instanceOf: HandoffError });
  t.regex(e2.message, /lacks field "nonce"/);
});

const badClaims: Array<[string, Partial<HandoffClaims>, RegExp]> = [
  ['iat not an integer', { iat: 1.5 }, /iat must be a non-negative integer/],
  ['negative iat', { iat: -1 }, /iat must be a non-negative integer/],
  ['short nonce', { nonce: 'abc' }, /nonce must be 16-64 base64url characters/],
  ['nonce outside base64url', { nonce: 'AAECAwQFBgcICQoLDA0OD+' }, /nonce must be/],
  ['origin that is not http(s)', { origin: 'ftp://origin/' }, /origin must be an http:\/\/ or https:\/\/ URL/],
  ['origin with a query', { origin: 'http://origin/?x=1' }, /without credentials, query or fragment/],
  ['origin with credentials', { origin: 'http://u:p@origin/' }, /without credentials/],
  ['relative origin', { origin: '/relative' }, /absolute http/],
  ['plugin id with a space', { pluginId: 'a b' }, /plugin must be an id/],
  ['empty route id', { routeId: '' }, /route must be an id .* or null/],
  ['consumer without an id', { consumer: { id: '', username: null, customId: null } }, /consumer.id must be an id/],
  ['empty username', { consumer: { id: 'c1', username: '', customId: null } }, /consumer.username must be a string of 1-1024/],
];

for (const [what, change, message] of badClaims) {
  test(`signing refuses claims with ${what}, and opening refuses them even when correctly signed`, (t) => {
    const claims = { ...base, ...change };
    const e1 = t.throws(() => signHandoff(claims, VECTOR_SECRET), { instanceOf: HandoffError });
    t.regex(e1.message, message);
    const e2 = t.throws(() => openHandoff(forge(encodeHandoffPayload(claims)), [VECTOR_SECRET]), { instanceOf: HandoffError });
    t.is(e2.reason, 'malformed');
    t.regex(e2.message, message);
  });
}

test('the shared format imports nothing but Node built-ins, so the plugin bundle can carry it', (t) => {
  const source = readFileSync(new URL('../../sidecar/src/kong/handoff-format.ts', import.meta.url), 'utf8');
  const imports = [...source.matchAll(/^\s*(?:import|export)\b[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
  t.true(imports.length > 0);
  for (const spec of imports) t.true(spec?.startsWith('node:'), `imports ${spec}`);
});
