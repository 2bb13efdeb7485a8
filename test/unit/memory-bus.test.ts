import test from 'ava';
import { MemoryBus } from '../../sidecar/src/bus/memory-bus.js';
import type { PublishItem } from '../../sidecar/src/grip/types.js';

const item = (channel: string, id: string): PublishItem => ({
  channel, id, formats: { 'http-stream': { action: 'send', content: Buffer.from(id) } }, meta: {}, noSeq: false,
});

test('delivers items in publish order only to subscribers of the channel', async (t) => {
  const bus = new MemoryBus();
  const got: string[] = [];
  const off = bus.subscribe('a', (i) => got.push(i.id ?? ''));
  bus.subscribe('b', () => t.fail('channel b must not receive items for a'));
  await bus.publish([item('a', '1'), item('a', '2'), item('a', '3')]);
  t.deepEqual(got, ['1', '2', '3']);
  off();
  await bus.publish([item('a', '4')]);
  t.deepEqual(got, ['1', '2', '3']);
});
