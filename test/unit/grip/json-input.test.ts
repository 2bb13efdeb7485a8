import test from 'ava';
import { MAX_JSON_DEPTH, describeJson, textNestingExceeds, valueNestingExceeds } from '../../../sidecar/src/grip/json-input.js';

const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;

test('the depth bound is Qt\'s (Pushpin refuses deeper JSON too)', (t) => {
  t.is(MAX_JSON_DEPTH, 1024);
});

test('text nesting: arrays and objects count, brackets inside strings do not', (t) => {
  t.false(textNestingExceeds(nested(3), 3));
  t.true(textNestingExceeds(nested(4), 3));
  t.false(textNestingExceeds('{"a":{"b":[1]}}', 3));
  t.true(textNestingExceeds('{"a":{"b":[{}]}}', 3));
  t.false(textNestingExceeds('["[[[[", "\\"[[[[", {"k{{{":"\\\\"}]', 2));
  t.false(textNestingExceeds('[[1],[2],[3],[4]]', 2));
  t.true(textNestingExceeds(nested(200_000), MAX_JSON_DEPTH));
});

test('value nesting: walked without recursion, so any depth is measured', (t) => {
  t.false(valueNestingExceeds(JSON.parse('{"a":{"b":[1]}}'), 3));
  t.true(valueNestingExceeds(JSON.parse('{"a":{"b":[{}]}}'), 3));
  t.false(valueNestingExceeds('scalar', 0));
  t.false(valueNestingExceeds([[1], [2], [3]], 2));
  t.true(valueNestingExceeds(JSON.parse(nested(200_000)), MAX_JSON_DEPTH));
});

test('describeJson is short and never throws', (t) => {
  t.is(describeJson(undefined), 'nothing');
  t.is(describeJson({ a: 1 }), '{"a":1}');
  t.is(describeJson('x'.repeat(1000)), `"${'x'.repeat(99)}… (1002 chars)`);
  t.is(describeJson(JSON.parse(nested(50_000))), 'a value nested too deeply to show');
  t.is(describeJson(10n), '10');
});
