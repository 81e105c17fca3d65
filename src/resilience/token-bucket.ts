/**
 * A token bucket in the manner of golang.org/x/time/rate: no timer refills it. The bucket
 * remembers how many tokens it held at the last instant it saw, and every method takes `now`
 * and adds `elapsed × rate` on the spot. The answer to "not yet" is the exact wait until
 * enough tokens exist, which is what a `Retry-After` header needs.
 *
 * Time is in milliseconds on the scale of `Clock.now()`; only differences matter.
 */

/**
 * Float arithmetic on fractional rates (5 per 60 s is 1/12000 per ms) can leave a bucket a
 * few ulps short of a whole token after waiting exactly the advertised time. Counting such
 * a bucket as having the token keeps "wait retryAfterMs, then you are served" true.
 */
const TOKEN_EPSILON = 1e-9;

/**
 * Durations are measured from `now`, or from the latest instant the bucket has seen if the
 * clock went backwards (the bucket then acts as if time stood still).
 */
export type TakeResult =
  | {
      ok: true;
      /** Whole tokens left after this take. */
      remaining: number;
      /** Milliseconds until the bucket is full again (0 when already full). */
      resetMs: number;
    }
  | {
      ok: false;
      /** Whole tokens held now (fewer than asked for). */
      remaining: number;
      /** Milliseconds until `n` tokens are available; Infinity when `n` exceeds capacity. */
      retryAfterMs: number;
      /** Milliseconds until the bucket is full again. */
      resetMs: number;
    };

export class TokenBucket {
  readonly capacity: number;
  readonly refillPerSec: number;
  /** Refill rate in tokens per millisecond, the unit every computation below uses. */
  private readonly perMs: number;
  /** Tokens held at `last`; always within [0, capacity]. */
  private tokens: number;
  /** The latest instant the bucket has seen; null until the first call. */
  private last: number | null = null;

  /**
   * @param capacity most tokens the bucket holds (the burst); it starts full. Must be > 0.
   * @param refillPerSec tokens added per second. Must be > 0.
   */
  constructor(capacity: number, refillPerSec: number) {
    if (!(Number.isFinite(capacity) && capacity > 0)) {
      throw new RangeError(`capacity must be a positive number, got ${capacity}`);
    }
    if (!(Number.isFinite(refillPerSec) && refillPerSec > 0)) {
      throw new RangeError(`refillPerSec must be a positive number, got ${refillPerSec}`);
    }
    this.capacity = capacity;
    this.refillPerSec = refillPerSec;
    this.perMs = refillPerSec / 1000;
    this.tokens = capacity;
  }

  /** Tokens the bucket holds at `now` (fractional). Does not change the bucket. */
  tokensAt(now: number): number {
    if (this.last === null || now <= this.last) {
      // A clock that went backwards (or stood still) refills nothing.
      return this.tokens;
    }
    return Math.min(this.capacity, this.tokens + (now - this.last) * this.perMs);
  }

  /** True when the bucket is full at `now`: such a bucket is the same as a fresh one. */
  isFullAt(now: number): boolean {
    return this.tokensAt(now) + TOKEN_EPSILON >= this.capacity;
  }

  /**
   * Takes `n` tokens at `now` if the bucket holds them; otherwise takes nothing and says how
   * long until it will. A refused take does not reserve anything (unlike rate.Reserve):
   * a client told to come back later has not queued.
   */
  take(now: number, n = 1): TakeResult {
    if (!(Number.isFinite(n) && n >= 0)) {
      throw new RangeError(`n must be a non-negative number, got ${n}`);
    }
    this.advance(now);
    if (this.tokens + TOKEN_EPSILON >= n) {
      this.tokens = Math.max(0, this.tokens - n);
      return { ok: true, remaining: Math.floor(this.tokens + TOKEN_EPSILON), resetMs: this.untilFullMs() };
    }
    const retryAfterMs = n > this.capacity ? Infinity : (n - this.tokens) / this.perMs;
    return {
      ok: false,
      remaining: Math.floor(this.tokens + TOKEN_EPSILON),
      retryAfterMs,
      resetMs: this.untilFullMs(),
    };
  }

  /**
   * Brings `tokens` up to `now`. `last` only moves forward: if the clock steps back, the
   * bucket acts as if time stood still, so the same interval is never credited twice
   * (rate.go's advance clamps the elapsed time the same way).
   */
  private advance(now: number): void {
    this.tokens = this.tokensAt(now);
    if (this.last === null || now > this.last) this.last = now;
  }

  /** Milliseconds from `last` until full, at the current token count. */
  private untilFullMs(): number {
    return (this.capacity - this.tokens) / this.perMs;
  }
}
