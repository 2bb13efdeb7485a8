import { PassThrough } from 'node:stream';
import test from 'ava';
import { KgError } from '../../../sidecar/src/errors.js';
import { Admission, IdleConnections } from '../../../sidecar/src/server/admission.js';
import { FakeClock } from '../holds/fake-clock.js';
import { CONNECTION_LIMIT, refusalFor, SHUTTING_DOWN, writeRefusalToSocket } from '../../../sidecar/src/server/refusals.js';

test('admits up to maxConnections of a kind, refuses the next with the connection-limit answer, admits again after a release', (t) => {
  const admission = new Admission(2);
  t.is(admission.admit('http'), undefined);
  t.is(admission.admit('http'), undefined);
  t.is(admission.admit('http'), CONNECTION_LIMIT);
  t.is(admission.count('http'), 2);
  admission.release('http');
  t.is(admission.admit('http'), undefined);
  t.is(admission.count('http'), 2);
});

test('HTTP requests and WebSocket sessions share one maxConnections count (D11)', (t) => {
  const admission = new Admission(2);
  t.is(admission.admit('http'), undefined);
  t.is(admission.admit('ws'), undefined);
  t.is(admission.admit('ws'), CONNECTION_LIMIT);
  t.is(admission.admit('http'), CONNECTION_LIMIT);
  t.is(admission.count(), 2);
  t.is(admission.count('ws'), 1);
  admission.release('http');
  t.is(admission.admit('ws'), undefined);
  t.is(admission.count('ws'), 2);
  t.is(admission.count(), 2);
});

function idleOn(clock: FakeClock, max: number, timeoutMs: number) {
  const evicted: string[] = [];
  const timedOut: string[] = [];
  const idle = new IdleConnections<string>({
    max, timeoutMs, clock, onEvicted: (c) => evicted.push(c), onTimedOut: (c) => timedOut.push(c),
  });
  return { idle, evicted, timedOut };
}

test('over maxIdleConnections the oldest idle connection is closed, not the newest nor a busy one (D15)', (t) => {
  const clock = new FakeClock();
  const { idle, evicted } = idleOn(clock, 2, 1000);
  idle.add('a');
  clock.advance(10);
  idle.add('b');
  idle.add('busy');
  idle.remove('busy'); // its request head is complete
  clock.advance(10);
  idle.add('c');
  t.deepEqual(evicted, ['a']);
  // A connection idle again (its response done) is the newest, whatever its age.
  idle.add('b');
  idle.add('d');
  t.deepEqual(evicted, ['a', 'c']);
  t.true(idle.has('b') && idle.has('d'));
  t.is(idle.size, 2);
  idle.close();
});

test('an idle connection times out headerTimeoutMs after it became idle; a busy one never', (t) => {
  const clock = new FakeClock();
  const { idle, timedOut } = idleOn(clock, 10, 300);
  idle.add('a');
  clock.advance(100);
  idle.add('b');
  idle.add('busy');
  clock.advance(50);
  idle.remove('busy');
  clock.advance(149);
  t.deepEqual(timedOut, []);
  clock.advance(1);
  t.deepEqual(timedOut, ['a']);
  // Idle again later: a new deadline, counted from then.
  idle.add('a');
  clock.advance(100);
  t.deepEqual(timedOut, ['a', 'b']);
  clock.advance(199);
  t.deepEqual(timedOut, ['a', 'b']);
  clock.advance(1);
  t.deepEqual(timedOut, ['a', 'b', 'a']);
  t.is(idle.size, 0);
  t.is(clock.pending, 0, 'no timer left once nothing is idle');
});

test('once draining, every kind is refused as shutting down, even under the limit', (t) => {
  const admission = new Admission(10);
  admission.startDrain();
  t.true(admission.draining);
  t.is(admission.admit('http'), SHUTTING_DOWN);
  t.is(admission.admit('ws'), SHUTTING_DOWN);
  t.is(admission.count('http'), 0);
});

test('a handoff refusal asks for the handoff; a capacity refusal says when to retry', (t) => {
  const invalid = refusalFor(new KgError('KG_ERR_HANDOFF_INVALID', 'Unauthorized: missing or invalid Kong handoff.'));
  t.is(invalid.status, 401);
  t.deepEqual(invalid.headers, ['WWW-Authenticate', 'Kong-Grip-Handoff']);
  t.is(invalid.outcome, 'KG_ERR_HANDOFF_INVALID');
  t.is(invalid.text, 'Unauthorized: missing or invalid Kong handoff.\n');
  const capacity = refusalFor(new KgError('KG_ERR_HANDOFF_CAPACITY', 'busy'));
  t.deepEqual(capacity.headers, ['Retry-After', '1']);
  const store = refusalFor(new KgError('KG_ERR_HANDOFF_STORE', 'Service Unavailable: the handoff check is unavailable, retry.'));
  t.is(store.status, 503);
  t.deepEqual(store.headers, ['Retry-After', '1'], 'retry soon: the store is usually back within seconds');
  t.is(store.outcome, 'KG_ERR_HANDOFF_STORE');
});

test('a refusal written to an upgrade socket is a whole HTTP/1.1 response that closes the connection once', (t) => {
  const socket = new PassThrough();
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  writeRefusalToSocket(socket, SHUTTING_DOWN);
  const text = Buffer.concat(chunks).toString('latin1');
  const [head, body] = text.split('\r\n\r\n');
  t.is(body, SHUTTING_DOWN.text);
  const lines = (head ?? '').split('\r\n');
  t.is(lines[0], 'HTTP/1.1 503 Service Unavailable');
  t.true(lines.includes('Retry-After: 1'));
  t.true(lines.includes(`Content-Length: ${Buffer.byteLength(SHUTTING_DOWN.text)}`));
  t.is(lines.filter((l) => l.toLowerCase().startsWith('connection:')).length, 1);
});
