/**
 * A request's standing with the circuit breaker. Admission may make the request the
 * half-open probe; the probe belongs to the request, not to one attempt: whichever attempt
 * learns how the upstream is doing reports it (a resend on a fresh connection after a
 * pooled one turned out closed included), and `release`, called once when the request ends
 * whatever happened (success, failure, a client that left, an exception), frees a probe
 * slot that no verdict settled. Without this, a probe whose verdict came from its resend
 * left the breaker half-open for good.
 */
import type { Clock } from '../clock.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';

export class BreakerTicket {
  /** A probe whose verdict the breaker is still waiting for. */
  private owed: boolean;

  constructor(
    private readonly breaker: CircuitBreaker | null,
    private readonly clock: Clock,
    readonly probe: boolean,
  ) {
    this.owed = probe && breaker !== null;
  }

  /** The upstream answered (below 500). */
  success(): void {
    this.breaker?.recordSuccess(this.clock.now(), this.owed);
    this.owed = false;
  }

  /** The upstream failed (no answer, or 5xx). */
  failure(): void {
    this.breaker?.recordFailure(this.clock.now(), this.owed);
    this.owed = false;
  }

  /** The request is over: a probe nobody judged gives its slot back. Idempotent. */
  release(): void {
    if (this.owed) this.breaker?.recordAbandoned(true);
    this.owed = false;
  }
}
