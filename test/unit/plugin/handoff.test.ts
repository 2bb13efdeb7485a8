import test from 'ava';
import { CLEARED_HEADERS, HANDOFF_HEADER, consumerFromKong, handoffHeaders } from '../../../plugin/src/handoff.js';
import { HANDOFF_VECTORS, VECTOR_SECRET } from '../../helpers/handoff-vectors.js';

test('the set_headers table carries the shared vector token and clears every listed header', (t) => {
  for (const v of HANDOFF_VECTORS) {
    const table = handoffHeaders(v.claims, VECTOR_SECRET);
    t.is(table[HANDOFF_HEADER], v.token, v.name);
    for (const name of CLEARED_HEADERS) t.deepEqual(table[name], [], name);
    t.is(Object.keys(table).length, CLEARED_HEADERS.length + 1);
  }
});

test('cleared headers cover client GRIP headers, our identity headers and Kong identity headers', (t) => {
  const lower = new Set(CLEARED_HEADERS.map((h) => h.toLowerCase()));
  for (const h of ['grip-sig', 'grip-last', 'grip-hold', 'grip-channel', 'kong-grip-consumer-id', 'kong-grip-consumer-username',
    'kong-grip-route-id', 'x-consumer-id', 'x-consumer-username', 'x-consumer-custom-id', 'x-credential-identifier',
    'x-consumer-groups', 'x-authenticated-groups', 'x-anonymous-consumer']) {
    t.true(lower.has(h), h);
  }
  t.false(lower.has(HANDOFF_HEADER.toLowerCase()), 'the token itself is set, not cleared');
});

test('a Kong consumer row becomes the token consumer; empty or missing fields become null', (t) => {
  t.deepEqual(consumerFromKong({ id: 'c1', username: 'alice', custom_id: 'u-9', created_at: 1, tags: null }),
    { id: 'c1', username: 'alice', customId: 'u-9' });
  t.deepEqual(consumerFromKong({ id: 'c1', username: '', custom_id: null }), { id: 'c1', username: null, customId: null });
  t.deepEqual(consumerFromKong({ id: 'c1' }), { id: 'c1', username: null, customId: null });
});

test('no consumer (nil arrives as null or undefined) or one without a string id gives no identity', (t) => {
  for (const v of [null, undefined, 'c1', 42, [], {}, { id: '' }, { id: 7, username: 'x' }]) {
    t.is(consumerFromKong(v), null, JSON.stringify(v) ?? 'undefined');
  }
});
