import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { findKongBundle, transformKongYml, unpackDirFor } from '../helpers/real-kong.js';

// The pure parts of the real-Kong helper: kong.yml's text transform must fail loudly when the file
// no longer has what the suite replaces, and the bundle is found and keyed as .ci/run does.

const YML = 'targets:\n  - target: sidecar-1:7999\n  - target: sidecar-2:7999\n  origin: http://origin:8080\n  origin: http://origin:8080\nconsumers:\n';

test('transformKongYml replaces every occurrence, or one value per occurrence in order', (t) => {
  const out = transformKongYml(YML, [
    { from: 'sidecar-1:7999', to: '127.0.0.1:1' },
    { from: 'origin: http://origin:8080', to: ['origin: http://a', 'origin: http://b'] },
    { from: '\nconsumers:', to: '\n  - added\nconsumers:' },
  ]);
  t.is(out, 'targets:\n  - target: 127.0.0.1:1\n  - target: sidecar-2:7999\n  origin: http://a\n  origin: http://b\n  - added\nconsumers:\n');
});

test('transformKongYml throws when kong.yml lacks a replaced text or has it a different number of times', (t) => {
  t.throws(() => transformKongYml(YML, [{ from: 'sidecar-3:7999', to: 'x' }]), { message: /expected some occurrence\(s\) of "sidecar-3:7999", found 0/ });
  t.throws(() => transformKongYml(YML, [{ from: 'origin: http://origin:8080', to: ['a', 'b', 'c'] }]), { message: /expected 3 occurrence\(s\) .* found 2/ });
});

test('findKongBundle: KONG_BUNDLE wins, and a KONG_BUNDLE that does not exist means no bundle', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'kong-3.9.1-bundle.tar.gz');
  writeFileSync(file, 'x');
  t.is(findKongBundle({ KONG_BUNDLE: file }), file);
  t.is(findKongBundle({ KONG_BUNDLE: join(dir, 'missing.tar.gz') }), undefined);
});

test('unpackDirFor is keyed by size and mtime in seconds, as .ci/run names it (stat -c %s-%Y)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'b.tar.gz');
  writeFileSync(file, 'twelve bytes');
  utimesSync(file, 1_700_000_000.9, 1_700_000_000.9);
  t.is(unpackDirFor(file, '/base'), '/base/kong-grip-kong-12-1700000000');
});
