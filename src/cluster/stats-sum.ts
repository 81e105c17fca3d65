/**
 * /stats over all workers, on the primary: the workers' reports merged field by field.
 *
 * - Numbers are summed (requests, statuses, tokens, retries, in flight, queue depth, …),
 *   except the ones below that are a bound or a setting of each worker (taken once), or a
 *   worst case (the highest).
 * - Latency percentiles are computed again over the pooled samples of every worker (each
 *   keeps its last 1024), not averaged; `count` is the samples pooled.
 * - Strings: a `state` is the worst any worker sees (one worker's breaker open = open);
 *   `last_upstream_error` and `last_transition` the latest; anything else the first worker's.
 * - Lists of objects with a `name` (upstreams) merge by name; lists of strings (models)
 *   are joined without repeats.
 * - Maps keyed by data (status codes, endpoints, clients, models) merge key by key, so a
 *   client named like a field is still summed.
 */
import { percentilesOf } from '../observe/latency-window.js';

/** A worker's contribution: its report and its raw latency samples. */
export interface StatsPart {
  readonly report: Record<string, unknown>;
  readonly samples: { readonly latency: readonly number[]; readonly ttfb: readonly number[] };
}

/** A bound or a setting: the same on each worker, shown once. */
const FIRST = new Set(['max_concurrent', 'size', 'weight', 'status', 'order', 'enabled']);
/** A worst case: the highest of the workers. */
const HIGHEST = new Set(['uptime_s', 'max_ms', 'p50_ms', 'p99_ms', 'retry_after_s', 'consecutive_failures']);
/** Objects whose keys are data, not field names. */
const MAPS = new Set(['by_class', 'by_status', 'by_endpoint', 'waiting_by_client', 'wait_ms_by_client', 'tokens', 'clients', 'upstream_attempts', 'by_reason', 'attempts', 'in_flight_by_phase', 'rate_limited_by_reason', 'rejected', 'streams']);
/** Worse states later: breaker states, then an upstream's. */
const STATE_RANK = ['disabled', 'closed', 'up', 'half_open', 'full', 'breaker_open', 'open', 'down'];
const LATEST = new Set(['last_transition']);

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Merges two values found under field `key` (null: a data key of a map). */
function merge(a: Json, b: Json, key: string | null): Json {
  if (a === undefined || a === null) return b;
  if (b === undefined || b === null) return a;
  if (typeof a === 'number' && typeof b === 'number') {
    if (key !== null && FIRST.has(key)) return a;
    if (key !== null && HIGHEST.has(key)) return Math.max(a, b);
    return a + b;
  }
  if (typeof a === 'string' && typeof b === 'string') {
    if (key === 'state') return STATE_RANK.indexOf(b) > STATE_RANK.indexOf(a) ? b : a;
    if (key !== null && LATEST.has(key)) return b > a ? b : a;
    return a;
  }
  if (Array.isArray(a) && Array.isArray(b)) return mergeLists(a, b);
  if (isObject(a) && isObject(b)) {
    if (key === 'last_upstream_error') return String(b['at']) > String(a['at']) ? b : a;
    const out: Record<string, Json> = { ...a };
    const childKey = (k: string): string | null => (key !== null && MAPS.has(key) ? null : k);
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v, childKey(k));
    return out;
  }
  return a;
}

function mergeLists(a: Json[], b: Json[]): Json[] {
  const named = (v: Json): v is Record<string, Json> => isObject(v) && typeof v['name'] === 'string';
  if (a.every(named) && b.every(named)) {
    const out = new Map<string, Json>(a.map((v) => [v['name'] as string, v]));
    for (const v of b) out.set(v['name'] as string, merge(out.get(v['name'] as string), v, null));
    return [...out.values()];
  }
  if (a.every((v) => typeof v === 'string') && b.every((v) => typeof v === 'string')) return [...new Set([...a, ...b])];
  return a;
}

export interface WorkersView {
  /** Workers alive now. */
  readonly alive: number;
  /** Workers that answered this scrape, by id. */
  readonly answered: readonly number[];
  /** Workers that did not answer in time: their numbers are not in this report. */
  readonly missing: readonly number[];
  readonly restarts: number;
}

/** The report of all workers, plus `workers`: who answered and each one's request count. */
export function sumStats(parts: ReadonlyMap<number, StatsPart>, view: WorkersView): Record<string, unknown> {
  let merged: Json = {};
  const latency: number[] = [];
  const ttfb: number[] = [];
  const requestsByWorker: Record<string, number> = {};
  for (const [id, part] of parts) {
    merged = merge(merged, part.report, '');
    latency.push(...part.samples.latency);
    ttfb.push(...part.samples.ttfb);
    const total = (part.report['requests'] as { total?: unknown } | undefined)?.total;
    requestsByWorker[String(id)] = typeof total === 'number' ? total : 0;
  }
  return {
    ...(merged as Record<string, unknown>),
    latency_ms: percentilesOf(latency),
    time_to_first_byte_ms: percentilesOf(ttfb),
    workers: { alive: view.alive, answered: view.answered.length, missing: view.missing, restarts: view.restarts, requests_by_worker: requestsByWorker },
  };
}
