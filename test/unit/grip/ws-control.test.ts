import test from 'ava';
import { createWebSocketControlMessage } from '@fanoutio/grip';
import { isKgError } from '../../../sidecar/src/errors.js';
import { parseWsControl } from '../../../sidecar/src/grip/ws-control.js';

test('parses the subscribe message js-grip sends', (t) => {
  t.deepEqual(parseWsControl(createWebSocketControlMessage('subscribe', { channel: 'room-1' })), {
    type: 'subscribe', channel: 'room-1', filters: [],
  });
});

test('parses subscribe filters', (t) => {
  t.deepEqual(parseWsControl('{"type":"subscribe","channel":"c","filters":["skip-self","var-subst"]}'), {
    type: 'subscribe', channel: 'c', filters: ['skip-self', 'var-subst'],
  });
});

test('parses unsubscribe, detach and flush-delayed', (t) => {
  t.deepEqual(parseWsControl('{"type":"unsubscribe","channel":"c"}'), { type: 'unsubscribe', channel: 'c' });
  t.deepEqual(parseWsControl('{"type":"detach"}'), { type: 'detach' });
  t.deepEqual(parseWsControl('{"type":"flush-delayed"}'), { type: 'flush-delayed' });
});

test('parses set-meta with and without a value (no value deletes)', (t) => {
  t.deepEqual(parseWsControl('{"type":"set-meta","name":"user","value":"alice"}'), { type: 'set-meta', name: 'user', value: 'alice' });
  t.deepEqual(parseWsControl('{"type":"set-meta","name":"user"}'), { type: 'set-meta', name: 'user' });
});

test('parses session with an id, and without one as clearing it', (t) => {
  t.deepEqual(parseWsControl('{"type":"session","id":"s1"}'), { type: 'session', id: 's1' });
  t.deepEqual(parseWsControl('{"type":"session"}'), { type: 'session', id: '' });
});

test('parses keep-alive with text content, defaults to idle mode and 55 s', (t) => {
  t.deepEqual(parseWsControl('{"type":"keep-alive","content":"KA"}'), {
    type: 'keep-alive', message: { type: 'text', content: Buffer.from('KA') }, timeoutSec: 55, mode: 'idle',
  });
});

test('parses keep-alive with content-bin, message-type and interval mode; text stays the default type', (t) => {
  t.deepEqual(parseWsControl('{"type":"keep-alive","content-bin":"AAE=","timeout":2,"mode":"interval"}'), {
    type: 'keep-alive', message: { type: 'text', content: Buffer.from([0, 1]) }, timeoutSec: 2, mode: 'interval',
  });
  t.deepEqual(parseWsControl('{"type":"keep-alive","content":"","message-type":"ping","timeout":0}'), {
    type: 'keep-alive', message: { type: 'ping', content: Buffer.alloc(0) }, timeoutSec: 55, mode: 'idle',
  });
});

test('keep-alive without content turns keep-alives off', (t) => {
  t.deepEqual(parseWsControl('{"type":"keep-alive"}'), { type: 'keep-alive', timeoutSec: 55, mode: 'idle' });
});

test('parses send-delayed with a default timeout of 1 s', (t) => {
  t.deepEqual(parseWsControl('{"type":"send-delayed","content":"later"}'), {
    type: 'send-delayed', message: { type: 'text', content: Buffer.from('later') }, timeoutSec: 1,
  });
});

const rejects = (t: import('ava').ExecutionContext, json: string, fragment: RegExp): void => {
  const err = t.throws(() => parseWsControl(json));
  t.true(isKgError(err, 'KG_ERR_WS_CONTROL_INVALID'), String(err));
  t.regex(err?.message ?? '', fragment);
};

test('rejects input that is not a JSON object', (t) => {
  rejects(t, 'subscribe', /not valid JSON/);
  rejects(t, '[1]', /must be a JSON object/);
  rejects(t, 'null', /must be a JSON object/);
});

test('rejects an unknown or missing type, listing the known ones', (t) => {
  rejects(t, '{"type":"publish"}', /'type' must be one of subscribe, unsubscribe, .*, got "publish"/);
  rejects(t, '{"channel":"x"}', /'type' must be one of .*, got nothing/);
});

test('rejects subscribe without a channel, with an empty channel or with bad filters', (t) => {
  rejects(t, '{"type":"subscribe"}', /'channel' must be a non-empty string/);
  rejects(t, '{"type":"subscribe","channel":""}', /'channel' must be a non-empty string/);
  rejects(t, '{"type":"subscribe","channel":5}', /'channel' must be a string, got 5/);
  rejects(t, '{"type":"subscribe","channel":"c","filters":"skip-self"}', /'filters' must be a list of strings/);
});

test('rejects set-meta without a name or with a non-string value', (t) => {
  rejects(t, '{"type":"set-meta","value":"x"}', /'name' must be a non-empty string/);
  rejects(t, '{"type":"set-meta","name":"a","value":1}', /'value' must be a string, got 1/);
});

test('rejects keep-alive with an unknown message-type, bad base64 or a bad timeout', (t) => {
  rejects(t, '{"type":"keep-alive","content":"x","message-type":"close"}', /'message-type' must be one of text, binary, ping, pong/);
  rejects(t, '{"type":"keep-alive","content-bin":"%%%"}', /'content-bin' is not valid base64/);
  rejects(t, '{"type":"keep-alive","content":"x","timeout":-1}', /'timeout' must be an integer ≥ 0, got -1/);
  rejects(t, '{"type":"keep-alive","content":"x","timeout":"5"}', /'timeout' must be an integer/);
});

test('refuses a keep-alive or send-delayed timeout over 24 h, which would overflow Node\'s timer (D8)', (t) => {
  // setTimeout takes at most 2^31-1 ms; 3,000,000 s made the timer fire every millisecond.
  rejects(t, '{"type":"keep-alive","content":"KA","timeout":3000000}', /^control message: 'timeout' must be at most 86400 s \(24 h\), got 3000000$/);
  rejects(t, '{"type":"send-delayed","content":"x","timeout":2147484}', /'timeout' must be at most 86400 s \(24 h\), got 2147484/);
  rejects(t, '{"type":"send-delayed","content":"x","timeout":1e300}', /'timeout' must be at most 86400 s/);
  t.like(parseWsControl('{"type":"keep-alive","content":"KA","timeout":86400}'), { timeoutSec: 86400 });
});

test('refuses a control message nested beyond 1024 levels instead of overflowing the stack (D18)', (t) => {
  const deep = `${'['.repeat(8000)}${']'.repeat(8000)}`;
  rejects(t, `{"type":"subscribe","channel":${deep}}`, /^control message: nested more than 1024 levels deep$/);
  rejects(t, `{"type":"keep-alive","content":"x","mode":${deep}}`, /^control message: nested more than 1024 levels deep$/);
});

test('rejects send-delayed without content', (t) => {
  rejects(t, '{"type":"send-delayed"}', /send-delayed needs 'content' or 'content-bin'/);
});
