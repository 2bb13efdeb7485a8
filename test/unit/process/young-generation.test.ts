import test from 'ava';
import { limitYoungGeneration, nurseryBytes, scavengeSetByOperator, youngGenerationSetByOperator } from '../../../sidecar/src/process/young-generation.js';

test('the operator\'s own young-generation flags win, on the command line or in NODE_OPTIONS', (t) => {
  t.true(youngGenerationSetByOperator(['--max-semi-space-size=16'], undefined));
  t.true(youngGenerationSetByOperator(['--max_semi_space_size', '8'], undefined));
  t.true(youngGenerationSetByOperator([], '--inspect --semi-space-growth-factor=2'));
  t.true(youngGenerationSetByOperator([], '--min-semi-space-size=4'));
});

test('the operator\'s choice of parallel scavenging wins', (t) => {
  t.true(scavengeSetByOperator(['--parallel-scavenge'], undefined));
  t.true(scavengeSetByOperator([], '--no_parallel_scavenge'));
  t.false(scavengeSetByOperator(['--max-semi-space-size=4'], '--enable-source-maps'));
});

test('other flags leave the young generation to the sidecar', (t) => {
  t.false(youngGenerationSetByOperator([], undefined));
  t.false(youngGenerationSetByOperator(['--max-old-space-size=4096', '--import', 'tsx'], '--enable-source-maps'));
});

test.serial('an operator-sized nursery is left alone', (t) => {
  let limited = false;
  t.false(limitYoungGeneration({ execArgv: ['--max-semi-space-size=16'], nodeOptions: undefined, maxBytes: 0, onLimited: () => { limited = true; } }));
  t.false(limited);
});

// Serial, and in this order: stopping the growth sets a flag for the whole process.
test.serial('a growing nursery is stopped once a collection finds it at the limit', async (t) => {
  const maxBytes = 2 * nurseryBytes();
  t.true(maxBytes <= 32 * 2 ** 20, 'the nursery has not grown yet in this process');
  const limited = new Promise<void>((resolve) => {
    limitYoungGeneration({ execArgv: [], nodeOptions: undefined, maxBytes, onLimited: resolve });
  });
  // Objects that survive their scavenges: what makes V8 grow the nursery, as opening connections does.
  const kept: object[] = [];
  let isLimited = false;
  void limited.then(() => { isLimited = true; });
  for (let round = 0; round < 400 && !isLimited; round++) {
    for (let i = 0; i < 5000; i++) kept.push({ i, s: `item ${i}`, a: [i] });
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.true(isLimited, 'growth stopped');
  t.true(nurseryBytes() >= maxBytes);
});

test.serial('a nursery already at the limit stops growing at once', (t) => {
  let limited = false;
  t.true(limitYoungGeneration({ execArgv: [], nodeOptions: undefined, maxBytes: nurseryBytes(), onLimited: () => { limited = true; } }));
  t.true(limited);
});
