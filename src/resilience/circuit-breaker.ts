/**
 * The circuit breaker's state machine, after cockatiel: the state is a tagged union in
 * which each state carries only its own data, and open → half-open is computed from `now`
 * whenever the breaker is asked, so no timer flips it and tests move a fake clock. When to
 * trip is decided by ConsecutiveFailures; this file only says what happens next.
 *
 *   closed --(threshold failures in a row)--> open --(openMs passed)--> half_open
 *   half_open --(probe succeeds)--> closed
 *   half_open --(probe fails)--> open for another openMs
 *
 * The breaker makes decisions and does no I/O: the caller asks `admit`, sends the request
 * (or not), then reports the verdict with `wasProbe` set to whether admit said 'probe'.
 */
import { ConsecutiveFailures } from './consecutive-failures.js';

export type BreakerState =
  | { name: 'closed' }
  | { name: 'open'; openedAt: number; reopenAt: number }
  | { name: 'half_open'; probeInFlight: boolean };

export type BreakerStateName = BreakerState['name'];

/** What the breaker says to a request that asks to go upstream. */
export type BreakerDecision = { kind: 'allow' } | { kind: 'probe' } | { kind: 'reject'; retryAfterMs: number };

export interface BreakerSnapshot {
  state: BreakerStateName;
  consecutiveFailures: number;
  /** When the last transition took effect (ms, clock scale); null if there was none. */
  lastTransitionAt: number | null;
  /** How long a request arriving now would be told to wait; 0 when it would be let through. */
  retryAfterMs: number;
}

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker; an integer ≥ 1. */
  threshold: number;
  /** Milliseconds the breaker stays open before it lets one probe through. */
  openMs: number;
  /** Wait suggested to requests refused while a probe is in flight; default 1000 ms. */
  probeRetryAfterMs?: number;
  /**
   * Called after every transition, with the instant it took effect: for open → half_open
   * that is the end of the open period, even when the breaker only notices later. A
   * listener that throws is ignored: observing the breaker must not break a request.
   */
  onTransition?: (from: BreakerStateName, to: BreakerStateName, at: number) => void;
}

export class CircuitBreaker {
  private readonly openMs: number;
  private readonly probeRetryAfterMs: number;
  private readonly onTransition: CircuitBreakerOptions['onTransition'];
  private readonly trip: ConsecutiveFailures;
  private state: BreakerState = { name: 'closed' };
  private lastTransitionAt: number | null = null;

  constructor(options: CircuitBreakerOptions) {
    const { threshold, openMs, probeRetryAfterMs = 1000, onTransition } = options;
    if (!(Number.isFinite(openMs) && openMs >= 0)) {
      throw new RangeError(`openMs must be a non-negative number, got ${openMs}`);
    }
    if (!(Number.isFinite(probeRetryAfterMs) && probeRetryAfterMs >= 0)) {
      throw new RangeError(`probeRetryAfterMs must be a non-negative number, got ${probeRetryAfterMs}`);
    }
    this.trip = new ConsecutiveFailures(threshold);
    this.openMs = openMs;
    this.probeRetryAfterMs = probeRetryAfterMs;
    this.onTransition = onTransition;
  }

  /** Decides whether a request may go upstream at `now`. */
  admit(now: number): BreakerDecision {
    const state = this.current(now);
    switch (state.name) {
      case 'closed':
        return { kind: 'allow' };
      case 'open':
        return { kind: 'reject', retryAfterMs: state.reopenAt - now };
      case 'half_open':
        if (state.probeInFlight) return { kind: 'reject', retryAfterMs: this.probeRetryAfterMs };
        state.probeInFlight = true;
        return { kind: 'probe' };
    }
  }

  /**
   * The upstream answered well. A probe's success closes the breaker; while closed, any
   * success breaks the run of failures. A non-probe request that was admitted before the
   * breaker opened reports stale news, so outside 'closed' it is ignored.
   */
  recordSuccess(now: number, wasProbe: boolean): void {
    const state = this.current(now);
    if (wasProbe && state.name === 'half_open') {
      this.trip.reset();
      this.moveTo({ name: 'closed' }, now);
    } else if (state.name === 'closed') {
      this.trip.success();
    }
  }

  /**
   * The upstream failed. A probe's failure re-opens the breaker for another `openMs`; while
   * closed, a failure counts toward the threshold. Late failures of requests admitted before
   * the breaker opened do not extend the open period.
   */
  recordFailure(now: number, wasProbe: boolean): void {
    const state = this.current(now);
    if (wasProbe && state.name === 'half_open') {
      this.open(now);
    } else if (!wasProbe && state.name === 'closed' && this.trip.failure()) {
      this.open(now);
    }
  }

  /**
   * The request ended without a verdict on the upstream (the client left, a 4xx). An
   * abandoned probe frees the slot so the next request can probe; nothing else changes.
   */
  recordAbandoned(wasProbe: boolean): void {
    if (wasProbe && this.state.name === 'half_open') this.state.probeInFlight = false;
  }

  /** The state at `now`, for /health, /stats and metrics. */
  snapshot(now: number): BreakerSnapshot {
    return {
      state: this.current(now).name,
      consecutiveFailures: this.trip.count,
      lastTransitionAt: this.lastTransitionAt,
      retryAfterMs: this.waitMs(now),
    };
  }

  /**
   * How long a request arriving at `now` would be told to wait; 0 when it would be let
   * through. What routing asks on every request, so it allocates nothing.
   */
  waitMs(now: number): number {
    const state = this.current(now);
    if (state.name === 'open') return state.reopenAt - now;
    if (state.name === 'half_open' && state.probeInFlight) return this.probeRetryAfterMs;
    return 0;
  }

  /** The state brought up to `now`: the lazy open → half_open step lives here alone. */
  private current(now: number): BreakerState {
    const state = this.state;
    if (state.name === 'open' && now >= state.reopenAt) {
      this.moveTo({ name: 'half_open', probeInFlight: false }, state.reopenAt);
    }
    return this.state;
  }

  private open(now: number): void {
    this.moveTo({ name: 'open', openedAt: now, reopenAt: now + this.openMs }, now);
  }

  private moveTo(next: BreakerState, at: number): void {
    const from = this.state.name;
    this.state = next;
    this.lastTransitionAt = at;
    try {
      this.onTransition?.(from, next.name, at);
    } catch {
      // Deliberately ignored: see CircuitBreakerOptions.onTransition.
    }
  }
}
