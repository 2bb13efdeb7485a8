import { createHmac } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import {
  HandoffError, LIMITS, encodeHandoffPayload, openHandoff, signHandoff, type HandoffClaims,
} from '../../sidecar/src/kong/handoff-format.js';
import '../helpers/fc-seed.js';
import { HANDOFF_VECTORS, VECTOR_SECRET } from '../helpers/handoff-vectors.js';

// The v2 handoff token: the plugin config's realtime limits, signed. v1 tokens stay readable
// (the format's versioning rule), and a config without limits still signs v1, byte for byte.

const base = HANDOFF_VECTORS[0]!.claims;
const withLimits = (limits: HandoffClaims['limits']): HandoffClaims => ({ ...base, limits });

test('limits all 0 (or absent) sign the same v1 token as before: the vectors do not move', (t) => {
  for (const v of HANDOFF_VECTORS) {
    t.is(signHandoff(v.claims, VECTOR_SECRET), v.token);
    t.is(signHandoff({ ...v.claims, limits: { maxConnectionsPerConsumer: 0, wsMessagesPerSecond: 0, wsBurst: 0 } }, VECTOR_SECRET), v.token);
  }
});

test('a limit makes a v2 token whose payload ends with the limits; it opens to the same claims', (t) => {
  const claims = withLimits({ maxConnectionsPerConsumer: 3, wsMessagesPerSecond: 10, wsBurst: 20 });
  const token = signHandoff(claims, VECTOR_SECRET);
  t.true(token.startsWith('v2.'));
  t.true(encodeHandoffPayload(claims).endsWith(',"limits":{"max_connections":3,"ws_mps":10,"ws_burst":20}}'));
  t.deepEqual(openHandoff(token, [VECTOR_SECRET]), claims);
});

test('a v1 token opens without limits; relabelling a token as the other version breaks its MAC', (t) => {
  const v1 = HANDOFF_VECTORS[0]!.token;
  t.is(openHandoff(v1, [VECTOR_SECRET]).limits, undefined);
  const err = t.throws(() => openHandoff(`v2${v1.slice(2)}`, [VECTOR_SECRET]), { instanceOf: HandoffError });
  t.is(err.reason, 'bad_signature');
  const v2 = signHandoff(withLimits({ maxConnectionsPerConsumer: 1, wsMessagesPerSecond: 0, wsBurst: 0 }), VECTOR_SECRET);
  t.is(t.throws(() => openHandoff(`v1${v2.slice(2)}`, [VECTOR_SECRET]), { instanceOf: HandoffError }).reason, 'bad_signature');
  t.is(t.throws(() => openHandoff(`v3${v2.slice(2)}`, [VECTOR_SECRET]), { instanceOf: HandoffError }).reason, 'malformed');
});

/** Signs an arbitrary payload as `version`, bypassing signHandoff's checks. */
function forge(version: string, doc: unknown): string {
  // Any version's MAC covers "<version>." + payload, as signHandoff computes it.
  const payload = Buffer.from(JSON.stringify(doc), 'utf8').toString('base64url');
  return `${version}.${payload}.${createHmac('sha256', VECTOR_SECRET).update(`${version}.${payload}`).digest('base64url')}`;
}

test('a v2 payload must carry well-formed limits: exact keys, integers in range, not all 0; v1 must not carry them', (t) => {
  const doc = JSON.parse(encodeHandoffPayload(base)) as Record<string, unknown>;
  const bad: unknown[] = [
    undefined, null, 'x', [], {}, { max_connections: 1, ws_mps: 0 }, { max_connections: 1, ws_mps: 0, ws_burst: 0, extra: 1 },
    { max_connections: -1, ws_mps: 0, ws_burst: 0 }, { max_connections: 1.5, ws_mps: 0, ws_burst: 0 },
    { max_connections: LIMITS.maxConnectionsPerConsumer + 1, ws_mps: 0, ws_burst: 0 }, { max_connections: '1', ws_mps: 0, ws_burst: 0 },
    { max_connections: 0, ws_mps: 0, ws_burst: 0 },
  ];
  for (const limits of bad) {
    const err = t.throws(() => openHandoff(forge('v2', { ...doc, limits }), [VECTOR_SECRET]), { instanceOf: HandoffError }, JSON.stringify(limits));
    t.is(err?.reason, 'malformed');
  }
  const v1WithLimits = forge('v1', { ...doc, limits: { max_connections: 1, ws_mps: 0, ws_burst: 0 } });
  t.is(t.throws(() => openHandoff(v1WithLimits, [VECTOR_SECRET]), { instanceOf: HandoffError }).reason, 'malformed');
});

test('property: any limits in range round-trip through sign and open', (t) => {
  t.notThrows(() => fc.assert(fc.property(
    fc.nat(LIMITS.maxConnectionsPerConsumer), fc.nat(LIMITS.wsMessagesPerSecond), fc.nat(LIMITS.wsBurst),
    (max, mps, burst) => {
      const claims = withLimits({ maxConnectionsPerConsumer: max, wsMessagesPerSecond: mps, wsBurst: burst });
      const opened = openHandoff(signHandoff(claims, VECTOR_SECRET), [VECTOR_SECRET]);
      const isZero = max === 0 && mps === 0 && burst === 0;
      return isZero ? opened.limits === undefined : JSON.stringify(opened.limits) === JSON.stringify(claims.limits);
    },
  )));
});
