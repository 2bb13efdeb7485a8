import test from 'ava';
import { DirectiveError, expandDirectives } from '../../../sidecar/src/filters/directives.js';
import {
  contentFiltersAgree, filterItem, responseBodyRenderer, ResponseFilterError, runFilters, type FilterContext,
} from '../../../sidecar/src/filters/filters.js';
import { MetaLimitError, SubscriptionMeta } from '../../../sidecar/src/filters/sub-meta.js';

// The filter engine as Pushpin defines it (spec 6.3), one filter at a time, then in combination.

function ctx(options: { sub?: Record<string, string>; pub?: Record<string, string>; channels?: string[]; prevIds?: Record<string, string> } = {}): FilterContext {
  // The connection's channels: those given, without ids, and those with prev-ids.
  const prevIds = new Map<string, string | undefined>((options.channels ?? []).map((c) => [c, undefined]));
  for (const [c, id] of Object.entries(options.prevIds ?? {})) prevIds.set(c, id);
  return { subMeta: new Map(Object.entries(options.sub ?? {})), pubMeta: options.pub ?? {}, prevIds };
}

const text = (s: string): Buffer => Buffer.from(s);
function sent(t: { fail(m: string): void }, outcome: ReturnType<typeof runFilters>): string {
  if (outcome.type !== 'send') {
    t.fail(`expected send, got ${JSON.stringify(outcome)}`);
    return '';
  }
  return outcome.content.toString();
}

test('directives: %% is a literal percent, content without % is returned as it is', (t) => {
  const plain = text('no directives');
  t.is(expandDirectives(plain, () => t.fail() as never).out, plain);
  t.is(expandDirectives(text('"pct": "50%%"'), () => Buffer.alloc(0)).out.toString(), '"pct": "50%"');
});

test('directives: %X and %(arg)X reach the handler; backslash escapes inside the parentheses', (t) => {
  const seen: Array<[string, string | undefined]> = [];
  const out = expandDirectives(text('a%Ib%(x\\)y)sc'), (type, arg) => {
    seen.push([type, arg?.toString()]);
    return text(`<${type}>`);
  }).out;
  t.is(out.toString(), 'a<I>b<s>c');
  t.deepEqual(seen, [['I', undefined], ['s', 'x)y']]);
});

test('directives: syntax errors name the problem and position, as Pushpin words them', (t) => {
  const fail = (s: string): string => t.throws(() => expandDirectives(text(s), () => text('')), { instanceOf: DirectiveError })!.message;
  t.is(fail('abc%'), "Expected directive after '%' at position 3");
  t.is(fail('%(abc'), 'Unterminated field starting at position 1');
  t.is(fail('%(abc)'), "Expected directive after ')' at position 5");
  t.is(fail('%1'), "Unknown directive '1' at position 1");
});

test('directives: partial mode leaves an unfinished directive for the next piece', (t) => {
  const r = expandDirectives(text('id: 5%'), () => text('X'), true);
  t.is(r.out.toString(), 'id: 5');
  t.is(r.consumed, 5);
  const r2 = expandDirectives(text('a%(b'), () => text('X'), true);
  t.is(r2.out.toString(), 'a');
  t.is(r2.consumed, 1);
});

test('skip-self drops only when the subscriber user equals the publish sender (both non-empty)', (t) => {
  const filters = ['skip-self'];
  t.is(runFilters(filters, ctx({ sub: { user: 'alice' }, pub: { sender: 'alice' } }), text('x')).type, 'drop');
  t.is(runFilters(filters, ctx({ sub: { user: 'alice' }, pub: { sender: 'bob' } }), text('x')).type, 'send');
  t.is(runFilters(filters, ctx({ pub: { sender: 'alice' } }), text('x')).type, 'send');
  t.is(runFilters(filters, ctx({ sub: { user: 'alice' } }), text('x')).type, 'send');
});

test('skip-users drops a subscriber named in the comma-separated skip_users (spaces trimmed)', (t) => {
  const filters = ['skip-users'];
  t.is(runFilters(filters, ctx({ sub: { user: 'alice' }, pub: { skip_users: 'bob, alice' } }), text('x')).type, 'drop');
  t.is(runFilters(filters, ctx({ sub: { user: 'carol' }, pub: { skip_users: 'bob, alice' } }), text('x')).type, 'send');
  t.is(runFilters(filters, ctx({ pub: { skip_users: 'bob,,alice' } }), text('x')).type, 'send');
});

test('require-sub drops unless the connection is subscribed to the channel in require_sub', (t) => {
  const filters = ['require-sub'];
  t.is(runFilters(filters, ctx({ channels: ['user-alice', 'events-test'], pub: { require_sub: 'events-priv' } }), text('x')).type, 'drop');
  t.is(runFilters(filters, ctx({ channels: ['user-alice', 'events-priv'], pub: { require_sub: 'events-priv' } }), text('x')).type, 'send');
  t.is(runFilters(filters, ctx({ channels: [] }), text('x')).type, 'send');
  // Delivery filters decide for actions without content (close) too.
  t.is(runFilters(filters, ctx({ channels: ['user-alice'], pub: { require_sub: 'events-priv' } }), undefined).type, 'drop');
});

test('build-id renders %I from id_format and the connection prev-ids, %(id)I literally, %% as %', (t) => {
  const c = ctx({
    sub: { id_format: 'a:%(events-a)s,b:%(events-b)s' },
    prevIds: { 'events-a': '1', 'events-b': '0' },
  });
  t.is(sent(t, runFilters(['build-id'], c, text('id: %I\ndata: {"pct": "50%%"}\n\n'))), 'id: a:1,b:0\ndata: {"pct": "50%"}\n\n');
  t.is(sent(t, runFilters(['build-id'], c, text('%(xyz)I'))), 'xyz');
});

test('build-id: id_encoding=hex hex-encodes the id; other encodings and a missing id_format are errors', (t) => {
  const hex = ctx({ sub: { id_format: '%(c)s', id_encoding: 'hex' }, prevIds: { c: 'AB' } });
  t.is(sent(t, runFilters(['build-id'], hex, text('[%I]'))), '[4142]');
  t.deepEqual(runFilters(['build-id'], ctx({ sub: { id_format: 'x', id_encoding: 'b64' }, prevIds: { c: '1' } }), text('%I')),
    { type: 'error', message: 'build-id: unsupported encoding: b64' });
  t.deepEqual(runFilters(['build-id'], ctx({ prevIds: { c: '1' } }), text('%I')), { type: 'error', message: "build-id: no sub meta 'id_format'" });
});

test('build-id: a channel of id_format without a prev-id, or no channel at all, is an error', (t) => {
  const missing = runFilters(['build-id'], ctx({ sub: { id_format: '%(a)s,%(b)s' }, prevIds: { a: '1' } }), text('%I'));
  t.deepEqual(missing, { type: 'error', message: "build-id: failed to render ID: No such variable 'b' at position 10" });
  const noId = runFilters(['build-id'], ctx({ sub: { id_format: '%(a)s,%(b)s' }, channels: ['b'], prevIds: { a: '1' } }), text('%I'));
  t.deepEqual(noId, missing);
  // With channels but an id_format that names none, the id is the format's text.
  t.is(sent(t, runFilters(['build-id'], ctx({ sub: { id_format: 'fixed' }, channels: ['a'] }), text('%I'))), 'fixed');
  const none = runFilters(['build-id'], ctx({ sub: { id_format: '%(a)s' } }), text('id: %I'));
  t.deepEqual(none, { type: 'error', message: 'build-id: No ID specified and no default ID in context at position 5' });
});

test('var-subst replaces %(key)s with subscription meta; an unknown key is an error', (t) => {
  const c = ctx({ sub: { user: 'alice' } });
  t.is(sent(t, runFilters(['var-subst'], c, text('hello %(user)s, 100%%'))), 'hello alice, 100%');
  t.deepEqual(runFilters(['var-subst'], c, text('%(nope)s')), { type: 'error', message: "var-subst: No such variable 'nope' at position 7" });
});

test('filters run in declaration order; the first drop wins over a later content error; unknown names are ignored', (t) => {
  const c = ctx({ sub: { user: 'alice', who: '%(user)s' }, pub: { skip_users: 'alice' } });
  t.is(runFilters(['no-such-filter', 'build-id', 'skip-users'], c, text('%I')).type, 'drop');
  // Each content filter reads what the one before it wrote.
  const both = ctx({ sub: { user: 'alice', id_format: '%(c)s', pct: '%' }, prevIds: { c: '7' } });
  t.is(sent(t, runFilters(['var-subst', 'build-id'], both, text('%(pct)s(z)I'))), 'z');
  t.is(sent(t, runFilters(['build-id', 'var-subst'], both, text('%%(user)s'))), 'alice');
  t.deepEqual(runFilters(['var-subst', 'build-id'], both, text('%I')), { type: 'error', message: "var-subst: Unknown directive 'I' at position 1" });
});

test('content-filter agreement: the format goes only where the content filters are exactly those, in order', (t) => {
  t.true(contentFiltersAgree(['skip-users', 'build-id'], ['build-id']));
  t.true(contentFiltersAgree(['skip-users'], []));
  t.true(contentFiltersAgree([], undefined));
  t.false(contentFiltersAgree(['skip-users'], ['build-id']));
  t.false(contentFiltersAgree(['build-id'], []));
  t.false(contentFiltersAgree(['build-id', 'var-subst'], ['var-subst', 'build-id']));
  const c = ctx({ sub: { id_format: '%(c)s' }, prevIds: { c: '1' } });
  t.is(filterItem(['build-id'], [], c, text('%%')).type, 'drop');
  t.is(sent(t, filterItem(['build-id'], ['build-id'], c, text('%I'))), '1');
});

test('response bodies: build-id renders %% and %(id)I across pieces; a bare %I is an error', (t) => {
  const meta = new Map([['id_format', '%(c)s']]);
  t.is(responseBodyRenderer([['skip-users']], meta), undefined);
  const r = responseBodyRenderer([['skip-users'], ['build-id']], meta)!;
  const out = Buffer.concat([r.update(text('data: 50%')), r.update(text('%\nid: %(')), r.update(text('x)I\n')), r.finalize()]).toString();
  t.is(out, 'data: 50%\nid: x\n');
  const bare = responseBodyRenderer([['build-id']], meta)!;
  t.throws(() => bare.update(text('id: %I')), { instanceOf: ResponseFilterError, message: /^build-id: No ID specified/ });
  const cut = responseBodyRenderer([['build-id']], meta)!;
  cut.update(text('tail %('));
  t.throws(() => cut.finalize(), { instanceOf: ResponseFilterError, message: /Expected character after '\(' at position 1/ });
});

test('subscription meta: set, empty value deletes, limits on keys and bytes leave it unchanged', (t) => {
  const meta = new SubscriptionMeta({ maxKeys: 2, maxBytes: 12 });
  meta.apply([['user', 'alice'], ['x', '1']]);
  t.deepEqual([...meta.view()], [['user', 'alice'], ['x', '1']]);
  meta.set('x', '');
  t.deepEqual([...meta.view()], [['user', 'alice']]);
  meta.set('user', undefined);
  t.is(meta.size, 0);
  meta.apply([['a', '1'], ['b', '2']]);
  t.throws(() => meta.set('c', '3'), { instanceOf: MetaLimitError, message: /3 keys, at most 2 .*limits\.maxMetaKeys/ });
  t.throws(() => meta.set('a', 'far too long'), { instanceOf: MetaLimitError, message: /15 bytes, at most 12 .*limits\.maxMetaBytes/ });
  t.deepEqual([...meta.view()], [['a', '1'], ['b', '2']]);
  // Replacing a value counts the new one only.
  meta.set('a', '123456789');
  t.is(meta.view().get('a'), '123456789');
});
