/**
 * Keeps a label's cardinality bounded when its values come from outside (model names
 * sent by clients, retry reasons): the first `max` distinct values get their own series,
 * every later one shares a single `other` series. Each Prometheus series costs memory in
 * the proxy and in every Prometheus that scrapes it, so an unbounded label is an outage
 * waiting for a client that sends a new model name per request.
 */

/** The label value that stands for every value beyond the cap. */
export const OTHER = 'other';

/** Longest value kept as is; a longer one is more likely garbage than a name. */
const MAX_VALUE_LENGTH = 128;

/** Control characters would render (escaped or not) as noise in every dashboard legend. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export class CappedLabels<T> {
  private readonly kept = new Map<string, T>();
  private other: T | null = null;

  /**
   * @param max distinct values kept (>= 0); beyond that, values fold into `other`.
   * @param create builds the series for a label value; called once per kept value.
   */
  constructor(
    private readonly max: number,
    private readonly create: (value: string) => T,
  ) {
    if (!(Number.isInteger(max) && max >= 0)) throw new RangeError(`max must be an integer >= 0, got ${max}`);
  }

  /**
   * The series for `value`. Folded values are not remembered, so a stream of new values
   * costs a Map miss each but no memory.
   */
  get(value: string): T {
    const hit = this.kept.get(value);
    if (hit !== undefined) return hit;
    if (this.kept.size < this.max && value.length <= MAX_VALUE_LENGTH && !CONTROL_CHARS.test(value)) {
      const series = this.create(value);
      this.kept.set(value, series);
      return series;
    }
    return (this.other ??= this.create(OTHER));
  }

  /** How many distinct values have their own series. */
  get size(): number {
    return this.kept.size;
  }
}
