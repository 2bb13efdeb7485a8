import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { OPTIONS } from '../../sidecar/src/config.js';
import { writeTempYaml } from '../../bench/sidecar-process.js';
import { SidecarProcess } from '../helpers/sidecar-process.js';

const cli = fileURLToPath(new URL('../../sidecar/src/process/cli.ts', import.meta.url));
/** Long enough for a start under load; a process still running then has failed the test. */
const EXIT_DEADLINE_MS = 45_000;

interface Result { code: number | null; stdout: string; stderr: string }

function run(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    const deadline = setTimeout(() => {
      stderr += `\n[test] still running after ${EXIT_DEADLINE_MS} ms: killed`;
      child.kill('SIGKILL');
    }, EXIT_DEADLINE_MS);
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port some other process holds. */
async function takenPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

/** The lines of a KG_ERR_CONFIG_INVALID message that list problems. */
function problemLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('  - '));
}

test.serial('grip-sidecar --help lists every option with its variable, its limits, /readyz and the exit statuses', async (t) => {
  const r = await run(['--help']);
  t.is(r.code, 0);
  for (const o of OPTIONS) {
    t.true(r.stdout.includes(`  ${o.flag} ${o.arg}`), `${o.flag} is listed`);
    t.true(r.stdout.includes(o.env), `${o.env} is listed`);
  }
  t.regex(r.stdout, /--publish-token TOKEN[\s\S]*at least 8 bytes/);
  t.regex(r.stdout, /--kong-secret SECRET[\s\S]*at least 32 bytes/);
  t.regex(r.stdout, /--workers N[\s\S]*1-256/);
  t.regex(r.stdout, /port 0-65535/);
  t.regex(r.stdout, /GET \/readyz \(200 when the bus is connected, 503/);
  t.regex(r.stdout, /Exit status: 0 .*; 1 when a port cannot be bound/);
  t.true(r.stdout.split('\n').every((l) => l.length <= 100), 'lines fit a terminal');
});

test.serial('--help wins over mistakes beside it', async (t) => {
  const r = await run(['--lissten', 'x', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^Usage: grip-sidecar/);
});

test.serial('a wrong flag or value stops start-up with a message naming it', async (t) => {
  const bad = await run(['--lissten', '127.0.0.1:1']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /unknown option "--lissten" \(did you mean --listen\?\)/);
  const badValue = await run(['--origin', 'http://127.0.0.1:1', '--listen', 'nowhere']);
  t.is(badValue.code, 2);
  t.regex(badValue.stderr, /listen must be HOST:PORT, got "nowhere"/);
});

test.serial('every problem is reported once, all together, with no follow-on errors', async (t) => {
  const r = await run(['--origin', 'not-a-url', '--kong-secrt', 'x', '--publish-token', 'short', 'stray']);
  t.is(r.code, 2);
  t.deepEqual(problemLines(r.stderr), [
    '  - unknown option "--kong-secrt" (did you mean --kong-secret?) (see --help)',
    '  - unexpected argument "stray": options start with -- (see --help)',
    '  - origin must be an http:// or https:// URL, got "not-a-url"',
    '  - publishToken must be a string of at least 8 bytes, got 5 bytes',
  ]);
  const kong = await run(['--kong-secret', 'too-short']);
  t.is(kong.code, 2);
  t.deepEqual(problemLines(kong.stderr), ['  - kong.secret must be a string of at least 32 bytes, got 9 bytes']);
  const missing = await run(['--origin']);
  t.deepEqual(problemLines(missing.stderr), ['  - option --origin needs a value (--origin URL)']);
});

test.serial('unknown config file keys get the nearest known key', async (t) => {
  const file = writeTempYaml('lissten: 127.0.0.1:1\nlimits:\n  maxConection: 5\nhold:\n  channelLinger: 4\nws:\n  totallyUnknown: 1\n');
  const r = await run(['--origin', 'http://127.0.0.1:1', '--config', file]);
  t.is(r.code, 2);
  t.deepEqual(problemLines(r.stderr), [
    `  - lissten is not a known setting (did you mean listen?) (in ${file})`,
    '  - limits.maxConection is not a known setting (did you mean limits.maxConnections?)',
    '  - hold.channelLinger is not a known setting (did you mean hold.channelLingerMs?)',
    '  - ws.totallyUnknown is not a known setting',
  ]);
});

test.serial('a control port in use stops start-up with exit 1, naming --control and GRIP_CONTROL', async (t) => {
  const taken = await takenPort();
  t.teardown(() => taken.server.close());
  const r = await run(['--origin', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--control', `127.0.0.1:${taken.port}`, '--log-level', 'silent']);
  t.is(r.code, 1, r.stderr);
  t.is(r.stderr, `grip-sidecar: cannot listen on 127.0.0.1:${taken.port} for the control port (publish API, /metrics, /healthz, /readyz): `
    + 'another process already listens there (EADDRINUSE); choose another with --control HOST:PORT, the environment variable '
    + 'GRIP_CONTROL or "control:" in the --config file\n');
});

test.serial('a client port in use stops start-up with exit 1, naming --listen and GRIP_LISTEN', async (t) => {
  const taken = await takenPort();
  t.teardown(() => taken.server.close());
  const r = await run(['--origin', 'http://127.0.0.1:1', '--control', '127.0.0.1:0', '--log-level', 'silent'], { GRIP_LISTEN: `127.0.0.1:${taken.port}` });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, new RegExp(`^grip-sidecar: cannot listen on 127\\.0\\.0\\.1:${taken.port} for the client port: .*\\(EADDRINUSE\\); choose another with --listen HOST:PORT, the environment variable GRIP_LISTEN`));
  t.is(r.stderr.trim().split('\n').length, 1, 'one error');
});

test.serial('with workers, a client port in use stops the whole process with exit 1, reported once', async (t) => {
  const taken = await takenPort();
  t.teardown(() => taken.server.close());
  // NATS need not be up for this: the workers fail to listen before it matters.
  const r = await run(['--origin', 'http://127.0.0.1:1', '--listen', `127.0.0.1:${taken.port}`, '--control', '127.0.0.1:0',
    '--workers', '2', '--nats', 'nats://127.0.0.1:1', '--log-level', 'silent']);
  t.is(r.code, 1, r.stderr);
  const errors = r.stderr.trim().split('\n');
  t.is(errors.length, 1, r.stderr);
  t.regex(errors[0]!, /for the client port: .*\(EADDRINUSE\); choose another with --listen HOST:PORT/);
});

test.serial('secrets and URL credentials never reach the log', async (t) => {
  const secrets = ['origin-password-1', 'sig-key-secret-2', 'publish-token-3'];
  const side = await SidecarProcess.start(['--origin', `http://user:${secrets[0]}@127.0.0.1:1/app`, '--sig-key', secrets[1]!,
    '--publish-token', secrets[2]!, '--log-level', 'debug']);
  t.teardown(() => side.stop());
  // A request whose origin cannot be reached, so the origin shows up in the log.
  const res = await fetch(side.url('/x'));
  t.is(res.status, 502);
  await res.arrayBuffer();
  await side.stop();
  const log = JSON.stringify(side.lines);
  const started = side.lines.find((l) => l.msg === 'sidecar started');
  t.is(started?.['origin'], 'http://***@127.0.0.1:1/app');
  for (const s of secrets) t.false(log.includes(s), `${s} is not logged`);
});

test('README\'s option table lists every option', (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const o of OPTIONS) t.true(readme.includes(`| \`${o.flag} ${o.arg.replace('...', '…')}\``) || readme.includes(`| \`${o.flag} ${o.arg}\``), `${o.flag} ${o.arg} is in README's table`);
  t.regex(readme, /\/readyz/);
});
