import test from 'ava';
import { parseArgs } from '../../../plugin/src/launcher-args.js';

test('Kong\'s two commands: --dump (or Kong\'s own -dump spelling) and --socket <absolute path>', (t) => {
  t.deepEqual(parseArgs(['--dump']), { kind: 'dump' });
  t.deepEqual(parseArgs(['-dump']), { kind: 'dump' });
  t.deepEqual(parseArgs(['--socket', '/usr/local/kong/grip.sock']), { kind: 'serve', socket: '/usr/local/kong/grip.sock', verbose: false });
  t.deepEqual(parseArgs(['--socket=/k/grip.sock', '-v']), { kind: 'serve', socket: '/k/grip.sock', verbose: true });
  t.deepEqual(parseArgs(['--help']), { kind: 'help' });
});

test('each wrong command line gets one error naming the problem', (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /say --dump or --socket <path>/],
    [['--socket'], /--socket needs the path/],
    [['--socket', ''], /--socket needs the path/],
    [['--socket', 'grip.sock'], /--socket must be an absolute path \(got "grip.sock"\)/],
    [['--socket', `/${'x'.repeat(120)}`], /a Unix socket path has at most 107/],
    [['--dump', '--socket', '/k/s'], /exclude each other/],
    [['--plugins-directory', '/p'], /unknown argument "--plugins-directory"/],
  ];
  for (const [argv, message] of cases) {
    const got = parseArgs(argv);
    t.is(got.kind, 'error', argv.join(' '));
    t.regex((got as { message: string }).message, message, argv.join(' '));
  }
});
