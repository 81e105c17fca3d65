/**
 * The last N samples in a fixed ring, for the percentiles /stats shows a person ("how slow
 * is it now?"). Recording is one store into a preallocated array; sorting happens only
 * when someone asks, on a copy of at most N numbers.
 */
export interface Percentiles {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export class LatencyWindow {
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(size = 1024) {
    this.ring = new Float64Array(size);
  }

  record(value: number): void {
    if (!Number.isFinite(value)) return;
    this.ring[this.next] = value;
    this.next = (this.next + 1) % this.ring.length;
    if (this.filled < this.ring.length) this.filled++;
  }

  /** Nearest-rank percentiles over the samples held, rounded to 0.1. */
  percentiles(): Percentiles {
    return percentilesOf(this.ring.slice(0, this.filled));
  }

  /** The samples held, in no particular order (to pool several windows: the workers'). */
  values(): number[] {
    return Array.from(this.ring.subarray(0, this.filled));
  }
}

/** Nearest-rank percentiles of `samples`, rounded to 0.1. */
export function percentilesOf(samples: ArrayLike<number>): Percentiles {
  const n = samples.length;
  if (n === 0) return { count: 0, p50: null, p90: null, p99: null, max: null };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => Math.round(sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]! * 10) / 10;
  return { count: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Math.round(sorted[n - 1]! * 10) / 10 };
}
