import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../sidecar/src/process/cli.ts', import.meta.url));

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('grip-sidecar --help prints the options', async (t) => {
  const r = await run(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /--listen HOST:PORT/);
  t.regex(r.stdout, /--sig-key SECRET/);
});

test('a wrong flag or value stops start-up with a message naming it', async (t) => {
  const bad = await run(['--lissten', '127.0.0.1:1']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /unknown option "--lissten"/);
  const badValue = await run(['--origin', 'http://127.0.0.1:1', '--listen', 'nowhere']);
  t.is(badValue.code, 2);
  t.regex(badValue.stderr, /listen must be HOST:PORT, got "nowhere"/);
});
