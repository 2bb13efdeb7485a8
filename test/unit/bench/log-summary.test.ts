import test from 'ava';
import { normalizeLogMessage, summarizePinoLog, summarizePushpinLog } from '../../../bench/log-summary.js';

test('blanks uuids and numbers so repeats group together', (t) => {
  t.is(normalizeLogMessage('error id=1-2-3 seq 4 for 4124f55f-f665-4202-963d-cf35df110a00'), 'error id=… seq N for …');
  t.is(normalizeLogMessage('error id=0-4-a, canceling'), 'error id=…, canceling');
});

test('counts Pushpin warnings and errors by message, most frequent first, ignoring info', (t) => {
  const log = [
    '[INFO] 2026-11-28 04:47:42.927 [proxy] GET / code=200',
    '[WARN] 2026-11-28 04:47:43.014 [handler] zhttp server: error id=1-2-3 received message out of sequence, canceling',
    '[WARN] 2026-11-28 04:47:43.015 [handler] zhttp server: error id=1-2-a received message out of sequence, canceling',
    '[ERR] 2026-11-28 04:47:44.000 [proxy] something else',
  ].join('\n');
  t.deepEqual(summarizePushpinLog(log), [
    '2 × WARN [handler] zhttp server: error id=… received message out of sequence, canceling',
    '1 × ERR [proxy] something else',
  ]);
});

test('counts pino records at warn and above, and stray output lines', (t) => {
  const log = [
    JSON.stringify({ level: 30, msg: 'sidecar started' }),
    JSON.stringify({ level: 40, msg: 'slow consumer dropped', code: 'X' }),
    JSON.stringify({ level: 50, msg: 'origin failed' }),
    'Error: boom',
  ].join('\n');
  t.deepEqual(summarizePinoLog(log), ['1 × WARN slow consumer dropped (X)', '1 × ERROR origin failed', '1 × OUTPUT Error: boom']);
});
