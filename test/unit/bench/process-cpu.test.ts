import test from 'ava';
import { cpuBetween, cpuByProcess, processName, rssOf } from '../../../bench/process-cpu.js';

test('a process is named by its program and, for an interpreter, its first script', (t) => {
  t.is(processName(['/usr/bin/node', '--import', 'tsx', '/x/bench/agent.ts']), 'node agent.ts');
  t.is(processName(['/usr/sbin/nats-server', '-a', '127.0.0.1']), 'nats-server');
});

test('cpuBetween gives what each process used in between, busiest first', (t) => {
  const from = new Map([[1, { pid: 1, name: 'a', cpuMs: 100 }], [2, { pid: 2, name: 'b', cpuMs: 50 }]]);
  const to = new Map([[1, { pid: 1, name: 'a', cpuMs: 120 }], [2, { pid: 2, name: 'b', cpuMs: 150 }], [3, { pid: 3, name: 'c', cpuMs: 30 }]]);
  t.deepEqual(cpuBetween(from, to).map((p) => [p.pid, p.cpuMs]), [[2, 100], [3, 30], [1, 20]]);
});

test('this process is found in its own tree, with its memory', (t) => {
  const mine = cpuByProcess(process.pid).get(process.pid);
  t.truthy(mine);
  t.true(rssOf([process.pid]) > 0);
  t.is(rssOf([]), 0);
});
