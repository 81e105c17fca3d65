/**
 * The one place a request's facts go when something happens to it: the /stats counters,
 * the Prometheus metrics (when METRICS_ENABLED) and the audit log (when
 * REQUEST_LOG_ENABLED). The handler reports; it never touches a metric name or a log
 * field. Observing never breaks a request: a failing sink is swallowed here.
 */
import type { ProxyMetrics } from '../metrics/proxy-metrics.js';
import type { RequestLog } from '../logging/request-log.js';
import type { ProxyStats, StreamOutcome } from '../stats.js';
import type { BreakerStateName } from '../resilience/circuit-breaker.js';
import type { LimitReason } from '../resilience/client-limits.js';
import type { AttemptOutcome } from '../upstream/transport.js';

export interface RequestRecord {
  readonly requestId: string;
  readonly client: string;
  readonly method: string;
  readonly path: string;
  /** Route template (`/v1/files/{file_id}`), bounded. */
  readonly endpoint: string;
  readonly model: string | null;
  readonly stream: boolean;
  readonly status: number;
  readonly durationMs: number;
  readonly ttfbMs: number | null;
  readonly attempts: number;
  /** The upstream of the last attempt; null when none was tried. */
  readonly upstream: string | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
  /** Tokens charged to the client's limits (and the fair queue) once settled; null when it never got that far. */
  readonly tokensCharged: number | null;
  /** The client's key id when client keys are on (bounded: ids come from the key list); null otherwise. */
  readonly keyId: string | null;
  readonly error: string | null;
}

export class Telemetry {
  constructor(
    readonly stats: ProxyStats,
    private readonly metrics: ProxyMetrics | null,
    private readonly requestLog: RequestLog | null,
  ) {}

  requestStarted(): void {
    this.stats.inFlight++;
    this.metrics?.inFlightInc();
  }

  requestFinished(r: RequestRecord): void {
    this.stats.inFlight--;
    this.stats.requestEnded(r.status, r.endpoint, r.durationMs, r.ttfbMs);
    this.stats.clientServed(r.keyId ?? r.client, r.promptTokens ?? 0, r.completionTokens ?? 0, r.tokensCharged ?? 0);
    if (r.promptTokens !== null || r.completionTokens !== null) this.stats.addTokens(r.model, r.promptTokens ?? 0, r.completionTokens ?? 0);
    try {
      if (this.metrics !== null) {
        this.metrics.inFlightDec();
        this.metrics.requestFinished(r.method, r.endpoint, r.status, r.durationMs / 1000, r.ttfbMs === null ? null : r.ttfbMs / 1000);
        if (r.promptTokens !== null || r.completionTokens !== null) this.metrics.tokens(r.model, r.promptTokens ?? 0, r.completionTokens ?? 0);
        if (r.keyId !== null && (r.promptTokens !== null || r.completionTokens !== null)) this.metrics.clientTokens(r.keyId, r.promptTokens ?? 0, r.completionTokens ?? 0);
      }
      this.requestLog?.write(r);
    } catch {
      // observability must not take a request down
    }
  }

  attempt(upstream: string, outcome: AttemptOutcome, message?: string): void {
    this.stats.attempt(upstream, outcome, message);
    this.metrics?.attempt(upstream, outcome);
  }

  retry(reason: string): void {
    this.stats.retry(reason);
    this.metrics?.retry(reason);
  }

  /** A 429 of the client's own limits: its requests, its tokens, or its requests in flight. */
  rateLimited(reason: LimitReason, client: string): void {
    this.stats.limited(reason, client);
    this.metrics?.rateLimited(reason);
  }

  streamEnded(outcome: StreamOutcome): void {
    this.stats.streams[outcome]++;
  }

  breakerState(upstream: string, state: BreakerStateName): void {
    this.metrics?.breakerState(upstream, state);
  }

  /** An upstream joined (start, reload): its series show from the next scrape. */
  upstreamAdded(upstream: string): void {
    this.metrics?.addUpstream(upstream);
  }

  /** An upstream left (reload): its series go. */
  upstreamRemoved(upstream: string): void {
    this.stats.forgetUpstream(upstream);
    this.metrics?.removeUpstream(upstream);
  }
}
