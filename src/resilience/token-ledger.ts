/**
 * A tokens-per-minute limit for LLM requests, whose cost is known only after the answer.
 * Before forwarding, the proxy reserves an estimate (prompt bytes ÷ 4 plus the requested
 * maximum); after the answer it settles the reservation to the real usage: the difference
 * comes back, or the excess is charged. Same arithmetic as TokenBucket (golang.org/x/time/
 * rate): the level is brought up to `now` lazily, no timer, and a refusal says exactly how
 * long until the estimate would fit.
 *
 * Why settle is idempotent and `outstanding` exists: proxies that count reservations in
 * windows and forget to settle some leave keys blocked at 80–90% of their limit for minutes
 * (LiteLLM #18953). Here a forgotten reservation costs its tokens once, like any other
 * request (the bucket refills anyway), and shows in `outstanding` until settled.
 *
 * Bound (what a client gets): let L(t) be the level, C the capacity (= perMinute) and
 * r = C / windowMs. Every reserve and settle moves L by exactly what it charges, refill adds
 * at most r·(t2 − t1), so for any interval the charge applied in (t1, t2] (reserves granted
 * plus settlement corrections `actual − reserved`) is L(t1) + refill − L(t2). A reserve of n
 * needs L ≥ n, so L ≥ 0 after it, and a settle that charges no more than was reserved only
 * raises L: then charge(t1, t2] ≤ L(t1) + r·(t2 − t1). From a full bucket that is C + r·Δt;
 * for a client that reserves as soon as its next request fits (a backlogged stream) L never
 * exceeds its next request before being spent, so any window of windowMs charges at most
 * T + n_max (T = perMinute, n_max its largest reservation). Excess settlements can add the
 * debt still unpaid at t2 (at most C), which then delays the next reserve until repaid.
 *
 * Time is in milliseconds on the scale of `Clock.now()`; only differences matter.
 */

/** As TokenBucket: keeps "wait retryAfterMs, then you are served" true despite float rounding. */
const TOKEN_EPSILON = 1e-9;

export interface Reservation {
  /** Tokens reserved (the estimate, clamped to the capacity). */
  readonly tokens: number;
}

/** Durations are measured from `now`, or from the latest instant seen if the clock went back. */
export type ReserveResult =
  | {
      readonly ok: true;
      readonly reservation: Reservation;
      /** Whole tokens left after this reservation. */
      readonly remaining: number;
      /** Milliseconds until the bucket is full again. */
      readonly resetMs: number;
    }
  | {
      readonly ok: false;
      /** Milliseconds until the estimate fits; always finite (the estimate is clamped). */
      readonly retryAfterMs: number;
      /** Whole tokens held now (negative while in debt). */
      readonly remaining: number;
      /** Milliseconds until the bucket is full again. */
      readonly resetMs: number;
    };

export class TokenLedger {
  /** The bucket's size: `perMinute` tokens. */
  readonly capacity: number;
  /** Refill in tokens per millisecond. */
  private readonly perMs: number;
  /** Tokens held at `last`; within [-capacity, capacity]. Negative is debt. */
  private level: number;
  /** The latest instant the ledger has seen; null until the first call. */
  private last: number | null = null;
  /** Reservations handed out and not yet settled. Weak: a dropped one is not kept alive. */
  private readonly open = new WeakSet<Reservation>();
  private openCount = 0;
  private openTokens = 0;

  /**
   * @param perMinute tokens per minute (> 0): the bucket's size, refilled continuously over
   *   `windowMs`; it starts full.
   * @param opts.windowMs the refill period in milliseconds; default 60 000 (a minute).
   */
  constructor(perMinute: number, opts: { windowMs?: number } = {}) {
    const { windowMs = 60_000 } = opts;
    if (!(Number.isFinite(perMinute) && perMinute > 0)) {
      throw new RangeError(`perMinute must be a positive number, got ${perMinute}`);
    }
    if (!(Number.isFinite(windowMs) && windowMs > 0)) {
      throw new RangeError(`windowMs must be a positive number, got ${windowMs}`);
    }
    this.capacity = perMinute;
    this.perMs = perMinute / windowMs;
    this.level = perMinute;
  }

  /** Tokens reserved and not yet settled. */
  get outstanding(): number {
    return this.openTokens;
  }

  /**
   * Reserves `estimate` tokens at `now` if they fit, else reserves nothing and says how long
   * until they would. An estimate above the capacity is clamped to it: such a request waits
   * for a full bucket instead of never fitting, and its settlement charges the rest as debt.
   * While in debt nothing fits, not even 0 tokens: the debt is paid first.
   */
  reserve(now: number, estimate: number): ReserveResult {
    if (!(Number.isFinite(estimate) && estimate >= 0)) {
      throw new RangeError(`estimate must be a non-negative number, got ${estimate}`);
    }
    const n = Math.min(estimate, this.capacity);
    this.advance(now);
    if (this.level + TOKEN_EPSILON < n) {
      return { ok: false, retryAfterMs: (n - this.level) / this.perMs, remaining: this.whole(), resetMs: this.untilFullMs() };
    }
    this.level -= n;
    // A level a few ulps below zero after an exact fit is a full spend, not debt.
    if (this.level < 0 && this.level > -TOKEN_EPSILON) this.level = 0;
    const reservation: Reservation = Object.freeze({ tokens: n });
    this.open.add(reservation);
    this.openCount++;
    this.openTokens += n;
    return { ok: true, reservation, remaining: this.whole(), resetMs: this.untilFullMs() };
  }

  /**
   * Settles `r` to the `actual` tokens used: 0 refunds it all, less refunds the difference
   * (never past a full bucket), more charges the excess (the bucket may go into debt, at most
   * -capacity). A reservation already settled, or not from this ledger, changes nothing. An
   * `actual` that is not a finite number ≥ 0 is unknown usage: the reservation stands as
   * charged. Never throws, so a settle in a `finally` always closes the reservation.
   */
  settle(now: number, r: Reservation, actual: number): void {
    if (!this.open.has(r)) return;
    this.open.delete(r);
    this.openCount--;
    // Summing and subtracting floats can leave dust; nothing open means exactly nothing.
    this.openTokens = this.openCount === 0 ? 0 : this.openTokens - r.tokens;
    const used = Number.isFinite(actual) && actual >= 0 ? actual : r.tokens;
    this.advance(now);
    this.level = Math.min(this.capacity, Math.max(-this.capacity, this.level + r.tokens - used));
  }

  /** Whole tokens available at `now` (negative while in debt). Changes nothing. */
  available(now: number): number {
    return Math.floor(this.levelAt(now) + TOKEN_EPSILON);
  }

  /** Milliseconds from `now` until the bucket is full again (0 when full). Changes nothing. */
  resetMs(now: number): number {
    return Math.max(0, (this.capacity - this.levelAt(now)) / this.perMs);
  }

  /** Full and nothing outstanding: the same as a fresh ledger, so the caller may drop it. */
  idleAt(now: number): boolean {
    return this.openCount === 0 && this.levelAt(now) + TOKEN_EPSILON >= this.capacity;
  }

  /** The level at `now`; a clock that went backwards (or stood still) refills nothing. */
  private levelAt(now: number): number {
    if (this.last === null || now <= this.last) return this.level;
    return Math.min(this.capacity, this.level + (now - this.last) * this.perMs);
  }

  /** Brings the level up to `now`; `last` only moves forward, so no interval counts twice. */
  private advance(now: number): void {
    this.level = this.levelAt(now);
    if (this.last === null || now > this.last) this.last = now;
  }

  private whole(): number {
    return Math.floor(this.level + TOKEN_EPSILON);
  }

  private untilFullMs(): number {
    return Math.max(0, (this.capacity - this.level) / this.perMs);
  }
}
