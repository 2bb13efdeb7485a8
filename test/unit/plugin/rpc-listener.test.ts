import test from 'ava';
import fc from 'fast-check';
import '../../helpers/fc-seed.js';
import { KONG_METHODS, readRequest } from '../../../plugin/src/rpc-listener.js';

test('a Kong request for a method Kong calls becomes a call', (t) => {
  t.deepEqual(readRequest([0, 12, 'plugin.HandleEvent', [{ InstanceId: 5, EventName: 'access' }]]),
    { kind: 'call', msgId: 12, method: 'HandleEvent', args: [{ InstanceId: 5, EventName: 'access' }] });
  for (const m of ['StartInstance', 'CloseInstance', 'Step', 'StepConsumer', 'StepMultiMap', 'StepError']) t.true(KONG_METHODS.has(m), m);
});

test('methods Kong never calls, other namespaces and bad arguments are refused with an answer', (t) => {
  t.deepEqual(readRequest([0, 1, 'plugin.SetPluginDir', ['/tmp']]), { kind: 'refuse', msgId: 1, error: 'unknown method SetPluginDir (not one Kong calls)' });
  t.deepEqual(readRequest([0, 2, 'plugin.constructor', []]), { kind: 'refuse', msgId: 2, error: 'unknown method constructor (not one Kong calls)' });
  t.deepEqual(readRequest([0, 3, 'kong.Step', []]), { kind: 'refuse', msgId: 3, error: 'RPC for kong is not supported' });
  t.deepEqual(readRequest([0, 4, 7, []]), { kind: 'refuse', msgId: 4, error: 'the method name is not a string' });
  t.deepEqual(readRequest([0, 5, 'plugin.Step', { EventId: 1 }]), { kind: 'refuse', msgId: 5, error: 'plugin.Step: the arguments are not an array' });
});

test('what is not a request at all drops the connection', (t) => {
  for (const m of [null, 'x', {}, [], [1, 1, null, null], [0, -1, 'plugin.Step', []], [0, 1.5, 'plugin.Step', []], [0, '1', 'plugin.Step', []], [0, 1, 'plugin.Step']]) {
    t.is(readRequest(m).kind, 'drop', JSON.stringify(m));
  }
});

test('property: readRequest never throws, and only known plugin methods with an array of arguments become calls', (t) => {
  t.notThrows(() => fc.assert(fc.property(
    fc.oneof(fc.anything(), fc.tuple(fc.constant(0), fc.anything(), fc.oneof(fc.string(), fc.constantFrom(...[...KONG_METHODS].map((m) => `plugin.${m}`))), fc.anything())),
    (message) => {
      const r = readRequest(message);
      if (r.kind !== 'call') return true;
      const [, , method, args] = message as unknown[];
      return KONG_METHODS.has(r.method) && method === `plugin.${r.method}` && Array.isArray(args);
    },
  )));
});
