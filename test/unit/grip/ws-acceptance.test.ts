import test from 'ava';
import fc from 'fast-check';
import '../../helpers/fc-seed.js';
import { applyAcceptance, contentBytes, parseContentBytesAccepted } from '../../../sidecar/src/grip/ws-acceptance.js';
import type { WsEvent } from '../../../sidecar/src/grip/ws-events.js';

const text = (s: string): WsEvent => ({ type: 'TEXT', content: Buffer.from(s) });
const binary = (s: string): WsEvent => ({ type: 'BINARY', content: Buffer.from(s) });
const ping = (s: string): WsEvent => ({ type: 'PING', content: Buffer.from(s) });

test('reads Content-Bytes-Accepted in any case; absent, negative or unreadable accepts everything', (t) => {
  t.is(parseContentBytesAccepted([['content-bytes-accepted', '5']]), 5);
  t.is(parseContentBytesAccepted([['Content-Bytes-Accepted', ' 0 ']]), 0);
  t.is(parseContentBytesAccepted([]), undefined);
  t.is(parseContentBytesAccepted([['Content-Bytes-Accepted', '-1']]), undefined);
  t.is(parseContentBytesAccepted([['Content-Bytes-Accepted', 'five']]), undefined);
  t.deepEqual(applyAcceptance([text('hello')], undefined), { type: 'all' });
});

test('5 of an 11-byte message: the other 6 bytes are sent again as the same type (the spec\'s example)', (t) => {
  t.deepEqual(applyAcceptance([text('hello world')], 5), { type: 'partial', remainder: [text(' world')], replayedBytes: 6 });
  t.deepEqual(applyAcceptance([binary('ab'), binary('cd')], 3), { type: 'partial', remainder: [binary('d')], replayedBytes: 1 });
});

test('whole messages accepted are dropped, zero-length ones at the cut too; nothing accepted keeps everything', (t) => {
  t.deepEqual(applyAcceptance([text('abc'), ping(''), text('de')], 3), { type: 'partial', remainder: [text('de')], replayedBytes: 2 });
  t.deepEqual(applyAcceptance([text('abc'), text('de')], 0), { type: 'partial', remainder: [text('abc'), text('de')], replayedBytes: 5 });
  t.deepEqual(applyAcceptance([text('abc'), text('de')], 5), { type: 'all' });
});

test('a CLOSE stays for later while content before it is not accepted; once that is, the CLOSE must be too', (t) => {
  const close: WsEvent = { type: 'CLOSE', code: 1000, reason: 'ok' };
  t.is(contentBytes(close), 4);
  t.deepEqual(applyAcceptance([text('abc'), close], 1), { type: 'partial', remainder: [text('bc'), close], replayedBytes: 2 });
  t.deepEqual(applyAcceptance([text('abc'), close], 7), { type: 'all' });
  t.is(applyAcceptance([text('abc'), close], 3).type, 'invalid');
  t.deepEqual(applyAcceptance([text('abc'), { type: 'CLOSE', reason: '' }], 3), { type: 'all' });
});

test('accepting more than was sent is an error that names both numbers', (t) => {
  t.deepEqual(applyAcceptance([text('abc')], 4), { type: 'invalid', problem: 'Content-Bytes-Accepted 4 is more than the 3 content bytes sent' });
});

test('property: what is accepted plus what is replayed is exactly what was sent, in order', (t) => {
  const event = fc.oneof(
    fc.string({ maxLength: 6 }).map(text),
    fc.string({ maxLength: 6 }).map(binary),
    fc.string({ maxLength: 3 }).map(ping),
  );
  t.notThrows(() => fc.assert(fc.property(fc.array(event, { maxLength: 6 }), fc.nat({ max: 40 }), (events, n) => {
    const all = Buffer.concat(events.map((e) => (e as { content: Buffer }).content));
    const result = applyAcceptance(events, n);
    if (n > all.length) return result.type === 'invalid';
    if (n === all.length) return result.type === 'all';
    if (result.type !== 'partial') return false;
    const rest = Buffer.concat(result.remainder.map((e) => (e as { content: Buffer }).content));
    return result.replayedBytes === all.length - n && rest.equals(all.subarray(n))
      && result.remainder.every((e, i) => i === 0 || events.includes(e));
  })));
});
