import test from 'ava';
import {
  HeaderSyntaxError, decodeHeaderText, findAllParams, findParam, headerBytes, parseElement, parseHeaderList,
  parseParams, splitHeaderList, unwrapLinkTarget,
} from '../../../sidecar/src/grip/header-params.js';

const syntaxError = (fn: () => unknown): string => {
  const err = (() => { try { fn(); } catch (e) { return e; } return undefined; })();
  if (!(err instanceof HeaderSyntaxError)) throw new Error(`expected HeaderSyntaxError, got ${String(err)}`);
  return err.message;
};

test('splits a list at commas and trims each element', (t) => {
  t.deepEqual(splitHeaderList('a, b ,\tc'), ['a', 'b', 'c']);
  t.deepEqual(splitHeaderList('single'), ['single']);
});

test('keeps empty elements so callers can reject them', (t) => {
  t.deepEqual(splitHeaderList('a,,b'), ['a', '', 'b']);
  t.deepEqual(splitHeaderList('a,'), ['a', '']);
  t.deepEqual(splitHeaderList(''), ['']);
});

test('does not split at commas inside quoted strings, escaped quotes included', (t) => {
  t.deepEqual(splitHeaderList('a; x="1,2", b; y="q\\",r"'), ['a; x="1,2"', 'b; y="q\\",r"']);
});

test('splits inside <...> only when angle brackets are not treated as opaque', (t) => {
  const value = '<http://h/a,b;c>; rel=next, </g>; rel=gone';
  t.deepEqual(splitHeaderList(value, { angleBrackets: true }), ['<http://h/a,b;c>; rel=next', '</g>; rel=gone']);
  t.is(splitHeaderList(value).length, 3);
});

test('rejects an unterminated quoted string, a dangling backslash and an unclosed <', (t) => {
  t.regex(syntaxError(() => splitHeaderList('a; x="open, b')), /unterminated quoted string/);
  t.regex(syntaxError(() => splitHeaderList('a; x="ends\\')), /dangling backslash/);
  t.regex(syntaxError(() => splitHeaderList('<http://h/, x', { angleBrackets: true })), /unterminated <\.\.\.>/);
});

test('parses name=value parameters and keeps the case of names', (t) => {
  t.deepEqual(parseParams(' prev-id=item1; Filter = f1 ;filter=f2'), [
    { name: 'prev-id', value: 'item1' }, { name: 'Filter', value: 'f1' }, { name: 'filter', value: 'f2' },
  ]);
});

test('unquotes quoted values and honours backslash escapes in them', (t) => {
  t.deepEqual(parseParams('x="quoted \\" value"; y="a;b,c"; z=""'), [
    { name: 'x', value: 'quoted " value' }, { name: 'y', value: 'a;b,c' }, { name: 'z', value: '' },
  ]);
});

test('tells a parameter without = (value undefined) from an empty value', (t) => {
  t.deepEqual(parseParams('flag; empty='), [{ name: 'flag', value: undefined }, { name: 'empty', value: '' }]);
});

test('skips empty parameter segments', (t) => {
  t.deepEqual(parseParams('a=1;; ;b=2;'), [{ name: 'a', value: '1' }, { name: 'b', value: '2' }]);
  t.deepEqual(parseParams(''), []);
});

test('rejects a value without a name, an unterminated quote and text after a quoted value', (t) => {
  t.regex(syntaxError(() => parseParams('=x')), /without a name/);
  t.regex(syntaxError(() => parseParams('x="abc')), /unterminated quoted string/);
  t.regex(syntaxError(() => parseParams('x="abc\\')), /unterminated quoted string/);
  t.regex(syntaxError(() => parseParams('x="abc"def; y=1')), /unexpected text after the quoted value of parameter "x"/);
});

test('accepts whitespace after a quoted value', (t) => {
  t.deepEqual(parseParams('x="abc"  ; y=1'), [{ name: 'x', value: 'abc' }, { name: 'y', value: '1' }]);
});

test('an element keeps its first part raw and parses the rest as parameters', (t) => {
  t.deepEqual(parseElement(' apple ; prev-id=item1; filter=f1'), {
    first: 'apple', params: [{ name: 'prev-id', value: 'item1' }, { name: 'filter', value: 'f1' }],
  });
  t.deepEqual(parseElement('"quoted"'), { first: '"quoted"', params: [] });
  t.deepEqual(parseElement('<http://h/a;b>; rel=next', { angleBrackets: true }), {
    first: '<http://h/a;b>', params: [{ name: 'rel', value: 'next' }],
  });
});

test('repeated headers are concatenated as one list (spec parsing example)', (t) => {
  const elements = parseHeaderList(['apple; prev-id=item1; filter=f1', 'banana; filter=f2, cherry']);
  t.deepEqual(elements, [
    { first: 'apple', params: [{ name: 'prev-id', value: 'item1' }, { name: 'filter', value: 'f1' }] },
    { first: 'banana', params: [{ name: 'filter', value: 'f2' }] },
    { first: 'cherry', params: [] },
  ]);
  t.deepEqual(parseHeaderList([]), []);
});

test('finds parameters by name case-insensitively, first or all', (t) => {
  const params = parseParams('Filter=a; prev-id=1; FILTER=b');
  t.deepEqual(findParam(params, 'filter'), { name: 'Filter', value: 'a' });
  t.deepEqual(findAllParams(params, 'filter').map((p) => p.value), ['a', 'b']);
  t.is(findParam(params, 'rel'), undefined);
});

test('unwraps a link target and rejects one without brackets or with nothing inside', (t) => {
  t.is(unwrapLinkTarget('</next?x=1>'), '/next?x=1');
  t.regex(syntaxError(() => unwrapLinkTarget('/next')), /must be written as <URL>, got "\/next"/);
  t.regex(syntaxError(() => unwrapLinkTarget('<>')), /<URL>/);
  t.regex(syntaxError(() => unwrapLinkTarget('<a')), /<URL>/);
});

test('decodes UTF-8 carried in latin1 header strings, and leaves other text alone', (t) => {
  const wire = Buffer.from('café-☃', 'utf8').toString('latin1');
  t.is(decodeHeaderText(wire), 'café-☃');
  t.is(decodeHeaderText('plain'), 'plain');
  t.is(decodeHeaderText('already ☃'), 'already ☃');
  t.is(decodeHeaderText('caf\xe9'), 'caf\xe9'); // lone latin1 byte: not UTF-8, kept as read
});

test('headerBytes gives the wire bytes of a latin1 string, UTF-8 for wider text', (t) => {
  t.deepEqual([...headerBytes('a\xff')], [0x61, 0xff]);
  t.deepEqual([...headerBytes('☃')], [0xe2, 0x98, 0x83]);
});
