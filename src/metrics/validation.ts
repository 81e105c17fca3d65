/**
 * The rules of the Prometheus text exposition format 0.0.4 that every metric family shares:
 * which names are legal, how HELP text and label values are escaped, how numbers are
 * written. Names are checked once, when a family is registered, so a typo fails at startup
 * instead of producing a scrape that Prometheus rejects as a whole. Escaping happens once
 * per child (label values) or per render (HELP), never per increment.
 *
 * Source: prometheus/docs exposition_formats.md and data_model.md; prom-client
 * lib/validation.js.
 */

/**
 * Metric names in the classic charset. The data model also allows `:`, but colons are
 * reserved for recording rules: an exporter must not produce them.
 */
const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label names; names starting with `__` are reserved for Prometheus' own use. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Throws unless `name` is a legal metric name for an exporter. */
export function validateMetricName(name: string): void {
  if (typeof name !== 'string' || !METRIC_NAME.test(name)) {
    throw new Error(
      `invalid metric name ${JSON.stringify(name)}: must match ${METRIC_NAME.source} ` +
        '(colons are reserved for recording rules)',
    );
  }
}

/**
 * Throws unless every label name is legal, unique, and not reserved for this metric type.
 *
 * @param metric the family's name, quoted in the error.
 * @param reserved label names this type produces itself (`le` for histograms).
 */
export function validateLabelNames(metric: string, labelNames: readonly string[], reserved: readonly string[] = []): void {
  const seen = new Set<string>();
  for (const label of labelNames) {
    if (typeof label !== 'string' || !LABEL_NAME.test(label)) {
      throw new Error(`metric ${metric}: invalid label name ${JSON.stringify(label)}: must match ${LABEL_NAME.source}`);
    }
    if (label.startsWith('__')) {
      throw new Error(`metric ${metric}: label name ${JSON.stringify(label)} is reserved: names starting with "__" belong to Prometheus`);
    }
    if (reserved.includes(label)) {
      throw new Error(`metric ${metric}: label name ${JSON.stringify(label)} is reserved for this metric type`);
    }
    if (seen.has(label)) {
      throw new Error(`metric ${metric}: label name ${JSON.stringify(label)} appears twice`);
    }
    seen.add(label);
  }
}

/** HELP docstrings escape only `\` and newline (a `"` stays as is there). */
export function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/**
 * Label values escape `\`, `"` and newline; any other UTF-8 is written as is. One
 * unescaped `"` would make Prometheus reject the whole scrape, not just one series.
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, escapeChar);
}

function escapeChar(c: string): string {
  return c === '\n' ? '\\n' : `\\${c}`;
}

/**
 * A sample value as Go's ParseFloat reads it. JavaScript's `String()` already writes
 * integers without a decimal point and floats in shortest round-trip form (exponents as
 * `1e+21`, which ParseFloat accepts); only the non-finite values need Prometheus' spelling.
 */
export function formatValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}

/**
 * `a="x",b="y"` for the given names and values, without braces, so a histogram can append
 * its `le` pair. Values are escaped here, once per child.
 */
export function labelPairs(names: readonly string[], values: readonly string[]): string {
  let out = '';
  for (let i = 0; i < names.length; i++) {
    if (i > 0) out += ',';
    out += `${names[i]}="${escapeLabelValue(values[i]!)}"`;
  }
  return out;
}

/** `{pairs}`, or nothing at all for a series without labels. */
export function braces(pairs: string): string {
  return pairs === '' ? '' : `{${pairs}}`;
}
