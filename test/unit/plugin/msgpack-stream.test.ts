import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import '../../helpers/fc-seed.js';
import { decode, encode } from '@msgpack/msgpack';
import { MessageStream, MessageStreamError, messageEnd } from '../../../plugin/src/msgpack-stream.js';

// The plugin server's message splitter: whatever way the kernel cuts Kong's byte stream into
// reads, the same messages come out, in order; what is not MessagePack, or a message past the
// bound, is refused (an error the listener turns into dropping that one connection).

/** Values of every MessagePack family: nested containers, ints of each width, floats, binary, big strings. */
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.constant(null), fc.boolean(), fc.integer(), fc.maxSafeInteger(), fc.double({ noNaN: true }),
    fc.string(), fc.string({ unit: 'grapheme', maxLength: 300 }), fc.uint8Array({ maxLength: 300 }),
  ),
  node: fc.oneof({ depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 8 }),
    fc.dictionary(fc.string(), tie('node'), { maxKeys: 8 })),
})).node;

/**
 * A message as the decoder gives it back (undefined becomes null), with binary as plain
 * Uint8Array: the decoder returns views of whatever it was given (a Buffer here, or a copy).
 */
const roundTrip = (v: unknown): unknown => plain(decode(encode(v)));

function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** `bytes` cut at `cuts` (any offsets, sorted and clamped here). */
function cut(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    parts.push(Buffer.from(bytes.subarray(from, c)));
    from = c;
  }
  return parts;
}

function decodeAll(parts: Buffer[], stream = new MessageStream()): unknown[] {
  const out: unknown[] = [];
  for (const p of parts) stream.push(p, (m) => { out.push(plain(m)); return true; });
  return out;
}

function concat(messages: unknown[]): Uint8Array {
  return Buffer.concat(messages.map((m) => encode(m)));
}

test('property: messageEnd finds the end of every encoded value, and a lower bound beyond any prefix of it', (t) => {
  t.notThrows(() => fc.assert(fc.property(value, fc.nat(), (v, k) => {
    const bytes = encode(v);
    if (messageEnd(bytes, 0) !== bytes.length) return false;
    // With trailing bytes of the next message it still stops at this one's end.
    if (messageEnd(Buffer.concat([bytes, Buffer.from([0x92])]), 0) !== bytes.length) return false;
    const prefix = bytes.subarray(0, k % bytes.length);
    const r = messageEnd(prefix, 0);
    return r < 0 && -r > prefix.length && -r <= bytes.length;
  })));
});

test('property: messages joined in one stream and cut at arbitrary bytes decode to the same messages, in order', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (messages, cuts) => {
    const got = decodeAll(cut(concat(messages), cuts));
    return isDeepStrictEqual(got, messages.map(roundTrip));
  })));
});

test('property: one byte per read decodes the same as one read', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 4 }), (messages) => {
    const bytes = concat(messages);
    const oneByEach = [...bytes].map((b) => Buffer.from([b]));
    return isDeepStrictEqual(decodeAll(oneByEach), decodeAll([Buffer.from(bytes)]));
  }), { numRuns: 50 }));
});

test('16- and 32-bit lengths and counts, split inside their headers and bodies', (t) => {
  const messages = [
    'x'.repeat(70_000), // str32
    'y'.repeat(300), // str16
    Array.from({ length: 70_000 }, (_, i) => i % 300), // array32
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])), // map16
    new Uint8Array(70_000).fill(7), // bin32
    [0, 1, 'plugin.Step', [{ EventId: 3, Data: null }]],
  ];
  const bytes = concat(messages);
  for (const size of [3, 7, 4096, 65_536, bytes.length]) {
    const parts = [];
    for (let i = 0; i < bytes.length; i += size) parts.push(Buffer.from(bytes.subarray(i, i + size)));
    t.deepEqual(decodeAll(parts), messages.map(roundTrip), `reads of ${size} bytes`);
  }
});

test('property: a garbage prefix is refused with an error (never a hang or a wrong message), and only up to the bound', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.array(value, { maxLength: 3 }), fc.array(fc.nat(), { maxLength: 6 }), (garbage, messages, cuts) => {
    // 0xc1 up front is never MessagePack; any other garbage decodes as something or is refused.
    const bytes = Buffer.concat([Buffer.from([0xc1]), garbage, concat(messages)]);
    const stream = new MessageStream(4096);
    let out = 0;
    try {
      for (const p of cut(bytes, cuts)) stream.push(p, () => { out++; return true; });
    } catch (err) {
      return err instanceof Error && out === 0;
    }
    return false;
  })));
});

test('property: any bytes at all either decode or throw an Error; the stream never buffers past its bound', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
    const stream = new MessageStream(64);
    try {
      for (const p of cut(bytes, cuts)) stream.push(p, () => true);
    } catch (err) {
      return err instanceof Error;
    }
    return (stream as unknown as { held: number }).held <= 64;
  })));
});

test('a message announcing more than the bound is refused at its header; one that grows past it, when it does', (t) => {
  // [0, 1, <str32 of 2,000 bytes>: refused with only its header read.
  const announced = Buffer.from([0x94, 0x00, 0x01, 0xdb, 0x00, 0x00, 0x07, 0xd0]);
  t.throws(() => decodeAll([announced], new MessageStream(1024)), { instanceOf: MessageStreamError });
  // An array of 2,000 small ints: each read adds a little; refused once 1,024 bytes are held.
  const grows = encode(Array.from({ length: 2000 }, () => 1));
  const stream = new MessageStream(1024);
  let fed = 0;
  const err = t.throws(() => {
    for (let i = 0; i < grows.length; i += 100) {
      stream.push(Buffer.from(grows.subarray(i, i + 100)), () => true);
      fed += 100;
    }
  }, { instanceOf: MessageStreamError });
  t.regex(err?.message ?? '', /more than 1024 bytes/);
  t.true(fed >= 1000 && fed < 1200, `refused after ${fed} bytes`);
  // A message exactly at the bound passes.
  const fits = encode('z'.repeat(1024 - 3));
  t.is(fits.length, 1024);
  t.deepEqual(decodeAll([Buffer.from(fits.subarray(0, 10)), Buffer.from(fits.subarray(10))], new MessageStream(1024)), ['z'.repeat(1021)]);
});

test('a handler that returns false stops the rest of the read from being decoded', (t) => {
  const stream = new MessageStream();
  const seen: unknown[] = [];
  stream.push(Buffer.from(concat([1, 2, 3])), (m) => { seen.push(m); return false; });
  t.deepEqual(seen, [1]);
});
