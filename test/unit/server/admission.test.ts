import { PassThrough } from 'node:stream';
import test from 'ava';
import { KgError } from '../../../sidecar/src/errors.js';
import { Admission } from '../../../sidecar/src/server/admission.js';
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

test('HTTP and WebSocket are counted apart (one shared count is a later change)', (t) => {
  const admission = new Admission(1);
  t.is(admission.admit('http'), undefined);
  t.is(admission.admit('ws'), undefined);
  t.is(admission.admit('ws'), CONNECTION_LIMIT);
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
