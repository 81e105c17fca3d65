/**
 * A retry budget: retries in flight may be at most a share of the requests in flight (with
 * a small floor so a quiet proxy can still retry). Per-request attempt limits alone let
 * retries multiply an outage: with 3 retries each, a failing upstream sees 4× the load
 * exactly when it can least take it. A budget caps the extra load at `ratio` whatever
 * the per-request settings (the idea of Finagle's and Envoy's retry budgets).
 *
 * Counting only, no time: the caller pairs requestStarted/requestEnded around each client
 * request and tryAcquireRetry/releaseRetry around each retry attempt it makes.
 */

export interface RetryBudgetOptions {
  /** Retries in flight allowed per request in flight; default 0.2 (20%). ≥ 0. */
  ratio?: number;
  /** Retries in flight always allowed, however few requests there are; default 3. ≥ 0. */
  minRetries?: number;
}

export class RetryBudget {
  private readonly ratio: number;
  private readonly minRetries: number;
  private requests = 0;
  private retries = 0;

  constructor(options: RetryBudgetOptions = {}) {
    const { ratio = 0.2, minRetries = 3 } = options;
    if (!(Number.isFinite(ratio) && ratio >= 0)) {
      throw new RangeError(`ratio must be a non-negative number, got ${ratio}`);
    }
    if (!(Number.isInteger(minRetries) && minRetries >= 0)) {
      throw new RangeError(`minRetries must be a non-negative integer, got ${minRetries}`);
    }
    this.ratio = ratio;
    this.minRetries = minRetries;
  }

  get requestsInFlight(): number {
    return this.requests;
  }

  get retriesInFlight(): number {
    return this.retries;
  }

  /** Retries that may be in flight right now. */
  get maxRetries(): number {
    return Math.max(this.minRetries, Math.floor(this.ratio * this.requests));
  }

  requestStarted(): void {
    this.requests++;
  }

  /** Never goes below zero, so an unbalanced call cannot mint budget for later. */
  requestEnded(): void {
    if (this.requests > 0) this.requests--;
  }

  /** Takes a retry slot if the budget has one; on true, call releaseRetry when it ends. */
  tryAcquireRetry(): boolean {
    if (this.retries >= this.maxRetries) return false;
    this.retries++;
    return true;
  }

  /** Never goes below zero, for the same reason as requestEnded. */
  releaseRetry(): void {
    if (this.retries > 0) this.retries--;
  }
}
