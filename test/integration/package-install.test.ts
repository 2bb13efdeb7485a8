import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// What a user gets from the package: a fresh clone at HEAD, `npm ci`, `npm pack`, then the
// tarball installed into an empty project. The bins run, `kong-grip/publish` imports, and its
// types reach TypeScript. npm uses its usual cache (--prefer-offline), so after the repository's
// own `npm ci` nothing needs the network but what the cache lacks.

const repo = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(repo, 'node_modules', '.bin', 'tsc');
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

interface Run { stdout: string; stderr: string }

function run(cmd: string, args: string[], cwd: string): Promise<Run> {
  // npm's own variables from the `npm test` around us (npm_config_*, npm_package_*) would
  // point the inner npm at this checkout; start from a plain environment.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_')) env[k] = v;
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

// A user's module: the publisher's API with its types, and one call TypeScript must refuse.
const CONSUMER_TS = `import { createPublisher, publish, sseEvent, type ItemInput } from 'kong-grip/publish';

const item: ItemInput = { channel: 'news', httpStream: { content: sseEvent({ data: 'hi' }) } };
export const send = (): Promise<void> => publish({ http: { url: 'http://127.0.0.1:5561/' } }, item);
export const make = () => createPublisher({ nats: { servers: 'nats://127.0.0.1:4222' } });
// @ts-expect-error an item needs a channel
export const wrong: ItemInput = { httpStream: { content: 'x' } };
`;

const CONSUMER_MJS = `import * as grip from 'kong-grip/publish';
process.stdout.write(JSON.stringify({ exports: Object.keys(grip).sort(), event: grip.sseEvent({ data: 'hi' }) }));
`;

test('the packed tarball installs into an empty project with working bins, publisher and types', async (t) => {
  // Mostly npm ci: about 20 s on an idle 2-core machine, minutes on a loaded one.
  t.timeout(600_000);
  const dir = await mkdtemp(join(tmpdir(), 'kong-grip-pack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const clone = join(dir, 'clone');
  const app = join(dir, 'app');
  const started = performance.now();
  const lap = (what: string): void => t.log(`${what}: ${Math.round(performance.now() - started)} ms`);

  await run('git', ['clone', '--quiet', '--shared', repo, clone], dir);
  await run('npm', ['ci', ...NPM_FLAGS], clone);
  lap('clone + npm ci');
  // npm ci builds too (the prepare script), so the bin works in the clone at once.
  t.regex((await run('npx', ['--no-install', 'grip-sidecar', '--help'], clone)).stdout, /^Usage: grip-sidecar/);
  // npm ci has just built everything (prepare); a user's plain `npm pack` would build it again.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir, ...NPM_FLAGS], clone);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  lap('npm pack');
  const files = new Set(info!.files.map((f) => f.path));
  const manifest = JSON.parse(await readFile(join(clone, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  for (const target of Object.values(manifest.bin)) t.true(files.has(target), `the tarball holds the bin ${target}`);
  t.true(files.has('sidecar/dist/publish/publisher.js'));
  t.true(files.has('sidecar/dist/publish/publisher.d.ts'));
  t.false([...files].some((f) => f.startsWith('sidecar/src/') || f.startsWith('test/')), 'sources and tests stay out of the tarball');

  await run('mkdir', ['-p', app], dir);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run('npm', ['install', ...NPM_FLAGS, join(dir, info!.filename)], app);
  lap('npm install <tarball>');

  const help = await run('npx', ['--no-install', 'grip-sidecar', '--help'], app);
  t.regex(help.stdout, /^Usage: grip-sidecar/);
  t.regex(help.stdout, /--publish-token TOKEN/);

  await writeFile(join(app, 'use.mjs'), CONSUMER_MJS);
  const used = JSON.parse((await run(process.execPath, ['use.mjs'], app)).stdout) as { exports: string[]; event: string };
  t.true(used.exports.includes('publish') && used.exports.includes('createPublisher'));
  t.is(used.event, 'data: hi\n\n');

  await writeFile(join(app, 'use.ts'), CONSUMER_TS);
  // README's "Use it from your project" example, as a user would paste it.
  const readme = await readFile(join(clone, 'README.md'), 'utf8');
  const example = /## Use it from your project[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  t.truthy(example, 'README shows the publisher in TypeScript');
  await writeFile(join(app, 'readme-example.ts'), `${example}\nexport {};\n`);
  await run(tsc, ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--types', 'node', '--typeRoots', join(repo, 'node_modules', '@types'), 'use.ts', 'readme-example.ts'], app);
  lap('bins, import and types');

  if ('grip-pluginserver' in manifest.bin) {
    const dump = await run('npx', ['--no-install', 'grip-pluginserver', '--dump'], app);
    const plugins = JSON.parse(dump.stdout) as Array<{ Name: string }>;
    t.true(plugins.some((p) => p.Name === 'grip'), 'the plugin server describes the grip plugin');
  }
});
