import test from 'ava';
import fc from 'fast-check';
import '../helpers/fc-seed.js';
import { DirectiveError, expandDirectives } from '../../sidecar/src/filters/directives.js';
import { ResponseFilterError, responseBodyRenderer, runFilters } from '../../sidecar/src/filters/filters.js';
import { RUNS } from './arbitraries.js';

// The `%` directive syntax on hostile content (published items and origin bodies): only a
// DirectiveError ever comes out, escaping round-trips, and a body rendered piece by piece gives
// what the whole body gives.

/** Bytes rich in the characters the syntax cares about. */
const syntaxByte = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(0x25, 0x28, 0x29, 0x5c, 0x49, 0x73) }, // % ( ) \ I s
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const content = fc.array(syntaxByte, { maxLength: 40 }).map((bytes) => Buffer.from(bytes));

function expandOrError(input: Buffer): string {
  try {
    return expandDirectives(input, (type, arg) => Buffer.from(`<${type}:${arg?.toString('latin1') ?? ''}>`, 'latin1')).out.toString('latin1');
  } catch (err) {
    if (err instanceof DirectiveError && err.message !== '') return 'error';
    throw err;
  }
}

test('any content expands or fails with a DirectiveError that says why', (t) => {
  t.notThrows(() => fc.assert(fc.property(content, (input) => typeof expandOrError(input) === 'string'), RUNS));
});

test('escaping every % as %% expands back to the original bytes', (t) => {
  t.notThrows(() => fc.assert(fc.property(content, (input) => {
    const escaped = Buffer.from(input.toString('latin1').replaceAll('%', '%%'), 'latin1');
    return expandDirectives(escaped, () => { throw new DirectiveError('no directive expected'); }).out.equals(input);
  }), RUNS));
});

test('partial expansion of any split, resumed with the rest, equals expanding the whole', (t) => {
  t.notThrows(() => fc.assert(fc.property(content, fc.nat(), (input, at) => {
    const whole = expandOrError(input);
    const split = at % (input.length + 1);
    let first: { out: Buffer; consumed: number };
    try {
      first = expandDirectives(input.subarray(0, split), (type, arg) => Buffer.from(`<${type}:${arg?.toString('latin1') ?? ''}>`, 'latin1'), true);
    } catch (err) {
      if (!(err instanceof DirectiveError)) throw err;
      return whole === 'error';
    }
    const rest = expandOrError(input.subarray(first.consumed));
    if (rest === 'error') return whole === 'error';
    return whole === first.out.toString('latin1') + rest;
  }), RUNS));
});

test('the build-id body renderer gives the same bytes whatever the pieces', (t) => {
  const meta = new Map([['id_format', '%(c)s']]);
  t.notThrows(() => fc.assert(fc.property(content, fc.array(fc.nat(), { maxLength: 4 }), (input, cuts) => {
    const whole = render(meta, [input]);
    const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
    const pieces: Buffer[] = [];
    let from = 0;
    for (const p of points) {
      pieces.push(input.subarray(from, p));
      from = p;
    }
    pieces.push(input.subarray(from));
    return render(meta, pieces) === whole;
  }), RUNS));
});

test('the filters never throw on any content and meta: send, drop or a named error', (t) => {
  const text = fc.string({ unit: fc.constantFrom('%', '(', ')', 's', 'I', 'a', ',', ' ', 'c'), maxLength: 12 });
  t.notThrows(() => fc.assert(fc.property(
    fc.subarray(['skip-self', 'skip-users', 'require-sub', 'build-id', 'var-subst', 'other']), fc.dictionary(fc.constantFrom('user', 'id_format', 'id_encoding', 'a'), text),
    fc.dictionary(fc.constantFrom('sender', 'skip_users', 'require_sub'), text), fc.dictionary(fc.constantFrom('a', 'c'), text), content,
    (filters, sub, pub, prevIds, body) => {
      const outcome = runFilters(filters, {
        subMeta: new Map(Object.entries(sub)), pubMeta: pub, prevIds: new Map<string, string | undefined>([['b', undefined], ...Object.entries(prevIds)]),
      }, body);
      return outcome.type !== 'error' || /^(build-id|var-subst): ./.test(outcome.message);
    },
  ), RUNS));
});

function render(meta: ReadonlyMap<string, string>, pieces: Buffer[]): string {
  const r = responseBodyRenderer([['build-id']], meta)!;
  try {
    const out = pieces.map((p) => r.update(p));
    out.push(r.finalize());
    return Buffer.concat(out).toString('latin1');
  } catch (err) {
    if (err instanceof ResponseFilterError) return 'error';
    throw err;
  }
}
