import test from 'ava';
import { KgError } from '../../../sidecar/src/errors.js';
import { encodeNatsPayload, invalidPayload, parseNatsPayload } from '../../../sidecar/src/bus/payload.js';
import { streamItem, textOf } from '../../helpers/bus-items.js';

const SUBJECT = 'grip.ch.news';
const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/** The error parseNatsPayload returns for these bytes; fails the test when it returns an item. */
function invalidFor(data: Uint8Array): KgError {
  const result = parseNatsPayload(SUBJECT, 'news', data);
  if (!(result instanceof KgError)) throw new Error(`expected an error, got item ${JSON.stringify(result)}`);
  return result;
}

test('parses a valid item, taking the channel from the subject', (t) => {
  const result = parseNatsPayload(SUBJECT, 'news', bytes('{"id":"7","formats":{"http-stream":{"content":"hello"}}}'));
  if (result instanceof KgError) return t.fail(result.message);
  t.is(result.channel, 'news');
  t.is(result.id, '7');
  t.is(textOf(result), 'hello');
  t.is(result.seq, undefined);
});

test('reads back what encodeNatsPayload wrote, which leaves the channel to the subject', (t) => {
  const item = streamItem('news', 'round trip', { id: 'a', prevId: 'z', meta: { k: 'v' } });
  const payload = encodeNatsPayload(item);
  t.false('channel' in JSON.parse(payload.toString('utf8')));
  t.deepEqual(parseNatsPayload(SUBJECT, 'news', payload), item);
});

test('returns a named error for a payload that is not JSON, naming the subject', (t) => {
  for (const data of [bytes('not json'), bytes('{"formats":'), Buffer.alloc(0)]) {
    const error = invalidFor(data);
    t.is(error.code, 'KG_ERR_NATS_PAYLOAD_INVALID');
    t.regex(error.message, /^NATS message on grip\.ch\.news: payload is not UTF-8 JSON: /);
    t.truthy(error.cause);
  }
});

test('returns a named error for bytes that are not UTF-8', (t) => {
  const error = invalidFor(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
  t.is(error.code, 'KG_ERR_NATS_PAYLOAD_INVALID');
  t.regex(error.message, /payload is not UTF-8 JSON/);
});

test('returns a named error for JSON of the wrong shape, with the publish-item parser\'s reason', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['[1,2]', /publish item object is not an object/],
    ['null', /publish item object is not an object/],
    ['42', /publish item object is not an object/],
    ['{"formats":{}}', /no formats specified/],
    ['{"formats":[]}', /publish item object contains 'formats' with wrong type/],
    ['{"formats":{"http-stream":{"action":"explode"}}}', /'http-stream' contains 'action' with unknown value/],
    ['{"channel":"other","formats":{"http-stream":{"content":"x"}}}', /is not the subject's channel/],
  ];
  for (const [json, reason] of cases) {
    const error = invalidFor(bytes(json));
    t.is(error.code, 'KG_ERR_NATS_PAYLOAD_INVALID', json);
    t.true(error.message.startsWith(`NATS message on ${SUBJECT}: payload`), json);
    t.regex(error.message, reason, json);
    t.is((error.cause as KgError).code, 'KG_ERR_PUBLISH_INVALID', json);
  }
});

test('returns errors rather than throwing them', (t) => {
  t.notThrows(() => parseNatsPayload(SUBJECT, 'news', bytes('{')));
});

test('invalidPayload names the subject and the problem', (t) => {
  const error = invalidPayload('grip.js.news', 'no Nats-Sequence header');
  t.is(error.code, 'KG_ERR_NATS_PAYLOAD_INVALID');
  t.is(error.message, 'NATS message on grip.js.news: no Nats-Sequence header');
});
