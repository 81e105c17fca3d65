/**
 * What counters, gauges and histograms share: a name, a HELP text, a fixed list of label
 * names, and one child per distinct combination of label values. The request path calls
 * `labels(...)` per request, so a child is looked up in one Map and everything the child
 * needs to render (its escaped label string) is built once, when the child is created.
 */

import { braces, escapeHelp, labelPairs, validateLabelNames, validateMetricName } from './validation.js';
import type { FamilySnapshot, SeriesSnapshot } from './snapshot.js';

export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * Joins label values into one Map key. NUL is refused in label values (see `labels`), so
 * two different value lists can never produce the same key.
 */
const KEY_SEPARATOR = '\u0000';

export abstract class MetricFamily<C> {
  abstract readonly type: MetricType;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Children in creation order, which is also their render order. */
  private readonly children = new Map<string, C>();
  /** The one child of a family without labels; created lazily so subclasses are initialised. */
  private single: C | null = null;

  /**
   * @param reserved label names the type writes itself (`le` for histograms).
   * @throws Error when the metric or a label name breaks the exposition rules.
   */
  constructor(name: string, help: string, labelNames: readonly string[] = [], reserved: readonly string[] = []) {
    validateMetricName(name);
    validateLabelNames(name, labelNames, reserved);
    if (typeof help !== 'string') throw new Error(`metric ${name}: help must be a string`);
    this.name = name;
    this.help = help;
    this.labelNames = Object.freeze([...labelNames]);
  }

  /**
   * The child for these label values, in the order of `labelNames`; created on first use.
   *
   * @throws Error on a wrong number of values, a non-string value, or a value holding NUL.
   */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`metric ${this.name}: expected ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`);
    }
    const key = values.length === 1 ? values[0]! : values.join(KEY_SEPARATOR);
    let child = this.children.get(key);
    if (child === undefined) {
      for (const v of values) {
        if (typeof v !== 'string') throw new TypeError(`metric ${this.name}: label values must be strings, got ${typeof v}`);
        if (v.includes(KEY_SEPARATOR)) throw new Error(`metric ${this.name}: label values must not contain NUL`);
      }
      child = this.createChild(labelPairs(this.labelNames, values));
      this.children.set(key, child);
    }
    return child;
  }

  /** Drops the series of these label values (an upstream removed by a reload); false when there was none. */
  remove(...values: string[]): boolean {
    return this.children.delete(values.length === 1 ? values[0]! : values.join(KEY_SEPARATOR));
  }

  /** The child of a family without labels; calling it on a labelled family is a bug. */
  protected unlabelled(): C {
    if (this.single === null) {
      if (this.labelNames.length > 0) {
        throw new Error(`metric ${this.name} has labels (${this.labelNames.join(', ')}): use .labels(...) first`);
      }
      this.single = this.labels();
    }
    return this.single;
  }

  /**
   * Appends this family's lines: HELP and TYPE first (the format wants them before the
   * first sample), then every child. A family without labels always shows its one series,
   * at 0 before anything happened, so `rate()` has a starting point; a labelled family
   * with no children yet shows only HELP and TYPE.
   */
  render(out: string[]): void {
    if (this.labelNames.length === 0) this.unlabelled();
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    for (const child of this.children.values()) this.renderChild(out, child);
  }

  /**
   * The family as plain data (for a worker's scrape sent to the primary): each series with
   * its label values, in creation order. Values read at scrape time must be set first
   * (Registry.snapshot runs the same collect steps as render).
   */
  snapshot(): FamilySnapshot {
    if (this.labelNames.length === 0) this.unlabelled();
    const series: SeriesSnapshot[] = [];
    for (const [key, child] of this.children) {
      const labels = this.labelNames.length === 0 ? [] : this.labelNames.length === 1 ? [key] : key.split(KEY_SEPARATOR);
      series.push({ labels, ...this.snapshotChild(child) });
    }
    return { name: this.name, help: this.help, type: this.type, labelNames: this.labelNames, ...this.snapshotExtra(), series };
  }

  /** A child's numbers: `value`, or a histogram's `counts`, `sum` and `count`. */
  protected abstract snapshotChild(child: C): Omit<SeriesSnapshot, 'labels'>;

  /** What the family adds (a histogram's buckets). */
  protected snapshotExtra(): Partial<FamilySnapshot> {
    return {};
  }

  /** The sample names this family writes, so a registry can refuse clashes. */
  sampleNames(): string[] {
    return [this.name];
  }

  /** `name{pairs} `: the start of a sample line, shared by counters and gauges. */
  protected seriesPrefix(pairs: string): string {
    return `${this.name}${braces(pairs)} `;
  }

  /** @param pairs the child's escaped `a="x",b="y"` (empty without labels). */
  protected abstract createChild(pairs: string): C;

  protected abstract renderChild(out: string[], child: C): void;
}
