import test from 'ava';
import { treeCpuMs } from '../../../bench/proc.js';

test('treeCpuMs counts the CPU time a process tree has used', (t) => {
  const before = treeCpuMs(process.pid);
  const start = process.cpuUsage();
  let spins = 0;
  // Spin until this process has used 100 ms of CPU, however busy the machine is.
  while (process.cpuUsage(start).user < 100_000) spins++;
  const used = treeCpuMs(process.pid) - before;
  t.true(spins > 0);
  // Clock-tick granularity (10 ms) either side.
  t.true(used >= 80 && used < 1000, `counted ${used} ms for 100 ms of spinning`);
});
