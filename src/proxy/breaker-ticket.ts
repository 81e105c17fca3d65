/**
 * A request's standing with an upstream's circuit breaker. Before each attempt on that
 * upstream the ticket asks the breaker (`admit`); the breaker may make this request its
 * half-open probe. The probe belongs to the request, not to one attempt: whichever attempt
 * learns how the upstream is doing reports it (a resend on a fresh connection after a
 * pooled one turned out closed included), and `release`, called once when the request ends
 * whatever happened (success, failure, a client that left, an exception), frees a probe
 * slot that no verdict settled. Without this, a probe whose verdict came from its resend
 * left the breaker half-open for good. A request that tries several upstreams holds one
 * ticket per upstream (BreakerTickets).
 */
import type { Clock } from '../clock.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';

export class BreakerTicket {
  /** A probe whose verdict the breaker is still waiting for. */
  private owed = false;

  constructor(
    private readonly breaker: CircuitBreaker | null,
    private readonly clock: Clock,
  ) {}

  /** Whether an attempt may go now; an attempt that is the probe makes the verdict owed. */
  admit(): boolean {
    if (this.breaker === null || this.owed) return true; // the probe's own resend goes on
    const d = this.breaker.admit(this.clock.now());
    if (d.kind === 'reject') return false;
    this.owed = d.kind === 'probe';
    return true;
  }

  /** This request is the breaker's probe and owes it a verdict. */
  get probe(): boolean {
    return this.owed;
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

/** One ticket per upstream a request tried, all released when it ends. */
export class BreakerTickets<U extends { readonly breaker: CircuitBreaker | null }> {
  private readonly tickets = new Map<U, BreakerTicket>();

  constructor(private readonly clock: Clock) {}

  for(u: U): BreakerTicket {
    let t = this.tickets.get(u);
    if (t === undefined) {
      t = new BreakerTicket(u.breaker, this.clock);
      this.tickets.set(u, t);
    }
    return t;
  }

  releaseAll(): void {
    for (const t of this.tickets.values()) t.release();
  }
}
