import test from 'ava';
import { youngGenerationSetByOperator } from '../../../sidecar/src/process/young-generation.js';

test('the operator\'s own young-generation flags win, on the command line or in NODE_OPTIONS', (t) => {
  t.true(youngGenerationSetByOperator(['--max-semi-space-size=16'], undefined));
  t.true(youngGenerationSetByOperator(['--max_semi_space_size', '8'], undefined));
  t.true(youngGenerationSetByOperator([], '--inspect --semi-space-growth-factor=2'));
  t.true(youngGenerationSetByOperator([], '--min-semi-space-size=4'));
});

test('other flags leave the young generation to the sidecar', (t) => {
  t.false(youngGenerationSetByOperator([], undefined));
  t.false(youngGenerationSetByOperator(['--max-old-space-size=4096', '--import', 'tsx'], '--enable-source-maps'));
});
