import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

// Bundles the plugin into the one CommonJS file kong-js-pluginserver loads (plugin/dist/grip.js).
// One file, no runtime dependencies: the plugins directory then holds only grip.js and a
// package.json saying "commonjs", so the server's directory scan finds nothing else to trip on.
// CommonJS because the server `require`s plugins; the file name gives the plugin its name.

export const ENTRY = fileURLToPath(new URL('./src/grip.ts', import.meta.url));
export const DEFAULT_OUTFILE = fileURLToPath(new URL('./dist/grip.js', import.meta.url));

export async function buildPlugin(outfile: string = DEFAULT_OUTFILE): Promise<void> {
  await build({
    entryPoints: [ENTRY],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildPlugin(process.argv[2]);
}
