// Kong's schema rules, for the subset of the DSL a JS plugin can ship (kong.md 2.3), so tests can
// check the exported Schema and configs against it without a Kong binary. Modelled on
// kong/db/schema/metaschema.lua (which attributes a field may have) and kong/db/schema/init.lua
// (how a value is validated) of Kong 3.9.

type Field = Record<string, unknown>;
export type SchemaFields = ReadonlyArray<Readonly<Record<string, Field>>>;

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'set', 'map', 'record']);
// Attributes metaschema.lua allows on a field (validators and others) that make sense over JSON.
export const ATTRIBUTES: ReadonlySet<string> = new Set([
  'type', 'required', 'default', 'description', 'examples', 'referenceable', 'encrypted', 'err',
  'between', 'eq', 'ne', 'gt', 'len_eq', 'len_min', 'len_max', 'match', 'not_match', 'match_all', 'match_none',
  'match_any', 'starts_with', 'one_of', 'not_one_of', 'contains', 'is_regex', 'timestamp', 'uuid',
  'elements', 'keys', 'values', 'fields',
]);

/**
 * Attributes older Kongs' metaschema does not know (and so refuse the whole schema for): the first
 * version that has them (metaschema.lua's field_schema at tags 2.8.5, 3.4.2 ... 3.9.1; the
 * per-version lists are in kong-versions.ts).
 */
export const ATTRIBUTE_SINCE: Readonly<Record<string, readonly [number, number]>> = { description: [3, 4], examples: [3, 6] };

/**
 * Problems with the schema itself (what Kong's MetaSchema would refuse at startup). `kong`:
 * the Kong version to check for (default 3.9).
 */
export function checkSchemaDefinition(fields: SchemaFields, path = 'config', kong: readonly [number, number] = [3, 9]): string[] {
  const problems: string[] = [];
  for (const entry of fields) {
    const names = Object.keys(entry);
    if (names.length !== 1) { problems.push(`${path}: each entry must have exactly one field name`); continue; }
    const name = names[0] as string;
    const f = entry[name] as Field;
    const where = `${path}.${name}`;
    for (const attr of Object.keys(f)) {
      const since = ATTRIBUTE_SINCE[attr];
      if (!ATTRIBUTES.has(attr) || (since !== undefined && (kong[0] < since[0] || (kong[0] === since[0] && kong[1] < since[1])))) {
        problems.push(`${where}: unknown attribute ${attr}`);
      }
    }
    if (!TYPES.has(f['type'] as string)) problems.push(`${where}: type must be one of ${[...TYPES].join(', ')}`);
    const d = f['description'];
    if (d !== undefined && (typeof d !== 'string' || d.length < 10 || d.length > 500)) problems.push(`${where}: description must be 10-500 characters`);
    for (const attr of ['match', 'not_match'] as const) {
      if (f[attr] === undefined) continue;
      try { luaPatternToRegExp(f[attr] as string); } catch (err) { problems.push(`${where}: ${attr}: ${(err as Error).message}`); }
    }
    for (const attr of ['match_all', 'match_none'] as const) {
      const list = f[attr];
      if (list === undefined) continue;
      // metaschema: an array of records { pattern: string (required), err: string }.
      if (!Array.isArray(list)) { problems.push(`${where}: ${attr} must be an array`); continue; }
      for (const m of list as unknown[]) {
        const rule = m as Record<string, unknown>;
        if (typeof m !== 'object' || m === null || typeof rule['pattern'] !== 'string' || (rule['err'] !== undefined && typeof rule['err'] !== 'string')
          || Object.keys(rule).some((k) => k !== 'pattern' && k !== 'err')) {
          problems.push(`${where}: ${attr} entries must be { pattern, err }`);
          continue;
        }
        try { luaPatternToRegExp(rule['pattern']); } catch (err) { problems.push(`${where}: ${attr}: ${(err as Error).message}`); }
      }
    }
    if (f['default'] !== undefined) problems.push(...validateValue(f, f['default'], `${where} (default)`));
    if (f['type'] === 'record' && Array.isArray(f['fields'])) problems.push(...checkSchemaDefinition(f['fields'] as SchemaFields, where, kong));
  }
  return problems;
}

const REFERENCE_RE = /^\{vault:\/\/[a-z0-9_-]+\/[^}]+\}$/i;

/**
 * Validates one plugin `config` as Kong would before starting the plugin: unknown fields,
 * required fields without defaults, types and validators. Returns the config with defaults
 * applied and the problems found.
 */
export function validateConfig(fields: SchemaFields, config: Record<string, unknown>, path = 'config'): { config: Record<string, unknown>; problems: string[] } {
  const problems: string[] = [];
  const known = new Set(fields.map((e) => Object.keys(e)[0] as string));
  for (const k of Object.keys(config)) if (!known.has(k)) problems.push(`${path}.${k}: unknown field`);
  const out: Record<string, unknown> = {};
  for (const entry of fields) {
    const [[name, f]] = Object.entries(entry) as [[string, Field]];
    const where = `${path}.${name}`;
    const value = config[name] ?? f['default'];
    if (value === undefined || value === null) {
      if (f['required'] === true) problems.push(`${where}: required field missing`);
      continue;
    }
    out[name] = value;
    // A vault reference is resolved at runtime; Kong skips the validators for it.
    if (f['referenceable'] === true && typeof value === 'string' && REFERENCE_RE.test(value)) continue;
    problems.push(...validateValue(f, value, where));
  }
  return { config: out, problems };
}

function validateValue(f: Field, value: unknown, where: string): string[] {
  const problems: string[] = [];
  switch (f['type']) {
    case 'string': {
      if (typeof value !== 'string') return [`${where}: expected a string`];
      // Kong measures a string with Lua's # operator: bytes, not characters.
      const len = Buffer.byteLength(value, 'utf8');
      if (typeof f['len_min'] === 'number' && len < f['len_min']) problems.push(`${where}: length must be at least ${f['len_min']}`);
      if (typeof f['len_max'] === 'number' && len > f['len_max']) problems.push(`${where}: length must be at most ${f['len_max']}`);
      if (typeof f['match'] === 'string' && !luaPatternToRegExp(f['match']).test(value)) problems.push(`${where}: invalid value: ${value}`);
      if (typeof f['not_match'] === 'string' && luaPatternToRegExp(f['not_match']).test(value)) problems.push(`${where}: invalid value: ${value}`);
      // value:match(pattern) for each entry; the first failing entry's err is the error.
      for (const m of (f['match_all'] ?? []) as Array<{ pattern: string; err?: string }>) {
        if (!luaPatternToRegExp(m.pattern).test(value)) { problems.push(`${where}: ${m.err ?? 'invalid value'}`); break; }
      }
      for (const m of (f['match_none'] ?? []) as Array<{ pattern: string; err?: string }>) {
        if (luaPatternToRegExp(m.pattern).test(value)) { problems.push(`${where}: ${m.err ?? 'invalid value'}`); break; }
      }
      if (typeof f['starts_with'] === 'string' && !value.startsWith(f['starts_with'])) problems.push(`${where}: should start with: ${f['starts_with']}`);
      break;
    }
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${where}: expected a boolean`);
      break;
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || (f['type'] === 'integer' && !Number.isInteger(value))) return [`${where}: expected ${f['type'] === 'integer' ? 'an integer' : 'a number'}`];
      const between = f['between'] as [number, number] | undefined;
      if (between && (value < between[0] || value > between[1])) problems.push(`${where}: value should be between ${between[0]} and ${between[1]}`);
      break;
    }
    default:
      if (f['type'] === 'array' || f['type'] === 'set') {
        if (!Array.isArray(value)) return [`${where}: expected an array`];
      } else if (typeof value !== 'object' || value === null) {
        return [`${where}: expected a table`];
      }
  }
  if (Array.isArray(f['one_of']) && !(f['one_of'] as unknown[]).includes(value)) problems.push(`${where}: expected one of: ${(f['one_of'] as unknown[]).join(', ')}`);
  return problems;
}

const CLASSES: Record<string, string> = {
  a: 'A-Za-z', d: '0-9', l: 'a-z', s: ' \\t\\n\\r\\f\\v', u: 'A-Z', w: 'A-Za-z0-9', x: 'A-Fa-f0-9',
  p: '!-\\/:-@\\[-`{-~', c: '\\x00-\\x1f\\x7f',
};

/** Translates a Lua pattern (as Kong's `match` uses) to a RegExp; throws on what it does not model. */
export function luaPatternToRegExp(pattern: string): RegExp {
  let out = '';
  let i = 0;
  const klass = (c: string): string => {
    const lower = c.toLowerCase();
    const set = CLASSES[lower];
    if (set !== undefined) return c === lower ? `[${set}]` : `[^${set}]`;
    if (/[A-Za-z0-9]/.test(c)) throw new Error(`unsupported Lua pattern class %${c}`);
    return `\\${c}`;
  };
  if (pattern.startsWith('^')) { out += '^'; i = 1; }
  while (i < pattern.length) {
    const c = pattern[i] as string;
    if (c === '$' && i === pattern.length - 1) { out += '$'; i++; continue; }
    let atom: string;
    if (c === '%') {
      const n = pattern[i + 1];
      if (n === undefined) throw new Error('Lua pattern ends with %');
      if (n === 'b' || n === 'f') throw new Error(`unsupported Lua pattern item %${n}`);
      atom = klass(n);
      i += 2;
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new Error('unterminated [ in Lua pattern');
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('^');
      if (negate) body = body.slice(1);
      let inner = '';
      for (let j = 0; j < body.length; j++) {
        const b = body[j] as string;
        if (b === '%') {
          const k = body[j + 1] ?? '';
          j++;
          const set = CLASSES[k];
          if (set !== undefined) inner += set;
          else if (/[A-Za-z0-9]/.test(k) || k === '') throw new Error(`unsupported class %${k} inside a set`);
          else inner += `\\${k}`;
        } else {
          inner += b === '\\' || b === ']' || b === '^' ? `\\${b}` : b;
        }
      }
      atom = `[${negate ? '^' : ''}${inner}]`;
      i = end + 1;
    } else if (c === '.') {
      atom = '[\\s\\S]';
      i++;
    } else if (c === '(' || c === ')') {
      throw new Error('captures are not modelled');
    } else {
      atom = c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i++;
    }
    const q = pattern[i];
    if (q === '*' || q === '+' || q === '?') { atom += q; i++; } else if (q === '-') { atom += '*?'; i++; }
    out += atom;
  }
  return new RegExp(out);
}
