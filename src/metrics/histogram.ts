/**
 * A histogram: observations counted into fixed buckets, plus their sum and count, so
 * Prometheus can compute quantiles (`histogram_quantile`) and means across instances.
 *
 * Storage is per bucket (non-cumulative): `observe` increments exactly one slot. The
 * exposition wants cumulative `_bucket{le="x"}` counts (observations <= x) in increasing
 * `le` order and a final `le="+Inf"` equal to `_count`; render adds them up.
 */

import { MetricFamily } from './family.js';
import { braces, formatValue } from './validation.js';

/** One series of a histogram family. */
export class HistogramChild {
  /** counts[i] = observations in (bounds[i-1], bounds[i]]; the last slot is (last bound, +Inf]. */
  readonly counts: number[];
  private total = 0;
  private n = 0;

  /**
   * @param bounds the family's finite upper bounds, strictly increasing.
   * @param bucketPrefixes `name_bucket{labels,le="b"} ` per bound, then the `+Inf` one.
   */
  constructor(
    private readonly bounds: readonly number[],
    readonly bucketPrefixes: readonly string[],
    readonly sumPrefix: string,
    readonly countPrefix: string,
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /**
   * Records one observation. A linear scan is as quick as a binary search for the
   * ~20 buckets we use, and short latencies (the common case) stop after a few steps.
   *
   * @throws RangeError on NaN, which would make `_sum` NaN for good.
   */
  observe(v: number): void {
    if (Number.isNaN(v)) throw new RangeError(`histogram ${this.countPrefix.trimEnd()}: cannot observe NaN`);
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.total += v;
    this.n++;
  }

  /**
   * Adds another series' buckets, sum and count (a worker's, when the primary sums the
   * workers' scrapes); `counts` must have this series' length.
   */
  add(counts: readonly number[], sum: number, count: number): void {
    if (counts.length !== this.counts.length) throw new RangeError(`histogram ${this.countPrefix.trimEnd()}: expected ${this.counts.length} buckets, got ${counts.length}`);
    for (let i = 0; i < counts.length; i++) this.counts[i]! += counts[i]!;
    this.total += sum;
    this.n += count;
  }

  get sum(): number {
    return this.total;
  }

  get count(): number {
    return this.n;
  }
}

export class Histogram extends MetricFamily<HistogramChild> {
  readonly type = 'histogram';
  /** Finite upper bounds, strictly increasing; `+Inf` is implied. */
  readonly buckets: readonly number[];

  /**
   * @param buckets finite upper bounds in strictly increasing order; `+Inf` is added.
   * @throws Error on unsorted, repeated or non-finite bounds, or a label named `le`.
   */
  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames, ['le']);
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      if (typeof b !== 'number' || !Number.isFinite(b)) {
        throw new Error(`histogram ${name}: bucket bounds must be finite numbers (+Inf is implied), got ${String(b)}`);
      }
      if (i > 0 && !(b > buckets[i - 1]!)) {
        throw new Error(`histogram ${name}: bucket bounds must be strictly increasing, got ${buckets[i - 1]} then ${b}`);
      }
    }
    this.buckets = Object.freeze([...buckets]);
  }

  /** Records an observation on a histogram without labels. */
  observe(v: number): void {
    this.unlabelled().observe(v);
  }

  override sampleNames(): string[] {
    return [this.name, `${this.name}_bucket`, `${this.name}_sum`, `${this.name}_count`];
  }

  protected createChild(pairs: string): HistogramChild {
    const sep = pairs === '' ? '' : ',';
    const le = [...this.buckets.map(formatValue), '+Inf'];
    const bucketPrefixes = le.map((b) => `${this.name}_bucket{${pairs}${sep}le="${b}"} `);
    return new HistogramChild(this.buckets, bucketPrefixes, `${this.name}_sum${braces(pairs)} `, `${this.name}_count${braces(pairs)} `);
  }

  protected snapshotChild(child: HistogramChild): { counts: number[]; sum: number; count: number } {
    return { counts: [...child.counts], sum: child.sum, count: child.count };
  }

  protected override snapshotExtra(): { buckets: readonly number[] } {
    return { buckets: this.buckets };
  }

  protected renderChild(out: string[], child: HistogramChild): void {
    let cumulative = 0;
    for (let i = 0; i < child.counts.length; i++) {
      cumulative += child.counts[i]!;
      out.push(child.bucketPrefixes[i]! + formatValue(cumulative));
    }
    out.push(child.sumPrefix + formatValue(child.sum), child.countPrefix + formatValue(child.count));
  }
}
