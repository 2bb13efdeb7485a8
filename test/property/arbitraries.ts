import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import fc from 'fast-check';
import '../helpers/fc-seed.js';
import { ErrorCodes, KgError, type ErrorCode } from '../../sidecar/src/errors.js';
import { flatten } from '../../sidecar/src/grip/headers.js';
import type { HeaderList } from '../../sidecar/src/grip/types.js';

// Shared generators and checks for the parser property tests. Runs are kept modest so all of
// test/property takes a few seconds.

export const RUNS = { numRuns: 300 };

/** Any byte as one char: a header value as Node's parser hands it over. */
export const latin1Char = fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c));

/** Chars the parsers treat specially, plus the odd control char and wide char, and any code point. */
export const trickyChar = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(',', ';', '=', '"', '\\', '<', '>', ' ', '\t', '\r', '\n', '\0', '\x01', '\x7f', '\xe9', '€', '/', '~', ':', '{', '[', '}', ']') },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
);
export const trickyString = fc.string({ unit: trickyChar, maxLength: 24 });
export const wireString = fc.string({ unit: latin1Char, maxLength: 24 });

/** RFC 7230 token chars, short. */
export const token = fc.string({ unit: fc.constantFrom(...'abcxyzABCXYZ019-_!#$%&*+.^`|~'), minLength: 1, maxLength: 8 });

/** Runs fn; returns its value, or undefined when it threw a KgError with `code`; rethrows anything else. */
export function refusedOnlyWith<T>(code: ErrorCode, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof KgError && err.code === code && code in ErrorCodes && err.message !== '') return undefined;
    throw err;
  }
}

/** Node's own writer takes this status line and these headers (throws as writeHead would). */
export function nodeWrites(code: number, reason: string, headers: HeaderList): void {
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  res.writeHead(code, reason, flatten(headers));
  if (code < 200) throw new Error(`status ${code} is not a final response`);
}
