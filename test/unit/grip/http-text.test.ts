import test from 'ava';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { headerTextProblem, isHttpToken, textProblem, textToWire, wireToText } from '../../../sidecar/src/grip/http-text.js';

// The validator must agree with Node's writer char for char: what it accepts Node writes, what
// it refuses Node throws on.

const nodeAcceptsValue = (v: string): boolean => {
  try {
    validateHeaderValue('X', v);
    return true;
  } catch {
    return false;
  }
};

const nodeAcceptsName = (n: string): boolean => {
  try {
    validateHeaderName(n);
    return true;
  } catch {
    return false;
  }
};

test('header text: every char 0x00-0x1FF and a few wide ones are judged as Node judges them', (t) => {
  const chars = [...Array(0x200).keys()].map((c) => String.fromCharCode(c)).concat(['€', '😀', '\u2028']);
  for (const c of chars) {
    const v = `a${c}b`;
    t.is(headerTextProblem(v) === undefined, nodeAcceptsValue(v), `U+${c.codePointAt(0)?.toString(16)}`);
  }
});

test('header names: tokens as Node judges them', (t) => {
  for (let c = 0; c < 0x100; c++) {
    const n = `X${String.fromCharCode(c)}`;
    t.is(isHttpToken(n), nodeAcceptsName(n), `U+${c.toString(16)}`);
  }
  t.false(isHttpToken(''));
});

test('the problem names the first bad char and where it is', (t) => {
  t.is(headerTextProblem('ok\tfine'), undefined);
  t.is(headerTextProblem('a\u0001b\u007f'), 'contains U+0001 at index 1 (allowed: tab, 0x20-0x7E, 0x80-0xFF)');
  t.is(headerTextProblem('5 €'), 'contains U+20AC at index 2 (allowed: tab, 0x20-0x7E, 0x80-0xFF)');
});

test('JSON text: any char but a control char becomes writable wire text (its UTF-8 bytes), and back (D9)', (t) => {
  const chars = [...Array(0x200).keys()].map((c) => String.fromCharCode(c)).concat(['€', '😀', '\u2028', '\ud800']);
  for (const c of chars) {
    const v = `a${c}b`;
    const wire = textToWire(v);
    t.is(textProblem(v) === undefined, nodeAcceptsValue(wire), `U+${c.codePointAt(0)?.toString(16)}`);
    t.true(Buffer.from(wire, 'latin1').equals(Buffer.from(v, 'utf8')));
  }
  t.is(textToWire('5 €'), '5 \xe2\x82\xac');
  t.is(wireToText('5 \xe2\x82\xac'), '5 €');
  t.is(textToWire('plain'), 'plain');
  t.is(textProblem('5 €\u0001'), 'contains U+0001 at index 3 (allowed: tab and any char but control chars)');
});
