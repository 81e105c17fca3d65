/**
 * A token bucket in the manner of golang.org/x/time/rate: no timer refills it. The bucket
 * remembers how many tokens it held at the last instant it saw, and every method takes `now`
 * and adds `elapsed × rate` on the spot. The answer to "not yet" is the exact wait until
 * enough tokens exist, which is what a `Retry-After` header needs.
 *
 * Time is in milliseconds on the scale of `Clock.now()`; only differences matter.
 *
 * Tokens may also be LENT (a worker of a cluster takes a few requests ahead and spends them
 * without asking: cluster/remote-limits.ts): a lend takes whole tokens like a take, and
 * until it expires its tokens still count against the capacity, so the bucket refills only
 * up to `capacity - lent`. Why: a borrower may spend its tokens at any moment before the
 * lend expires, and a bucket that refilled to full meanwhile would let the client have
 * `capacity + lent` at once, more than one bucket allows. Counted this way, the tokens in
 * the bucket plus those held unspent never exceed what one bucket would hold, so borrowers
 * admit nothing a single bucket would refuse (a client may be refused slightly early, while
 * spent lent tokens wait to expire, never late). Unspent tokens given back return at once.
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

/** What `lend` gave: `n` whole tokens (0: none, and `retryAfterMs` until one exists). */
export interface LendResult {
  readonly n: number;
  /** Whole tokens left after this lend. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /** Milliseconds until one token is available (0 when some were lent; Infinity when capacity < 1). */
  readonly retryAfterMs: number;
}

interface Lend {
  /** The instant it expires; lends are kept in this order. */
  readonly until: number;
  /** Its tokens not given back. */
  n: number;
  /** The lender's name for it (giveBack finds it by this). */
  readonly tag: number;
}

export class TokenBucket {
  readonly capacity: number;
  readonly refillPerSec: number;
  /** Refill rate in tokens per millisecond, the unit every computation below uses. */
  private readonly perMs: number;
  /** Tokens held at `last`; always within [0, capacity]. */
  private tokens: number;
  /** The latest instant the bucket has seen; null until the first call. */
  private last: number | null = null;
  /** Lends not expired at `last`, in expiry order, and their tokens (counted against the capacity). */
  private lends: Lend[] = [];
  private lentTokens = 0;

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
    return this.project(now).tokens;
  }

  /** Tokens lent and not expired at `now` (spent or not: the bucket cannot know). */
  lentAt(now: number): number {
    return this.project(now).lent;
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
    const retryAfterMs = this.untilTokensMs(n);
    return {
      ok: false,
      remaining: Math.floor(this.tokens + TOKEN_EPSILON),
      retryAfterMs,
      resetMs: this.untilFullMs(),
    };
  }

  /**
   * Lends up to `max` whole tokens at `now`, to be given back or spent by `until`; `tag`
   * names the lend for `giveBack`. None when the bucket holds not even one whole token.
   */
  lend(now: number, max: number, until: number, tag: number): LendResult {
    if (!(Number.isInteger(max) && max >= 1)) throw new RangeError(`max must be a positive integer, got ${max}`);
    this.advance(now);
    const n = Math.min(max, Math.floor(this.tokens + TOKEN_EPSILON));
    if (n <= 0) {
      const retryAfterMs = this.untilTokensMs(1);
      return { n: 0, remaining: 0, resetMs: this.untilFullMs(), retryAfterMs };
    }
    this.tokens = Math.max(0, this.tokens - n);
    // kept in expiry order: a later lend never expires before an earlier one (later is the safe side)
    const latest = this.lends.length === 0 ? until : Math.max(until, this.lends[this.lends.length - 1]!.until);
    this.lends.push({ until: latest, n, tag });
    this.lentTokens += n;
    return { n, remaining: Math.floor(this.tokens + TOKEN_EPSILON), resetMs: this.untilFullMs(), retryAfterMs: 0 };
  }

  /** `n` unspent tokens of the lend `tag` come back now (an expired lend's too; never above the capacity). */
  giveBack(now: number, n: number, tag: number): void {
    if (!(Number.isFinite(n) && n >= 0)) throw new RangeError(`n must be a non-negative number, got ${n}`);
    this.advance(now);
    const i = this.lends.findIndex((l) => l.tag === tag);
    if (i >= 0) {
      const lend = this.lends[i]!;
      const k = Math.min(n, lend.n);
      lend.n -= k;
      this.lentTokens -= k;
      if (lend.n === 0) this.lends.splice(i, 1);
    }
    this.tokens = Math.min(this.cap(), this.tokens + n);
  }

  /**
   * New limits for a client (a keys reload): this bucket, just made, starts as empty as
   * `old` is at `now`, and `old`'s lends stay out against it until they expire.
   */
  inherit(old: TokenBucket, now: number): void {
    old.advance(now);
    this.advance(now);
    this.lends = old.lends.map((l) => ({ ...l }));
    this.lentTokens = old.lentTokens;
    const used = old.capacity - old.tokens;
    this.tokens = Math.max(0, Math.min(this.cap(), this.tokens - used));
  }

  /**
   * Brings `tokens` up to `now`. `last` only moves forward: if the clock steps back, the
   * bucket acts as if time stood still, so the same interval is never credited twice
   * (rate.go's advance clamps the elapsed time the same way).
   */
  private advance(now: number): void {
    const p = this.project(now);
    this.tokens = p.tokens;
    if (p.expired > 0) {
      this.lends.splice(0, p.expired);
      this.lentTokens = this.lends.length === 0 ? 0 : p.lent;
    }
    if (this.last === null || now > this.last) this.last = now;
  }

  /**
   * The bucket at `now`, lazily: the refill runs up to `capacity - lent`, and the cap rises
   * at each lend's expiry on the way (piecewise, so no token is credited that a bucket with
   * those lends out could not have held).
   */
  private project(now: number): { tokens: number; lent: number; expired: number } {
    if (this.last === null || now <= this.last) {
      // A clock that went backwards (or stood still) refills nothing and expires nothing.
      return { tokens: this.tokens, lent: this.lentTokens, expired: 0 };
    }
    let tokens = this.tokens;
    let at = this.last;
    let lent = this.lentTokens;
    let expired = 0;
    for (const l of this.lends) {
      if (l.until > now) break;
      if (l.until > at) {
        tokens = Math.min(Math.max(0, this.capacity - lent), tokens + (l.until - at) * this.perMs);
        at = l.until;
      }
      lent -= l.n;
      expired++;
    }
    return { tokens: Math.min(Math.max(0, this.capacity - lent), tokens + (now - at) * this.perMs), lent, expired };
  }

  /**
   * Milliseconds from `last` until the bucket holds `n` tokens (Infinity: more than its
   * capacity), the lends out expiring on the way: while they keep the cap below `n`, no
   * refill gets there. Call after `advance`.
   */
  private untilTokensMs(n: number): number {
    if (n > this.capacity) return Infinity;
    const last = this.last ?? 0;
    let tokens = this.tokens;
    let at = last;
    let lent = this.lentTokens;
    for (const l of this.lends) {
      if (this.capacity - lent >= n) {
        const ready = at + Math.max(0, n - tokens) / this.perMs;
        if (ready <= l.until) return ready - last;
      }
      if (l.until > at) {
        tokens = Math.min(Math.max(0, this.capacity - lent), tokens + (l.until - at) * this.perMs);
        at = l.until;
      }
      lent -= l.n;
    }
    return at + Math.max(0, n - tokens) / this.perMs - last;
  }

  /** Most tokens the bucket may hold now: its capacity less what is lent out. */
  private cap(): number {
    return Math.max(0, this.capacity - this.lentTokens);
  }

  /** Milliseconds from `last` until full, at the current token count. */
  private untilFullMs(): number {
    return (this.capacity - this.tokens) / this.perMs;
  }
}
