import { KgError } from '../../sidecar/src/errors.js';

// Config-file helpers for the config tests; writeTempYaml lives with the sidecar-process helper
// in bench/ (temporary files are removed when the test worker exits).

export { writeTempYaml } from '../../bench/sidecar-process.js';

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
