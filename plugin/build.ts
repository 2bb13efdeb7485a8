import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type Plugin as EsbuildPlugin } from 'esbuild';

// Bundles the plugin server Kong starts for the grip plugin (plugin/dist/grip-pluginserver.js):
// kong-pdk's server, our socket listener and the grip plugin in one CommonJS file that needs
// nothing but node. No plugins directory, no node_modules beside it.

export const ENTRY = fileURLToPath(new URL('./src/pluginserver.ts', import.meta.url));
export const DEFAULT_OUTFILE = fileURLToPath(new URL('./dist/grip-pluginserver.js', import.meta.url));

// kong-pdk's module loader registers ts-node to load .ts plugins from a directory. The bundle
// carries its one plugin already compiled, so the registration becomes a no-op (and TypeScript
// is not shipped).
const noTsNode: EsbuildPlugin = {
  name: 'no-ts-node',
  setup(b) {
    b.onResolve({ filter: /^ts-node$/ }, () => ({ path: 'ts-node', namespace: 'no-ts-node' }));
    b.onLoad({ filter: /.*/, namespace: 'no-ts-node' }, () => ({ contents: 'module.exports = { register() {} };', loader: 'js' }));
  },
};

/** One CommonJS bundle of `entry` for node, kong-pdk's ts-node registration left out. */
export async function bundleForNode(entry: string, outfile: string, banner?: string): Promise<void> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    ...(banner === undefined ? {} : { banner: { js: banner } }),
    plugins: [noTsNode],
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
}

export async function buildPluginServer(outfile: string = DEFAULT_OUTFILE): Promise<void> {
  await bundleForNode(ENTRY, outfile, '#!/usr/bin/env node');
  // Run directly as a command (Kong's start command, npm's bin link).
  chmodSync(outfile, 0o755);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildPluginServer(process.argv[2]);
}
