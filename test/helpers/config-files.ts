import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KgError } from '../../sidecar/src/errors.js';

// Config-file helpers shared by the config tests and the sidecar-process helper. Temporary
// files are removed when the test worker exits.

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to a fresh sidecar.yml and returns its path. */
export function writeTempYaml(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kg-config-'));
  tempDirs.push(dir);
  const path = join(dir, 'sidecar.yml');
  writeFileSync(path, text);
  return path;
}

/** The message of the KG_ERR_CONFIG_INVALID that `fn` throws (any other outcome fails). */
export function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof KgError && err.code === 'KG_ERR_CONFIG_INVALID') return err.message;
    throw err;
  }
  throw new Error('expected KG_ERR_CONFIG_INVALID');
}
