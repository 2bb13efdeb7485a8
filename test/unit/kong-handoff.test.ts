import test from 'ava';
import { isKgError, KgError } from '../../sidecar/src/errors.js';
import { KONG_IDENTITY_HEADERS, signHandoff, type HandoffClaims } from '../../sidecar/src/kong/handoff-format.js';
import {
  CLOCK_SKEW_SEC, HandoffVerifier, ReplayCache, compileAllowedOrigins, handoffFailureReason, isHandoffOwnedHeader,
  verifyHandoff, type HandoffOptions, type NonceStore,
} from '../../sidecar/src/kong/handoff-verifier.js';
import { HANDOFF_VECTORS, VECTOR_SECRET } from '../helpers/handoff-vectors.js';

const [withConsumer, noConsumer, oddUsername] = HANDOFF_VECTORS as [typeof HANDOFF_VECTORS[0], typeof HANDOFF_VECTORS[0], typeof HANDOFF_VECTORS[0]];

const options = (over: Partial<HandoffOptions> = {}): HandoffOptions => ({
  secret: VECTOR_SECRET,
  allowedOrigins: ['http://origin.internal:8080', 'https://api.example.test/app', 'http://origin:8080'],
  maxAgeSec: 30,
  now: withConsumer.claims.iat * 1000,
  ...over,
});

const headersWith = (token: string) => ({ 'kong-grip-handoff': token });

function refusal(t: { throws: (fn: () => unknown, e?: object) => unknown }, fn: () => unknown): { err: KgError; reason: string | undefined } {
  const err = t.throws(fn, { instanceOf: KgError }) as KgError;
  return { err, reason: handoffFailureReason(err) };
}

test('a valid token yields its origin, identity and the identity headers for the origin', (t) => {
  const v = verifyHandoff(headersWith(withConsumer.token), options());
  t.is(v.origin.href, 'http://origin.internal:8080/');
  t.deepEqual(v.identity, {
    consumer: { id: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', username: 'web-app', customId: 'tenant-42' },
    routeId: '7f1c2a9e-0b5d-4c1e-9a3f-2d8e6b4c1a00', serviceId: '3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66',
    pluginId: 'c0ffee00-1234-4abc-8def-0123456789ab',
  });
  t.deepEqual(v.headersForOrigin, [
    ['Kong-Grip-Route-Id', '7f1c2a9e-0b5d-4c1e-9a3f-2d8e6b4c1a00'],
    ['Kong-Grip-Service-Id', '3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66'],
    ['Kong-Grip-Consumer-Id', 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff'],
    ['Kong-Grip-Consumer-Username', 'web-app'],
    ['Kong-Grip-Consumer-Custom-Id', 'tenant-42'],
  ]);
});

test('without a consumer only the route and service headers are set, and null ids are left out', (t) => {
  const v = verifyHandoff(headersWith(noConsumer.token), options());
  t.is(v.origin.href, 'https://api.example.test/app');
  t.is(v.identity.consumer, null);
  t.deepEqual(v.headersForOrigin, [['Kong-Grip-Service-Id', '3b6d9f21-5c4e-4a7b-8e2d-1f0a9c8b7d66']]);
});

test('a username that is not a valid header value is percent-encoded for the origin', (t) => {
  const v = verifyHandoff(headersWith(oddUsername.token), options({ now: oddUsername.claims.iat * 1000 }));
  const username = v.headersForOrigin.find(([k]) => k === 'Kong-Grip-Consumer-Username')?.[1];
  t.is(username, 'Zo%C3%AB%2C%20%22the%20admin%22%0Aline2');
  t.is(decodeURIComponent(username ?? ''), 'Zoë, "the admin"\nline2');
  t.false(v.headersForOrigin.some(([k]) => k === 'Kong-Grip-Consumer-Custom-Id'));
});

test('a request without the header is refused with 401 KG_ERR_HANDOFF_INVALID, reason missing', (t) => {
  const { err, reason } = refusal(t, () => verifyHandoff({}, options()));
  t.true(isKgError(err, 'KG_ERR_HANDOFF_INVALID'));
  t.is(err.status, 401);
  t.is(reason, 'missing');
  t.is(refusal(t, () => verifyHandoff(headersWith(''), options())).reason, 'missing');
});

test('two handoff headers (joined by Node with a comma) are refused as malformed', (t) => {
  const joined = `${withConsumer.token}, ${withConsumer.token}`;
  t.is(refusal(t, () => verifyHandoff(headersWith(joined), options())).reason, 'malformed');
});

test('a forged token is refused as bad_signature', (t) => {
  const forged = signHandoff({ ...withConsumer.claims, consumer: { id: 'admin', username: 'admin', customId: null } }, 'attacker-guessed-secret-0123456789abc');
  t.is(refusal(t, () => verifyHandoff(headersWith(forged), options())).reason, 'bad_signature');
});

test('a token exactly maxAgeSec old is accepted; one second older is refused as expired', (t) => {
  const iatMs = withConsumer.claims.iat * 1000;
  t.notThrows(() => verifyHandoff(headersWith(withConsumer.token), options({ now: iatMs + 30_999 })));
  const { err, reason } = refusal(t, () => verifyHandoff(headersWith(withConsumer.token), options({ now: iatMs + 31_000 })));
  t.is(reason, 'expired');
  t.regex(err.message, /issued 31 s ago, at most 30 s are allowed/);
});

test(`a token up to ${CLOCK_SKEW_SEC} s in the future is accepted (clock skew); further is refused`, (t) => {
  const iatMs = withConsumer.claims.iat * 1000;
  t.notThrows(() => verifyHandoff(headersWith(withConsumer.token), options({ now: iatMs - CLOCK_SKEW_SEC * 1000 })));
  t.is(refusal(t, () => verifyHandoff(headersWith(withConsumer.token), options({ now: iatMs - (CLOCK_SKEW_SEC + 1) * 1000 }))).reason, 'from_future');
});

test('a validly signed token for an origin not on the allow-list is refused', (t) => {
  const { err, reason } = refusal(t, () => verifyHandoff(headersWith(withConsumer.token), options({ allowedOrigins: ['http://origin:8080'] })));
  t.is(reason, 'origin_not_allowed');
  t.regex(err.message, /http:\/\/origin.internal:8080\/, which is not on the sidecar's kong.allowedOrigins/);
});

test('allow-list entries match scheme, host and port exactly and paths on segment boundaries', (t) => {
  const token = (origin: string) => signHandoff({ ...withConsumer.claims, origin }, VECTOR_SECRET);
  const allowed = ['http://a.test:8080/app', 'https://b.test'];
  const ok = (origin: string) => {
    try {
      verifyHandoff(headersWith(token(origin)), options({ allowedOrigins: allowed }));
      return true;
    } catch (err) {
      if (handoffFailureReason(err) === 'origin_not_allowed') return false;
      throw err;
    }
  };
  t.true(ok('http://a.test:8080/app'));
  t.true(ok('http://a.test:8080/app/'));
  t.true(ok('http://a.test:8080/app/v2'));
  t.false(ok('http://a.test:8080/apps'), 'a longer segment is not under /app');
  t.false(ok('http://a.test:8080/'));
  t.false(ok('https://a.test:8080/app'), 'scheme differs');
  t.false(ok('http://a.test:8081/app'), 'port differs');
  t.false(ok('http://a.test.evil/app'));
  t.true(ok('https://b.test:443/anything'), 'default port is the same origin');
  t.false(ok('http://b.test/'));
});

test('allow-list entries that are not http(s) base URLs are rejected, naming the entry', (t) => {
  const err = t.throws(() => compileAllowedOrigins(['http://ok.test', 'origin:8080']));
  t.regex(err?.message ?? '', /allowedOrigins\[1\]/);
});

test('with a replay cache a token is accepted once and refused as replayed after that', (t) => {
  const replayCache = new ReplayCache(35, 100);
  t.notThrows(() => verifyHandoff(headersWith(withConsumer.token), options({ replayCache })));
  const { err, reason } = refusal(t, () => verifyHandoff(headersWith(withConsumer.token), options({ replayCache })));
  t.is(reason, 'replayed');
  t.is(err.status, 401);
});

test('a token refused for another reason does not use up its nonce', (t) => {
  const replayCache = new ReplayCache(35, 100);
  t.is(refusal(t, () => verifyHandoff(headersWith(withConsumer.token), options({ replayCache, allowedOrigins: ['http://x.test'] }))).reason, 'origin_not_allowed');
  t.is(replayCache.size, 0);
  t.notThrows(() => verifyHandoff(headersWith(withConsumer.token), options({ replayCache })));
});

test('the replay cache remembers a nonce for at least one window and forgets it after two', (t) => {
  const cache = new ReplayCache(10, 100);
  cache.claim('n1', 1000);
  t.throws(() => cache.claim('n1', 1009), { message: /already used/ });
  cache.claim('n2', 1010); // starts a new generation; n1 moves to the previous one
  t.throws(() => cache.claim('n1', 1019), { message: /already used/ });
  cache.claim('n3', 1020); // n1's generation is dropped
  t.notThrows(() => cache.claim('n1', 1020));
  cache.claim('n4', 1100); // a gap of more than two windows forgets everything
  t.is(cache.size, 1);
});

test('a full replay cache refuses new tokens with 503 KG_ERR_HANDOFF_CAPACITY instead of accepting them unchecked', (t) => {
  const replayCache = new ReplayCache(35, 1);
  verifyHandoff(headersWith(withConsumer.token), options({ replayCache }));
  const fresh = signHandoff({ ...withConsumer.claims, nonce: 'BBECAwQFBgcICQoLDA0ODw' }, VECTOR_SECRET);
  const { err, reason } = refusal(t, () => verifyHandoff(headersWith(fresh), options({ replayCache })));
  t.true(isKgError(err, 'KG_ERR_HANDOFF_CAPACITY'));
  t.is(err.status, 503);
  t.is(reason, 'replay_cache_full');
});

test('HandoffVerifier keeps one replay cache sized to maxAgeSec plus the clock skew', async (t) => {
  const verifier = new HandoffVerifier({ secret: [VECTOR_SECRET], allowedOrigins: ['http://origin.internal:8080'], maxAgeSec: 20, replayCacheSize: 10 });
  t.is(verifier.replayCache.windowSec, 20 + CLOCK_SKEW_SEC);
  t.is((await verifier.verify(headersWith(withConsumer.token), withConsumer.claims.iat * 1000)).origin.host, 'origin.internal:8080');
  const err = await t.throwsAsync(verifier.verify(headersWith(withConsumer.token), withConsumer.claims.iat * 1000));
  t.is(handoffFailureReason(err), 'replayed');
});

/** A fleet nonce store in memory; `fail` makes it unavailable. */
class FakeStore implements NonceStore {
  readonly claimed = new Set<string>();
  calls = 0;
  fail = false;
  async claimNonce(nonce: string): Promise<boolean> {
    this.calls++;
    if (this.fail) throw new Error('store down');
    if (this.claimed.has(nonce)) return false;
    this.claimed.add(nonce);
    return true;
  }
}

const verifierOn = (store: NonceStore): HandoffVerifier =>
  new HandoffVerifier({ secret: [VECTOR_SECRET], allowedOrigins: ['http://origin.internal:8080'], maxAgeSec: 30, replayCacheSize: 10 }, store);
const atIat = withConsumer.claims.iat * 1000;

test('HandoffVerifier claims the nonce in the fleet store after the local checks, once', async (t) => {
  const store = new FakeStore();
  const v = verifierOn(store);
  t.is((await v.verify(headersWith(withConsumer.token), atIat)).origin.host, 'origin.internal:8080');
  t.deepEqual([...store.claimed], [withConsumer.claims.nonce]);
  // Replayed to the same process: refused by the local cache, no round trip.
  t.is(handoffFailureReason(await t.throwsAsync(v.verify(headersWith(withConsumer.token), atIat))), 'replayed');
  t.is(store.calls, 1);
});

test('HandoffVerifier: forged, expired and foreign-origin tokens cost no store round trip', async (t) => {
  const store = new FakeStore();
  const v = verifierOn(store);
  const [payload, mac] = withConsumer.token.slice(3).split('.');
  const forged = `v1.${payload}.${mac!.startsWith('A') ? 'B' : 'A'}${mac!.slice(1)}`;
  t.is(handoffFailureReason(await t.throwsAsync(v.verify(headersWith(forged), atIat))), 'bad_signature');
  t.is(handoffFailureReason(await t.throwsAsync(v.verify(headersWith(withConsumer.token), atIat + 60_000))), 'expired');
  const foreign = signHandoff({ ...withConsumer.claims, origin: 'http://elsewhere:8080' }, VECTOR_SECRET);
  t.is(handoffFailureReason(await t.throwsAsync(v.verify(headersWith(foreign), atIat))), 'origin_not_allowed');
  t.is(handoffFailureReason(await t.throwsAsync(v.verify({}, atIat))), 'missing');
  t.is(store.calls, 0);
});

test('HandoffVerifier: a nonce another process claimed is refused as replayed (401)', async (t) => {
  const store = new FakeStore();
  store.claimed.add(withConsumer.claims.nonce); // claimed by another worker or sidecar
  const err = await t.throwsAsync(verifierOn(store).verify(headersWith(withConsumer.token), atIat));
  t.true(isKgError(err, 'KG_ERR_HANDOFF_INVALID'));
  t.is((err as KgError).status, 401);
  t.is(handoffFailureReason(err), 'replayed');
});

test('HandoffVerifier fails closed when the store is unavailable (503), and the token stays usable', async (t) => {
  const store = new FakeStore();
  store.fail = true;
  const v = verifierOn(store);
  const err = await t.throwsAsync(v.verify(headersWith(withConsumer.token), atIat));
  t.true(isKgError(err, 'KG_ERR_HANDOFF_STORE'));
  t.is((err as KgError).status, 503);
  t.is(handoffFailureReason(err), 'store_unavailable');
  // Not accepted, so not remembered locally: once the store is back the same token passes.
  store.fail = false;
  t.is((await v.verify(headersWith(withConsumer.token), atIat)).origin.host, 'origin.internal:8080');
});

test('owned headers: every Kong-Grip-* name and the Kong identity headers, in any case', (t) => {
  for (const h of ['Kong-Grip-Handoff', 'kong-grip-consumer-id', 'KONG-GRIP-ANYTHING', 'X-Consumer-ID', 'x-consumer-groups', 'X-Credential-Identifier', 'X-Anonymous-Consumer', 'X-Authenticated-Groups']) {
    t.true(isHandoffOwnedHeader(h), h);
  }
  for (const h of ['Kong-Request-Id', 'X-Consumer', 'Authorization', 'X-Forwarded-For']) t.false(isHandoffOwnedHeader(h), h);
});

test('owned headers are matched with "_" read as "-", as CGI, WSGI and PHP origins read them', (t) => {
  for (const h of ['Kong_Grip_Consumer_Id', 'kong_grip-handoff', 'KONG-GRIP_ROUTE_ID', 'X_Consumer_ID', 'x_consumer-groups', 'X_CREDENTIAL_IDENTIFIER', 'X_Anonymous_Consumer']) {
    t.true(isHandoffOwnedHeader(h), h);
  }
  for (const h of ['Kong_Request_Id', 'X_Consumer', 'Kong_Grip', 'X_Forwarded_For']) t.false(isHandoffOwnedHeader(h), h);
});

test('owned headers: every X-Consumer-*, X-Credential-*, X-Authenticated-* and X-Anonymous-* name Kong\'s auth plugins may set', (t) => {
  for (const h of KONG_IDENTITY_HEADERS) t.true(isHandoffOwnedHeader(h), h);
  for (const h of ['X-Authenticated-Userid', 'X-Authenticated-Scope', 'x_authenticated_userid', 'X-Credential-Username', 'X-Anonymous-Groups', 'X-Consumer-Anything']) {
    t.true(isHandoffOwnedHeader(h), h);
  }
  for (const h of ['X-Authenticated', 'X-Credentials', 'X-Anonymous', 'Xx-Consumer-Id', 'X-ConsumerId']) t.false(isHandoffOwnedHeader(h), h);
});
