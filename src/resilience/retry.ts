/**
 * The retry loop, apart from any socket: it calls `attempt`, asks the verdict whether to go
 * again, waits the backoff (or the upstream's Retry-After when it fits in what is left of the
 * deadline) on the injected clock, and stops at the first of: success or a final answer,
 * MAX_RETRIES spent, the deadline, the caller's gate (breaker open, retry budget spent), or
 * the cancellation (client gone). A connection the peer had already closed is resent at once and
 * not counted: it says nothing about the upstream's health. A retry that fails over to another
 * upstream goes at once.
 */
import type { Clock } from '../clock.js';

export type Verdict<T> =
  /** Final: hand this to the client (a 2xx, a 4xx, or anything not worth repeating). */
  | { readonly kind: 'final'; readonly value: T }
  /** Worth repeating. `value` is what the client gets when no retry happens (e.g. the 503). */
  | { readonly kind: 'retry'; readonly reason: string; readonly value: T; readonly retryAfterMs?: number; readonly immediate?: boolean };

export interface RetryOptions {
  readonly maxRetries: number;
  /** Backoff before retry n (1-based). */
  readonly backoffMs: (retryNumber: number) => number;
  readonly clock: Clock;
  /** Absolute time (clock.now scale) after which no new attempt starts. */
  readonly deadline: number;
  /** The request's cancellation (client gone, deadline): read as a flag, slept on as a signal. */
  readonly cancel: { readonly aborted: boolean; readonly signal: AbortSignal };
  /** Asked before each retry; false stops the loop (breaker open, budget spent). */
  readonly mayRetry?: (reason: string) => boolean;
  /** Told of every retry about to happen, with its reason and wait. */
  readonly onRetry?: (retryNumber: number, reason: string, delayMs: number) => void;
  /** Resends of stale connections allowed in one request (they are not counted as retries). */
  readonly maxImmediate?: number;
  /**
   * Asked before each retry: true when it will go to another upstream that has not been
   * tried, which needs no wait (neither the backoff nor the first one's Retry-After).
   */
  readonly failover?: () => boolean;
}

export interface RetryResult<T> {
  readonly value: T;
  /** Attempts made, the immediate resends included. */
  readonly attempts: number;
  /** The last verdict was retryable but the loop stopped: why. */
  readonly stoppedBecause: 'final' | 'retries_spent' | 'deadline' | 'refused' | 'aborted';
}

export async function retry<T>(attempt: (attemptNumber: number) => Promise<Verdict<T>>, opts: RetryOptions): Promise<RetryResult<T>> {
  let retries = 0;
  let immediate = 0;
  for (let attempts = 1; ; attempts++) {
    const verdict = await attempt(attempts);
    if (verdict.kind === 'final') return { value: verdict.value, attempts, stoppedBecause: 'final' };
    const stop = (stoppedBecause: RetryResult<T>['stoppedBecause']): RetryResult<T> => ({ value: verdict.value, attempts, stoppedBecause });
    if (opts.cancel.aborted) return stop('aborted');
    if (verdict.immediate && immediate < (opts.maxImmediate ?? 2)) {
      immediate++;
      continue;
    }
    if (retries >= opts.maxRetries) return stop('retries_spent');
    const left = opts.deadline - opts.clock.now();
    let delay = 0;
    if (opts.failover?.() !== true) {
      const asked = verdict.retryAfterMs;
      if (asked !== undefined && asked > left) return stop('deadline'); // the upstream wants a wait we cannot afford
      delay = asked ?? opts.backoffMs(retries + 1);
      if (delay >= left) return stop('deadline');
    } else if (left <= 0) return stop('deadline');
    if (opts.mayRetry && !opts.mayRetry(verdict.reason)) return stop('refused');
    retries++;
    opts.onRetry?.(retries, verdict.reason, delay);
    if (delay > 0) {
      try {
        await opts.clock.sleep(delay, opts.cancel.signal);
      } catch {
        return stop('aborted');
      }
    }
  }
}
