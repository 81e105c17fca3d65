/**
 * A registry as plain data (what a worker sends the primary for one scrape, through IPC's
 * JSON), and the sum of several such snapshots rendered as one scrape: counters added,
 * histograms added bucket by bucket (same bounds: the same code made them), gauges either
 * added (`summed`: requests in flight, queue depth) or kept apart with a `source` label
 * (memory, event-loop lag, breaker state: a sum of those would mean nothing).
 */
import type { MetricType } from './family.js';
import { Registry } from './registry.js';

export interface SeriesSnapshot {
  readonly labels: readonly string[];
  /** A counter's or gauge's value. */
  readonly value?: number;
  /** A histogram's per-bucket (not cumulative) counts, the last one +Inf. */
  readonly counts?: readonly number[];
  readonly sum?: number;
  readonly count?: number;
}

export interface FamilySnapshot {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  /** A histogram's finite bounds. */
  readonly buckets?: readonly number[];
  readonly series: readonly SeriesSnapshot[];
}

/** One process's snapshot, named by what the `source` label would say (a worker id, `primary`). */
export interface SnapshotPart {
  readonly source: string;
  readonly families: readonly FamilySnapshot[];
}

export interface MergeRules {
  /** The label that tells apart the sources of a gauge that is not summed. */
  readonly sourceLabel: string;
  /** Gauges whose sum over the sources is meaningful. */
  readonly summedGauges: ReadonlySet<string>;
}

const sameList = (a: readonly unknown[] | undefined, b: readonly unknown[] | undefined): boolean => (a ?? []).length === (b ?? []).length && (a ?? []).every((v, i) => v === (b ?? [])[i]);

/**
 * Sums the parts into one registry, ready to render. A family that a later part declares
 * differently (other type, labels or buckets: never with one build) keeps the first
 * declaration and the odd part's series are left out rather than mixed in.
 */
export function mergeSnapshots(parts: readonly SnapshotPart[], rules: MergeRules): Registry {
  const registry = new Registry();
  const declared = new Map<string, { decl: FamilySnapshot; add: (source: string, s: SeriesSnapshot) => void }>();
  for (const part of parts) {
    for (const fam of part.families) {
      let entry = declared.get(fam.name);
      if (entry === undefined) {
        entry = { decl: fam, add: adder(registry, fam, rules) };
        declared.set(fam.name, entry);
      } else if (entry.decl.type !== fam.type || !sameList(entry.decl.labelNames, fam.labelNames) || !sameList(entry.decl.buckets, fam.buckets)) {
        continue;
      }
      for (const s of fam.series) {
        if (s.labels.length === fam.labelNames.length) entry.add(part.source, s);
      }
    }
  }
  return registry;
}

function adder(registry: Registry, fam: FamilySnapshot, rules: MergeRules): (source: string, s: SeriesSnapshot) => void {
  const finite = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);
  if (fam.type === 'counter') {
    const c = registry.counter(fam.name, fam.help, fam.labelNames);
    return (_src, s) => {
      if (finite(s.value) && s.value >= 0) c.labels(...s.labels).inc(s.value);
    };
  }
  if (fam.type === 'histogram') {
    const h = registry.histogram(fam.name, fam.help, fam.labelNames, fam.buckets ?? []);
    return (_src, s) => {
      if (Array.isArray(s.counts) && s.counts.length === (fam.buckets ?? []).length + 1 && finite(s.sum) && finite(s.count)) h.labels(...s.labels).add(s.counts, s.sum, s.count);
    };
  }
  if (rules.summedGauges.has(fam.name)) {
    const g = registry.gauge(fam.name, fam.help, fam.labelNames);
    return (_src, s) => {
      if (finite(s.value)) g.labels(...s.labels).inc(s.value);
    };
  }
  const g = registry.gauge(fam.name, fam.help, [...fam.labelNames, rules.sourceLabel]);
  return (src, s) => {
    if (finite(s.value)) g.labels(...s.labels, src).set(s.value);
  };
}
