/**
 * Counters the proxy keeps about itself, for /health and /stats. Plain numbers and small
 * maps keyed by bounded values (status codes, outcome and reason names), so nothing a
 * client sends can grow them.
 */
export type AttemptOutcome = 'ok' | 'connect_error' | 'timeout' | 'reset' | 'http_5xx' | 'protocol';

export class ProxyStats {
  readonly startedAtMs: number;
  requests = 0;
  inFlight = 0;
  rateLimited = 0;
  readonly byStatus = new Map<number, number>();
  readonly attempts = new Map<AttemptOutcome, number>();
  readonly retries = new Map<string, number>();
  readonly streams = { complete: 0, upstream_broken: 0, idle_timeout: 0, client_gone: 0 };
  lastUpstreamError: { at: string; outcome: string; message: string } | null = null;

  constructor(private readonly wallClock: () => number = Date.now) {
    this.startedAtMs = wallClock();
  }

  requestEnded(status: number): void {
    this.requests++;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  attempt(outcome: AttemptOutcome, message?: string): void {
    this.attempts.set(outcome, (this.attempts.get(outcome) ?? 0) + 1);
    if (outcome !== 'ok') this.lastUpstreamError = { at: new Date(this.wallClock()).toISOString(), outcome, message: message ?? outcome };
  }

  retry(reason: string): void {
    this.retries.set(reason, (this.retries.get(reason) ?? 0) + 1);
  }

  uptimeSec(): number {
    return Math.round((this.wallClock() - this.startedAtMs) / 1000);
  }

  totalRetries(): number {
    let n = 0;
    for (const v of this.retries.values()) n += v;
    return n;
  }
}
