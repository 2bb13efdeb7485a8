import test from 'ava';
import fc from 'fast-check';
import '../helpers/fc-seed.js';
import { forwardRequestHeaders, headerNameStartsWith } from '../../sidecar/src/grip/headers.js';

// What of a client's headers reaches the origin (D14: spellings an origin reads as the same name).

const names = (raw: string[]) => forwardRequestHeaders(raw).map(([k]) => k);

test('every client Grip-* header is dropped, in any case and with "_" for "-"', (t) => {
  const raw = ['Grip-Sig', 'a', 'grip-last', 'b', 'GRIP_SIG', 'c', 'Grip_Last', 'd', 'grip_hold', 'e', 'Gripper', 'f', 'X-Grip-Sig', 'g', 'Accept', 'h'];
  t.deepEqual(names(raw), ['Gripper', 'X-Grip-Sig', 'Accept']);
});

test('hop-by-hop headers and the headers Connection names are still dropped', (t) => {
  const raw = ['Connection', 'close, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'Content-Length', '3', 'X-Kept', '2'];
  t.deepEqual(forwardRequestHeaders(raw), [['X-Kept', '2']]);
});

test('headerNameStartsWith compares case-insensitively with "_" as "-"', (t) => {
  t.true(headerNameStartsWith('Kong_Grip_X', 'kong-grip-'));
  t.true(headerNameStartsWith('KONG-GRIP-', 'kong-grip-'));
  t.false(headerNameStartsWith('Kong-Gri', 'kong-grip-'));
  t.false(headerNameStartsWith('Kong.Grip-X', 'kong-grip-'));
});

test('property: a Grip header in any spelling never passes, other names always do', (t) => {
  const spelling = fc.tuple(fc.constantFrom('Sig', 'Last', 'Hold', 'x'), fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }), fc.boolean())
    .map(([rest, upper, underscore]) => [...'grip'].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('') + (underscore ? '_' : '-') + rest);
  t.notThrows(() => fc.assert(fc.property(spelling, fc.stringMatching(/^X-[A-Za-z]{1,8}$/), (grip, other) => {
    const kept = names([grip, 'v', other, 'w']);
    return kept.length === 1 && kept[0] === other;
  })));
});
