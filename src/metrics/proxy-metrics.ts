/**
 * Every proxy metric of INTERFACE.md, declared in this one file: names, types, labels and
 * buckets are an interface that dashboards depend on. The request handler calls typed
 * methods and never sees a metric name; every label value it passes is bounded here.
 */

import { CappedLabels } from './capped-labels.js';
import type { Counter, CounterChild } from './counter.js';
import type { Gauge, GaugeChild } from './gauge.js';
import type { Histogram, HistogramChild } from './histogram.js';
import type { Registry } from './registry.js';
import type { BreakerStateName } from '../resilience/circuit-breaker.js';
import type { AttemptOutcome } from '../upstream/transport.js';
import type { LimitReason } from '../resilience/client-limits.js';

/**
 * Whole-request latency in seconds. LLM answers range from a cached 5 ms to a
 * ten-minute generation, so the buckets go well past prom-client's 10 s default.
 */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
]);

/**
 * Time to the first byte of the answer's body in seconds: for a streamed completion, its
 * first event (the first token), which mostly falls between 0.1 s and 10 s; the buckets
 * are finest there.
 */
export const TTFB_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300,
]);

const BREAKER_STATES: readonly BreakerStateName[] = ['closed', 'open', 'half_open'];

/** The `outcome` label values INTERFACE.md fixes: a protocol error counts as a reset there. */
type OutcomeLabel = Exclude<AttemptOutcome, 'protocol'>;
const OUTCOME_LABELS: readonly OutcomeLabel[] = ['ok', 'connect_error', 'timeout', 'reset', 'http_5xx'];

/** RFC 9110 §9 methods plus PATCH (RFC 5789); anything else is `OTHER`. */
const STANDARD_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** Retry reasons come from our own code, but a bound keeps a future bug from exploding. */
const MAX_RETRY_REASONS = 20;

export interface ProxyMetricsOptions {
  /** Distinct model names with their own token series; later ones count as `other`. Default 50. */
  maxModels?: number;
}

/** Values read at scrape time from the parts that own them. */
export interface ScrapeSources {
  /** Requests waiting for a concurrency slot now. */
  queueDepth(): number;
  /** Request-log lines lost so far because the disk could not keep up (only grows). */
  requestLogDropped(): number;
  /** Each upstream now: requests in flight on it, and whether it is routable. */
  upstreams(): Iterable<{ readonly name: string; readonly inFlight: number; readonly up: boolean }>;
}

/** One upstream's series: attempts by outcome and its breaker state. */
interface UpstreamSeries {
  readonly attempts: Readonly<Record<OutcomeLabel, CounterChild>>;
  readonly breaker: Readonly<Record<BreakerStateName, GaugeChild>>;
}

interface RequestSeries {
  readonly requests: CounterChild;
  readonly duration: HistogramChild;
  /** Created on the first answer that had a first byte. */
  ttfb: HistogramChild | null;
}

interface TokenSeries {
  readonly prompt: CounterChild;
  readonly completion: CounterChild;
}

export class ProxyMetrics {
  private readonly requests: Counter;
  private readonly duration: Histogram;
  private readonly ttfb: Histogram;
  private readonly inFlight: Gauge;
  private readonly rateLimitedBy: Readonly<Record<LimitReason, CounterChild>>;
  private readonly clientTokenFamily: Counter;
  private readonly clientTokenSeries = new Map<string, TokenSeries>();
  private readonly tokenFamily: Counter;
  /** Keyed by `method status endpoint`: one Map lookup per finished request. */
  private readonly requestSeries = new Map<string, RequestSeries>();
  private readonly attemptFamily: Counter;
  private readonly breakerFamily: Gauge;
  /** Upstream names come from the config, so this stays bounded. */
  private readonly upstreams = new Map<string, UpstreamSeries>();
  private readonly retries: CappedLabels<CounterChild>;
  private readonly models: CappedLabels<TokenSeries>;
  private unknownModel: TokenSeries | null = null;

  constructor(registry: Registry, opts: ProxyMetricsOptions = {}, sources?: ScrapeSources) {
    this.requests = registry.counter('openai_proxy_requests_total', 'Requests answered, by method, route template and status.', [
      'method',
      'endpoint',
      'status',
    ]);
    this.duration = registry.histogram(
      'openai_proxy_request_duration_seconds',
      'Time from request received to response finished, in seconds.',
      ['endpoint'],
      LATENCY_BUCKETS,
    );
    this.ttfb = registry.histogram(
      'openai_proxy_time_to_first_byte_seconds',
      'Time from request received to the first byte of the answer body sent to the client (for a stream, its first event), in seconds.',
      ['endpoint'],
      TTFB_BUCKETS,
    );
    this.inFlight = registry.gauge('openai_proxy_in_flight_requests', 'Requests being served right now.');
    this.attemptFamily = registry.counter('openai_proxy_upstream_attempts_total', 'Upstream attempts, by upstream and outcome.', ['upstream', 'outcome']);
    const retries = registry.counter('openai_proxy_retries_total', 'Upstream attempts repeated, by reason.', ['reason']);
    const limited = registry.counter('openai_proxy_rate_limited_total', "Requests refused with 429 by the client's own limits, by reason: requests, tokens or parallel.", ['reason']);
    this.rateLimitedBy = { requests: limited.labels('requests'), tokens: limited.labels('tokens'), parallel: limited.labels('parallel') };
    this.clientTokenFamily = registry.counter('openai_proxy_client_tokens_total', 'Tokens each client key used, by key id and kind (only with client keys: ids come from the key list).', ['client', 'kind']);
    this.breakerFamily = registry.gauge(
      'openai_proxy_circuit_breaker_state',
      "Each upstream's circuit breaker state: 1 for the current state, 0 for the others.",
      ['upstream', 'state'],
    );
    this.tokenFamily = registry.counter('openai_proxy_tokens_total', 'Tokens reported by the upstream, by model and kind.', ['model', 'kind']);
    if (sources !== undefined) {
      const queue = registry.gauge('openai_proxy_queue_depth', 'Requests waiting for a concurrency slot (MAX_CONCURRENT_REQUESTS).');
      const dropped = registry.counter('openai_proxy_request_log_dropped_total', 'Request-log lines lost because the disk could not keep up.');
      const upInFlight = registry.gauge('openai_proxy_upstream_in_flight', 'Requests in flight on each upstream (attempts, and the answers they relay).', ['upstream']);
      const up = registry.gauge('openai_proxy_upstream_up', 'Each upstream: 1 while routable (healthy, breaker letting requests through, under max_concurrent), else 0.', ['upstream']);
      registry.onCollect(() => {
        queue.set(sources.queueDepth());
        const lost = sources.requestLogDropped() - dropped.get();
        if (lost > 0) dropped.inc(lost);
        for (const u of sources.upstreams()) {
          upInFlight.labels(u.name).set(u.inFlight);
          up.labels(u.name).set(u.up ? 1 : 0);
        }
      });
      this.removeScraped = (name) => {
        upInFlight.remove(name);
        up.remove(name);
      };
    }

    this.retries = new CappedLabels(MAX_RETRY_REASONS, (reason) => retries.labels(reason));
    this.models = new CappedLabels(opts.maxModels ?? 50, (model) => this.tokenSeries(model));
  }

  /**
   * One answered request.
   *
   * @param endpoint the route template (ids already collapsed by the caller).
   * @param durationSec from request received to response finished.
   * @param ttfbSec from request received to the first response byte; null when none was sent.
   */
  requestFinished(method: string, endpoint: string, status: number, durationSec: number, ttfbSec: number | null): void {
    const m = STANDARD_METHODS.has(method) ? method : 'OTHER';
    const s = statusLabel(status);
    // method and status never contain a space, so putting endpoint last keeps keys unique.
    const key = `${m} ${s} ${endpoint}`;
    let series = this.requestSeries.get(key);
    if (series === undefined) {
      series = { requests: this.requests.labels(m, endpoint, s), duration: this.duration.labels(endpoint), ttfb: null };
      this.requestSeries.set(key, series);
    }
    series.requests.inc();
    // A metric must never break a request: a bad clock reading is dropped, not thrown.
    if (Number.isFinite(durationSec)) series.duration.observe(durationSec);
    if (ttfbSec !== null && Number.isFinite(ttfbSec)) {
      (series.ttfb ??= this.ttfb.labels(endpoint)).observe(ttfbSec);
    }
  }

  inFlightInc(): void {
    this.inFlight.inc();
  }

  inFlightDec(): void {
    this.inFlight.dec();
  }

  /**
   * An upstream's series, made up front for every outcome and state: each shows from the
   * first scrape, so rate() and "== 1" queries never see a missing series.
   */
  addUpstream(name: string): void {
    if (this.upstreams.has(name)) return;
    const attempts = Object.fromEntries(OUTCOME_LABELS.map((o) => [o, this.attemptFamily.labels(name, o)])) as Record<OutcomeLabel, CounterChild>;
    const breaker = Object.fromEntries(BREAKER_STATES.map((s) => [s, this.breakerFamily.labels(name, s)])) as Record<BreakerStateName, GaugeChild>;
    breaker.closed.set(1);
    this.upstreams.set(name, { attempts, breaker });
  }

  /** An upstream removed by a reload: its series go with it. */
  removeUpstream(name: string): void {
    if (!this.upstreams.delete(name)) return;
    for (const o of OUTCOME_LABELS) this.attemptFamily.remove(name, o);
    for (const s of BREAKER_STATES) this.breakerFamily.remove(name, s);
    this.removeScraped(name);
  }

  /** One upstream attempt and how it ended. */
  attempt(upstream: string, outcome: AttemptOutcome): void {
    this.series(upstream).attempts[outcome === 'protocol' ? 'reset' : outcome]?.inc(); // an unknown outcome is dropped, never a new series
  }

  /** One retry; `reason` is a short code from the retry classifier. */
  retry(reason: string): void {
    this.retries.get(reason).inc();
  }

  rateLimited(reason: LimitReason): void {
    this.rateLimitedBy[reason].inc();
  }

  /** A key id's tokens; ids come from the key list, so the label is bounded. */
  clientTokens(keyId: string, prompt: number, completion: number): void {
    let s = this.clientTokenSeries.get(keyId);
    if (s === undefined) {
      s = { prompt: this.clientTokenFamily.labels(keyId, 'prompt'), completion: this.clientTokenFamily.labels(keyId, 'completion') };
      this.clientTokenSeries.set(keyId, s);
    }
    if (isCount(prompt)) s.prompt.inc(prompt);
    if (isCount(completion)) s.completion.inc(completion);
  }

  /** The breaker's current state: its series becomes 1, the two others 0. */
  breakerState(upstream: string, state: BreakerStateName): void {
    const series = this.series(upstream).breaker;
    for (const s of BREAKER_STATES) series[s].set(s === state ? 1 : 0);
  }

  private series(upstream: string): UpstreamSeries {
    let s = this.upstreams.get(upstream);
    if (s === undefined) {
      this.addUpstream(upstream);
      s = this.upstreams.get(upstream)!;
    }
    return s;
  }

  private removeScraped: (name: string) => void = () => {};

  /**
   * Token usage of one answer. Counts come from the upstream's JSON, so anything that is
   * not a finite count >= 0 is ignored rather than thrown at the request.
   *
   * @param model the model name, null when unknown; beyond `maxModels` names → `other`.
   */
  tokens(model: string | null, prompt: number, completion: number): void {
    const series = model === null || model === '' ? (this.unknownModel ??= this.tokenSeries('unknown')) : this.models.get(model);
    if (isCount(prompt)) series.prompt.inc(prompt);
    if (isCount(completion)) series.completion.inc(completion);
  }

  private tokenSeries(model: string): TokenSeries {
    return { prompt: this.tokenFamily.labels(model, 'prompt'), completion: this.tokenFamily.labels(model, 'completion') };
  }
}

/** Three-digit codes as themselves (499 included); anything else is `other`. */
function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 999 ? String(status) : 'other';
}

function isCount(n: number): boolean {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0;
}
