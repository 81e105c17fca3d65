/**
 * A gauge: a value that goes up and down (requests in flight, memory, a state flag).
 * Values that are only known at scrape time (memory, CPU) come from an optional collect
 * callback that runs just before the family renders, so nothing polls in the background.
 */

import { MetricFamily } from './family.js';
import { formatValue } from './validation.js';

/** One series of a gauge family. */
export class GaugeChild {
  private value = 0;

  /** @param prefix `name{labels} `, rendered once when the child is created. */
  constructor(readonly prefix: string) {}

  set(v: number): void {
    this.value = v;
  }

  inc(n = 1): void {
    this.value += n;
  }

  dec(n = 1): void {
    this.value -= n;
  }

  get(): number {
    return this.value;
  }
}

/** Called at render time with the gauge, to set its current values. */
export type GaugeCollect = (gauge: Gauge) => void;

export class Gauge extends MetricFamily<GaugeChild> {
  readonly type = 'gauge';
  private readonly collect: GaugeCollect | undefined;

  constructor(name: string, help: string, labelNames: readonly string[] = [], collect?: GaugeCollect) {
    super(name, help, labelNames);
    this.collect = collect;
  }

  /** Sets a gauge without labels. */
  set(v: number): void {
    this.unlabelled().set(v);
  }

  inc(n = 1): void {
    this.unlabelled().inc(n);
  }

  dec(n = 1): void {
    this.unlabelled().dec(n);
  }

  get(): number {
    return this.unlabelled().get();
  }

  override render(out: string[]): void {
    this.collect?.(this);
    super.render(out);
  }

  override snapshot(): ReturnType<MetricFamily<GaugeChild>['snapshot']> {
    this.collect?.(this);
    return super.snapshot();
  }

  protected snapshotChild(child: GaugeChild): { value: number } {
    return { value: child.get() };
  }

  protected createChild(pairs: string): GaugeChild {
    return new GaugeChild(this.seriesPrefix(pairs));
  }

  protected renderChild(out: string[], child: GaugeChild): void {
    out.push(child.prefix + formatValue(child.get()));
  }
}
