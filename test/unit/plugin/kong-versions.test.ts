import test from 'ava';
import { SUPPORTED_KONG, Schema, configProblem } from '../../../plugin/src/grip.js';
import { KONG_METHODS } from '../../../plugin/src/rpc-listener.js';
import { ATTRIBUTES, checkSchemaDefinition, type SchemaFields } from '../../helpers/kong-schema.js';
import { KONG_VERSIONS, versionConfig, versionPair } from '../../helpers/kong-versions.js';
import type { PluginInfo } from '../../helpers/kong-rpc-driver.js';

// The per-version facts read from Kong's source (test/helpers/kong-versions.ts) held against the
// plugin's Schema and the config each version sends. The same checks against the real launcher
// (its --dump, StartInstance, access, restarts): test/integration/kong-versions.test.ts.

const fields = Schema as unknown as SchemaFields;
const supported = KONG_VERSIONS.filter((v) => v.supported);
const info: PluginInfo = { Name: 'grip', Version: '0', Phases: ['access'], Priority: 850, Schema: { name: 'grip', fields: [{ config: { type: 'record', fields: JSON.parse(JSON.stringify(Schema)) } }] } };
const SECRET = 'unit-test-secret-0123456789abcdefghijkl';

/** Every attribute name and type a schema uses, nested records included. */
function usedAttributes(list: SchemaFields, out = { attributes: new Set<string>(), types: new Set<string>() }) {
  for (const entry of list) {
    for (const def of Object.values(entry)) {
      for (const attr of Object.keys(def)) out.attributes.add(attr);
      out.types.add(String(def['type']));
      if (Array.isArray(def['fields'])) usedAttributes(def['fields'] as SchemaFields, out);
    }
  }
  return out;
}

test('the supported matrix in the facts is the one the plugin names: 3.4 to 3.9', (t) => {
  t.deepEqual(supported.map((v) => v.name), ['3.4', '3.5', '3.6', '3.7', '3.8', '3.9']);
  t.is(SUPPORTED_KONG, `${supported[0]?.name} to ${supported.at(-1)?.name}`);
});

for (const v of KONG_VERSIONS) {
  test(`Kong ${v.name} (${v.tag}): every attribute and type the Schema uses is in that version's metaschema, and kong-schema agrees`, (t) => {
    const used = usedAttributes(fields);
    for (const attr of used.attributes) t.true(v.fieldAttributes.has(attr), `${attr} is not a field attribute in ${v.tag}`);
    for (const type of used.types) t.true(v.fieldTypes.has(type), `${type} is not a valid type in ${v.tag}`);
    t.deepEqual(checkSchemaDefinition(fields, 'config', versionPair(v)), []);
  });

  test(`Kong ${v.name} (${v.tag}): kong-schema's per-version attribute rule matches metaschema.lua for every attribute it models`, (t) => {
    for (const attr of ATTRIBUTES) {
      if (attr === 'type') continue;
      const problems = checkSchemaDefinition([{ x: { type: 'string', [attr]: null } }], 'config', versionPair(v));
      const refused = problems.includes(`config.x: unknown attribute ${attr}`);
      t.is(refused, !v.fieldAttributes.has(attr), `${attr} on ${v.tag}`);
    }
  });
}

test('the config each version sends carries exactly its bookkeeping keys; only 2.8 lacks __plugin_id, and the plugin names the matrix for it', (t) => {
  const entity = { pluginId: 'aaaaaaaa-0000-4000-8000-00000000000a', routeId: 'aaaaaaaa-1111-4000-8000-00000000000a', serviceId: 'aaaaaaaa-2222-4000-8000-00000000000a', consumerId: 'aaaaaaaa-3333-4000-8000-00000000000a', instanceName: 'grip-a' };
  for (const v of KONG_VERSIONS) {
    const config = versionConfig(v, info, { secret: SECRET, origin: 'http://origin:8080' }, entity, 7);
    t.deepEqual(Object.keys(config).sort(), ['forward_consumer', 'origin', 'secret', ...v.configKeys].sort(), v.tag);
    t.is(config['__seq__'], 7);
    if (v.supported) {
      t.is(config['__plugin_id'], entity.pluginId, v.tag);
      t.is(configProblem(config), undefined, v.tag);
    } else {
      t.false('__plugin_id' in config, v.tag);
      t.is(configProblem(config), 'this Kong does not send __plugin_id; supported Kong versions are 3.4 to 3.9');
    }
  }
  // An unscoped plugin has no route/service/consumer ids and no instance name: nil keys are absent.
  const global = versionConfig(KONG_VERSIONS.find((v) => v.name === '3.9')!, info, { secret: SECRET, origin: 'http://origin:8080' }, { pluginId: entity.pluginId }, 1);
  t.deepEqual(Object.keys(global).sort(), ['__key__', '__plugin_id', '__seq__', '__ws_id', 'forward_consumer', 'origin', 'secret']);
});

test('every listed version exposes the four PDK functions the plugin calls, and steps them the same way', (t) => {
  for (const v of supported) {
    t.deepEqual(Object.keys(v.pdk).sort(), ['kong.client.get_consumer', 'kong.log.err', 'kong.response.exit', 'kong.service.request.set_headers'], v.tag);
    t.is(v.stepMethods['kong.client.get_consumer'], 'plugin.StepConsumer', v.tag);
    t.is(v.stepMethods['kong.service.request.set_headers'], undefined, `${v.tag}: plugin.Step`);
  }
});

test('the launcher\'s socket answers every RPC method any version from 2.8 to 3.9 sends', (t) => {
  for (const v of KONG_VERSIONS) {
    for (const m of v.rpcMethods) t.true(KONG_METHODS.has(m.replace(/^plugin\./, '')), `${m} (${v.tag})`);
    for (const step of Object.values(v.stepMethods)) t.true(v.rpcMethods.includes(step), `${step} (${v.tag})`);
  }
});

test('what each listed version cannot do is written down with its reason, and every broken restart handling with its remedy', (t) => {
  const limited = supported.filter((v) => v.limitations.length > 0).map((v) => v.name);
  t.deepEqual(limited, ['3.6'], 'config edits need kong reload on 3.6');
  t.true(supported.every((v) => v.serverPidNotification), 'every listed version forgets a restarted server\'s instances on serverPid');
  for (const v of supported) {
    t.is(v.restartRecovery !== 'every-worker', v.notes.some((n) => /restart/.test(n) && /serverPid/.test(n)), v.tag);
    t.is(v.configEditApplies, !v.limitations.some((l) => /config/.test(l)), v.tag);
  }
});
