import { Writable } from 'node:stream';
import test from 'ava';
import { LazyChildLog } from '../../../sidecar/src/holds/lazy-log.js';
import { createLogger } from '../../../sidecar/src/log.js';

function capture(level: 'debug' | 'info' | 'warn') {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const parent = createLogger(level, sink);
  let children = 0;
  const child = parent.child.bind(parent);
  parent.child = ((...args: Parameters<typeof child>) => {
    children++;
    return child(...args);
  }) as typeof parent.child;
  return { parent, lines, children: () => children };
}

const URL_OF = new URL('http://origin.test/chat/room?x=1');

test('no child logger is made while nothing is written at an enabled level', (t) => {
  const { parent, lines, children } = capture('warn');
  const log = new LazyChildLog(parent, 'ws', 'c-1', URL_OF);
  log.debug({ a: 1 }, 'hidden');
  log.info('hidden too');
  t.is(children(), 0);
  t.is(lines.length, 0);
});

test('a line at an enabled level carries the hold fields, its own fields and its message', (t) => {
  const { parent, lines, children } = capture('info');
  const log = new LazyChildLog(parent, 'ws', 'c-2', URL_OF);
  log.warn({ err: 'boom' }, 'origin failed');
  log.info('plain message');
  log.error({ code: 7 });
  t.is(children(), 1, 'one child, made on the first line and kept');
  t.is(lines.length, 3);
  t.like(lines[0], { level: 40, connId: 'c-2', holdKind: 'ws', route: '/chat/room', err: 'boom', msg: 'origin failed' });
  t.like(lines[1], { level: 30, connId: 'c-2', msg: 'plain message' });
  t.like(lines[2], { level: 50, connId: 'c-2', code: 7 });
});
