/**
 * A registry owns a set of metric families and renders them in the Prometheus text
 * exposition format 0.0.4. There is no global default registry: whoever builds the proxy
 * creates one and hands it to the parts that record metrics, so tests get fresh ones.
 *
 * Output order: families sorted by name (byte order), each as one contiguous group (HELP,
 * TYPE, then its series in creation order). Sorting makes the scrape independent of which
 * module happened to register first, so diffs and golden tests stay stable.
 */

import { Counter } from './counter.js';
import { Gauge, type GaugeCollect } from './gauge.js';
import { Histogram } from './histogram.js';
import type { FamilySnapshot } from './snapshot.js';

/** The Content-Type of a 0.0.4 scrape, exactly as prom-client sends it. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Family = Counter | Gauge | Histogram;

export class Registry {
  /** Kept sorted by name. */
  private readonly families: Family[] = [];
  /**
   * Every sample name in use, so `x` as a histogram and `x_count` as a counter cannot
   * both exist: their lines would mix and the scrape would be rejected.
   */
  private readonly sampleNames = new Set<string>();
  private readonly hooks = new Set<() => void>();

  /** @throws Error on an invalid or already used name, or invalid label names. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  /**
   * @param collect optional; runs at each render to set the gauge's current values.
   * @throws Error on an invalid or already used name, or invalid label names.
   */
  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: GaugeCollect): Gauge {
    return this.add(new Gauge(name, help, labelNames, collect));
  }

  /**
   * @param buckets finite upper bounds, strictly increasing; `+Inf` is implied.
   * @throws Error on an invalid or already used name, a label named `le`, or bad buckets.
   */
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /**
   * Runs `fn` at the start of every render, before any family renders: the place to read
   * values that only exist on demand (CPU, memory, event-loop delay).
   *
   * @returns a function that removes the hook.
   */
  onCollect(fn: () => void): () => void {
    const hook = (): void => fn();
    this.hooks.add(hook);
    return () => {
      this.hooks.delete(hook);
    };
  }

  /**
   * The whole scrape: every line ends with `\n` (the format requires it of the last line
   * too). An empty registry renders the empty string.
   */
  render(): string {
    for (const hook of this.hooks) hook();
    const out: string[] = [];
    for (const family of this.families) family.render(out);
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }

  /** Every family as plain data, after the same collect steps as a render. */
  snapshot(): FamilySnapshot[] {
    for (const hook of this.hooks) hook();
    return this.families.map((f) => f.snapshot());
  }

  private add<F extends Family>(family: F): F {
    const names = family.sampleNames();
    const clash = names.find((n) => this.sampleNames.has(n));
    if (clash !== undefined) {
      throw new Error(`metric ${family.name}: the name ${clash} is already registered`);
    }
    for (const n of names) this.sampleNames.add(n);
    let i = this.families.length;
    while (i > 0 && this.families[i - 1]!.name > family.name) i--;
    this.families.splice(i, 0, family);
    return family;
  }
}
