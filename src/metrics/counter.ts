/**
 * A counter: a value that only goes up, reset only by a process restart (which
 * Prometheus' `rate()` detects). Refusing a negative increment keeps that promise; a
 * decreasing counter would read as a restart and produce a huge false rate.
 */

import { MetricFamily } from './family.js';
import { formatValue } from './validation.js';

/** One series of a counter family: one combination of label values. */
export class CounterChild {
  private value = 0;

  /** @param prefix `name{labels} `, rendered once when the child is created. */
  constructor(readonly prefix: string) {}

  /**
   * Adds `n` (default 1).
   *
   * @throws RangeError when `n` is negative or NaN: a counter never goes down.
   */
  inc(n = 1): void {
    if (!(n >= 0)) throw new RangeError(`counter ${this.prefix.trimEnd()}: increment must be >= 0, got ${n}`);
    this.value += n;
  }

  get(): number {
    return this.value;
  }
}

export class Counter extends MetricFamily<CounterChild> {
  readonly type = 'counter';

  /** Increments a counter without labels. */
  inc(n = 1): void {
    this.unlabelled().inc(n);
  }

  /** The value of a counter without labels. */
  get(): number {
    return this.unlabelled().get();
  }

  protected createChild(pairs: string): CounterChild {
    return new CounterChild(this.seriesPrefix(pairs));
  }

  protected snapshotChild(child: CounterChild): { value: number } {
    return { value: child.get() };
  }

  protected renderChild(out: string[], child: CounterChild): void {
    out.push(child.prefix + formatValue(child.get()));
  }
}
