import test from 'ava';
import { readFileSync } from 'node:fs';
import { ErrorCodes } from '../../sidecar/src/errors.js';

test('every error code is documented in docs/errors.md', (t) => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  for (const code of Object.keys(ErrorCodes)) t.true(doc.includes(`## ${code}`), `${code} has no section`);
});
