import test from 'ava';
import fc from 'fast-check';
import '../../helpers/fc-seed.js';
import { Plugin, SECRET_MIN_BYTES, Schema, configProblem, type GripConfig } from '../../../plugin/src/grip.js';
import { LIMITS, ORIGIN_SHAPE, parseOriginUrl } from '../../../sidecar/src/kong/handoff-format.js';
import { FakePdk } from '../../helpers/fake-pdk.js';
import { luaPatternToRegExp, validateConfig, type SchemaFields } from '../../helpers/kong-schema.js';

// The schema refuses at load time what the plugin would refuse at start: the origin rules are
// parseOriginUrl's (ORIGIN_SHAPE, written once as Lua patterns for Kong and once as RegExps),
// the secret minimum is the plugin's. What no pattern can state is host and port syntax: there
// the schema accepts and the plugin's start refuses (a broken instance answering 500).

const fields = Schema as unknown as SchemaFields;
const SECRET = 'x'.repeat(40);

const schemaAccepts = (origin: string, secret = SECRET): boolean => validateConfig(fields, { secret, origin }).problems.length === 0;
const runtimeAccepts = (origin: string): boolean => {
  try {
    parseOriginUrl('origin', origin);
    return true;
  } catch {
    return false;
  }
};
const urlParses = (v: string): boolean => {
  try {
    new URL(v);
    return true;
  } catch {
    return false;
  }
};

// [origin, schema accepts, plugin accepts]
const ORIGINS: Array<[string, boolean, boolean]> = [
  ['http://origin:8080', true, true],
  ['http://a', true, true],
  ['https://api.internal/app', true, true],
  ['https://api.internal/app/', true, true],
  ['http://10.0.0.7:8080/base/path', true, true],
  ['http://[::1]:8080', true, true],
  ['http://xn--bcher-kva.example/', true, true],
  ['http://origin/a%20b', true, true],
  ['http://origin/;matrix=1', true, true],
  ['http://origin:8080/' + 'p'.repeat(LIMITS.originChars - 'http://origin:8080/'.length), true, true],
  // credentials, query, fragment
  ['http://u:p@origin/', false, false],
  ['http://user@origin/', false, false],
  ['http://@origin/', false, false],
  ['http://origin/a@b', false, false],
  ['http://origin/?q=1', false, false],
  ['http://origin/?', false, false],
  ['http://origin/#f', false, false],
  ['http://origin/#', false, false],
  // scheme and form
  ['ftp://origin/', false, false],
  ['ws://origin/', false, false],
  ['HTTP://origin/', false, false],
  ['Https://origin/', false, false],
  ['http:origin', false, false],
  ['http:/origin', false, false],
  ['http:///origin', false, false],
  ['http:\\\\origin', false, false],
  ['http://origin\\path', false, false],
  ['origin:8080', false, false],
  ['/relative', false, false],
  ['', false, false],
  [' http://origin', false, false],
  ['http://origin ', false, false],
  ['http://ori gin', false, false],
  ['http://origin/\tx', false, false],
  ['http://origin\n', false, false],
  ['http://bücher.example/', false, false],
  ['http://origin/\u007f', false, false],
  ['http://origin:8080/' + 'p'.repeat(LIMITS.originChars - 'http://origin:8080/'.length + 1), false, false],
  // host and port syntax: no pattern states it; the plugin's start refuses (500)
  ['http://:8080', true, false],
  ['http://origin:99999', true, false],
  ['http://origin:port', true, false],
  ['http://[::1', true, false],
  ['http://a%zz/', true, false],
];

test('for a table of origins, the schema\'s patterns and parseOriginUrl agree, except host and port syntax, which only the plugin refuses', (t) => {
  for (const [origin, schema, runtime] of ORIGINS) {
    t.is(schemaAccepts(origin), schema, `schema: ${JSON.stringify(origin)}`);
    t.is(runtimeAccepts(origin), runtime, `parseOriginUrl: ${JSON.stringify(origin)}`);
    t.is(configProblem({ secret: SECRET, origin, forward_consumer: true, __plugin_id: 'p' }) === undefined, runtime, `plugin: ${JSON.stringify(origin)}`);
    if (schema !== runtime) t.false(urlParses(origin), `${JSON.stringify(origin)}: only the URL parse may tell them apart`);
  }
});

test('each ORIGIN_SHAPE rule says the same in its Lua pattern (as Kong reads it) and its RegExp', (t) => {
  const rules = [...ORIGIN_SHAPE.mustMatch, ...ORIGIN_SHAPE.mustNotMatch];
  for (const rule of rules) {
    const lua = luaPatternToRegExp(rule.lua);
    for (const [origin] of ORIGINS) t.is(lua.test(origin), rule.re.test(origin), `${rule.lua} on ${JSON.stringify(origin)}`);
  }
  t.notThrows(() => fc.assert(fc.property(fc.string({ unit: 'binary-ascii', maxLength: 40 }), fc.string({ maxLength: 20 }), (a, b) => {
    for (const v of [a, b, `http://${a}`, `https://${b}/${a}`]) {
      for (const rule of rules) if (luaPatternToRegExp(rule.lua).test(v) !== rule.re.test(v)) return false;
    }
    return true;
  }), { numRuns: 2000 }));
});

test('the schema never accepts what parseOriginUrl refuses, unless the URL itself does not parse; never refuses what it accepts', (t) => {
  const origin = fc.oneof(
    fc.string({ unit: 'binary-ascii', maxLength: 60 }),
    fc.tuple(fc.constantFrom('http://', 'https://', 'HTTP://', 'http:', 'http:///', ' http://', 'ftp://'), fc.string({ unit: fc.constantFrom('a', 'b', '1', ':', '/', '@', '?', '#', '.', '%', '[', ']', ' ', '\\', 'é', '\t', '-'), maxLength: 30 }))
      .map(([scheme, rest]) => scheme + rest),
  );
  t.notThrows(() => fc.assert(fc.property(origin, (v) => {
    const schema = schemaAccepts(v);
    const runtime = runtimeAccepts(v);
    if (runtime && !schema) return false;
    if (schema && !runtime) return !urlParses(v);
    return true;
  }), { numRuns: 5000 }));
});

test('the secret: the schema\'s len_min is the plugin\'s minimum, both counted in bytes as Kong counts', (t) => {
  const secretField = (Schema.find((e) => 'secret' in e) as { secret: { len_min: number } }).secret;
  t.is(secretField.len_min, SECRET_MIN_BYTES);
  for (const [secret, ok] of [['x'.repeat(31), false], ['x'.repeat(32), true], ['é'.repeat(15), false], ['é'.repeat(16), true], ['', false]] as const) {
    t.is(schemaAccepts('http://origin:8080', secret), ok, `schema: ${secret.length} characters`);
    t.is(configProblem({ secret, origin: 'http://origin:8080', forward_consumer: true, __plugin_id: 'p' }) === undefined, ok, `plugin: ${secret.length} characters`);
  }
});

test('a config the schema accepts starts a working plugin instance (for origins whose host and port parse)', async (t) => {
  for (const [origin, schema] of ORIGINS) {
    if (!schema || !urlParses(origin)) continue;
    const kong = new FakePdk({});
    await new Plugin({ secret: SECRET, origin, forward_consumer: false, __plugin_id: 'p' } as GripConfig, { nowMs: () => 0, nonce: () => 'QUJDREVGR0hJSktMTU5PUA', log: () => {} }).access(kong);
    t.is(kong.exit, undefined, origin);
    t.truthy(kong.upstreamHeaders['kong-grip-handoff'], origin);
  }
});
