/**
 * How many workers `WORKERS=auto` means: one per CPU this process may use. Node's
 * `os.availableParallelism()` counts the CPUs of the affinity mask (`docker --cpuset-cpus`)
 * but not a CFS quota (`docker --cpus=2`, a Kubernetes CPU limit): in a container limited to
 * 2 CPUs on a 64-core host it says 64, and 64 workers would share 2 CPUs' worth of time. So
 * the quota, when one is set, caps the count (rounded up: 1.5 CPUs → 2), as Go 1.25 does
 * for GOMAXPROCS.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';

/** Reads a file's text, or null when it cannot (no cgroup, another OS). */
export type ReadText = (path: string) => string | null;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

/**
 * The CPU quota of this process's cgroup in CPUs (1.5 = one and a half), or null when none
 * is set: cgroup v2 `cpu.max` ("max 100000" or "150000 100000"), else v1
 * `cpu.cfs_quota_us` (-1 = none) over `cpu.cfs_period_us`.
 */
export function cgroupCpuQuota(read: ReadText = readText): number | null {
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== null) {
    const [quota, period] = v2.trim().split(/\s+/);
    return ratio(quota, period);
  }
  return ratio(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')?.trim(), read('/sys/fs/cgroup/cpu/cpu.cfs_period_us')?.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | null {
  const q = Number(quota);
  const p = Number(period);
  return quota !== undefined && period !== undefined && Number.isFinite(q) && q > 0 && Number.isFinite(p) && p > 0 ? q / p : null;
}

/** The worker count WORKERS asks for: itself, or for `auto` the usable CPUs (at least 1). */
export function workerCount(workers: number | 'auto', cpus: () => number = availableParallelism, quota: () => number | null = cgroupCpuQuota): number {
  if (workers !== 'auto') return workers;
  const limit = quota();
  const n = limit === null ? cpus() : Math.min(cpus(), Math.ceil(limit));
  return Math.max(1, n);
}
