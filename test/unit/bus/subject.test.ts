import test from 'ava';
import {
  DEFAULT_SUBJECT_PREFIX, channelToSubject, decodeChannelToken, encodeChannelToken, normalizeSubjectPrefix,
  subjectToChannel,
} from '../../../sidecar/src/bus/subject.js';

const P = DEFAULT_SUBJECT_PREFIX;

test('leaves a plain channel name unchanged under the default prefix', (t) => {
  t.is(channelToSubject(P, 'news'), 'grip.ch.news');
  t.is(channelToSubject(P, 'room-1_A:b/c@d$e'), 'grip.ch.room-1_A:b/c@d$e');
});

test('escapes the characters NATS reserves and the escape character', (t) => {
  t.is(encodeChannelToken('user.42'), 'user%2E42');
  t.is(encodeChannelToken('a*b'), 'a%2Ab');
  t.is(encodeChannelToken('a>b'), 'a%3Eb');
  t.is(encodeChannelToken('100%'), '100%25');
  t.is(encodeChannelToken('%2E'), '%252E');
  t.is(encodeChannelToken('>'), '%3E');
  t.is(encodeChannelToken('*'), '%2A');
});

test('escapes whitespace and control characters', (t) => {
  t.is(encodeChannelToken('a b'), 'a%20b');
  t.is(encodeChannelToken('a\tb'), 'a%09b');
  t.is(encodeChannelToken('a\r\nb'), 'a%0D%0Ab');
  t.is(encodeChannelToken('\0\x7f'), '%00%7F');
});

test('escapes every byte of non-ASCII characters, so subjects are printable ASCII', (t) => {
  t.is(encodeChannelToken('café'), 'caf%C3%A9');
  t.is(encodeChannelToken('🎉'), '%F0%9F%8E%89');
  t.is(encodeChannelToken('\u00a0'), '%C2%A0'); // no-break space
  for (const ch of ['日本語', '🎉 party.time', 'é*>%\t']) {
    t.regex(encodeChannelToken(ch), /^[\x21-\x7e]+$/);
    t.false(encodeChannelToken(ch).includes('.'));
  }
});

test('round-trips arbitrary channel names', (t) => {
  const names = [
    'news', 'user.42', 'a.b.c', '*', '>', 'a*.>', 'with space', 'tab\there', 'line\nbreak', '%', '%%2E%',
    'café', '日本語のチャンネル', '🎉🎉', 'mix 🎉.*>%\t\u00a0é', '\u0001\u001f\u007f', 'a'.repeat(1024),
  ];
  for (const name of names) {
    const subject = channelToSubject(P, name);
    t.is(subjectToChannel(P, subject), name, name);
  }
});

test('round-trips every single code point class, including lone ASCII bytes', (t) => {
  for (let c = 1; c < 0x250; c++) {
    const name = 'x' + String.fromCodePoint(c) + 'y';
    t.is(decodeChannelToken(encodeChannelToken(name)), name);
  }
});

test('rejects the empty channel', (t) => {
  t.throws(() => encodeChannelToken(''), { instanceOf: RangeError });
});

test('rejects tokens the encoder would not produce', (t) => {
  t.is(decodeChannelToken(''), undefined);
  t.is(decodeChannelToken('a.b'), undefined, 'raw separator');
  t.is(decodeChannelToken('a b'), undefined, 'raw space');
  t.is(decodeChannelToken('a*'), undefined, 'raw wildcard');
  t.is(decodeChannelToken('caf%c3%a9'), undefined, 'lowercase hex');
  t.is(decodeChannelToken('%41'), undefined, 'needless escape of A');
  t.is(decodeChannelToken('%2'), undefined, 'truncated escape');
  t.is(decodeChannelToken('%ZZ'), undefined, 'not hex');
  t.is(decodeChannelToken('%FF'), undefined, 'invalid UTF-8');
  t.is(decodeChannelToken('%C3'), undefined, 'truncated UTF-8');
  t.is(decodeChannelToken('é'), undefined, 'raw non-ASCII');
});

test('maps only subjects under the prefix back to channels', (t) => {
  t.is(subjectToChannel(P, 'grip.ch.news'), 'news');
  t.is(subjectToChannel(P, 'other.news'), undefined);
  t.is(subjectToChannel(P, 'grip.ch.a.b'), undefined);
  t.is(subjectToChannel('app.events.', 'app.events.user%2E1'), 'user.1');
});

test('normalises a configured prefix and rejects unusable ones', (t) => {
  t.deepEqual(normalizeSubjectPrefix('grip.ch.'), { prefix: 'grip.ch.' });
  t.deepEqual(normalizeSubjectPrefix('myapp.grip'), { prefix: 'myapp.grip.' });
  t.deepEqual(normalizeSubjectPrefix('x'), { prefix: 'x.' });
  for (const bad of ['', '.', 'a..b', '.a', 'a.*', 'a.>', 'a b', 'é.x', 'a.b>']) {
    const result = normalizeSubjectPrefix(bad);
    t.true('error' in result, bad);
  }
});
