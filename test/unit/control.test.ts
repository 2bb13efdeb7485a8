import test from 'ava';
import { PublishGate } from '../../sidecar/src/publish/control-server.js';

test('a draining publish gate refuses new publishes and resolves once those in progress are done', async (t) => {
  const gate = new PublishGate();
  t.true(gate.enter());
  t.true(gate.enter());
  let drained = false;
  const draining = gate.drain().then(() => { drained = true; });
  t.false(gate.enter(), 'refused once draining');
  gate.leave();
  await Promise.resolve();
  t.false(drained, 'one is still in progress');
  gate.leave();
  await draining;
  t.true(drained);
});

test('draining an idle publish gate resolves at once', async (t) => {
  const gate = new PublishGate();
  await gate.drain();
  t.true(gate.isDraining);
});
