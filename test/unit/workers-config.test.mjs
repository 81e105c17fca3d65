// WORKERS: parsed like every variable (bad values named, exit 2 in main), and `auto`
// resolved to the CPUs this process may use, capped by a cgroup CPU quota.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../dist/config.js';
import { cgroupCpuQuota, workerCount } from '../../dist/cluster/cpus.js';

test('WORKERS defaults to 1 and takes auto (any case) or an integer 1-256', () => {
  assert.equal(parseConfig({}).workers, 1);
  assert.equal(parseConfig({ WORKERS: 'AUTO' }).workers, 'auto');
  assert.equal(parseConfig({ WORKERS: ' 4 ' }).workers, 4);
  assert.equal(parseConfig({ WORKERS: '256' }).workers, 256);
});

for (const bad of ['0', '-1', '2.5', 'two', '', '257']) {
  test(`WORKERS=${JSON.stringify(bad)} is one line naming the variable and what it accepts`, () => {
    assert.throws(
      () => parseConfig({ WORKERS: bad }),
      (err) => err instanceof ConfigError && err.problems.length === 1 && err.problems[0] === `config error: WORKERS=${JSON.stringify(bad)} is not accepted; expected auto or an integer 1-256`,
    );
  });
}

const files = (map) => (path) => map[path] ?? null;

const quotaCases = [
  { name: 'cgroup v2 without a limit', fs: { '/sys/fs/cgroup/cpu.max': 'max 100000\n' }, want: null },
  { name: 'cgroup v2 with 1.5 CPUs', fs: { '/sys/fs/cgroup/cpu.max': '150000 100000\n' }, want: 1.5 },
  { name: 'cgroup v1 without a limit', fs: { '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }, want: null },
  { name: 'cgroup v1 with 2 CPUs', fs: { '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '200000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }, want: 2 },
  { name: 'no cgroup files (another OS)', fs: {}, want: null },
];
for (const c of quotaCases) {
  test(`the CPU quota: ${c.name}`, () => assert.equal(cgroupCpuQuota(files(c.fs)), c.want));
}

test('auto = the CPUs available, capped by the quota rounded up; a number is itself', () => {
  assert.equal(workerCount('auto', () => 8, () => null), 8);
  assert.equal(workerCount('auto', () => 64, () => 2), 2);
  assert.equal(workerCount('auto', () => 64, () => 1.5), 2);
  assert.equal(workerCount('auto', () => 2, () => 16), 2);
  assert.equal(workerCount('auto', () => 4, () => 0.2), 1);
  assert.equal(workerCount(3, () => 64, () => 1), 3, 'an explicit count is what the operator asked for');
});
