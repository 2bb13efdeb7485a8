import test from 'ava';
import { acceptPolicyFor } from '../../../sidecar/src/process/accept-policy.js';

test('on Linux the workers accept on the shared port themselves', (t) => {
  t.is(acceptPolicyFor({}, 'linux'), 'none');
});

test('an operator\'s NODE_CLUSTER_SCHED_POLICY decides, whatever it says', (t) => {
  t.is(acceptPolicyFor({ NODE_CLUSTER_SCHED_POLICY: 'rr' }, 'linux'), undefined);
  t.is(acceptPolicyFor({ NODE_CLUSTER_SCHED_POLICY: 'none' }, 'linux'), undefined);
});

test('elsewhere node keeps its own choice', (t) => {
  t.is(acceptPolicyFor({}, 'darwin'), undefined);
  t.is(acceptPolicyFor({}, 'win32'), undefined);
});
