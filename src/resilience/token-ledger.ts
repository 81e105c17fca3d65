/**
 * A tokens-per-minute limit for LLM requests, whose cost is known only after the answer,
 * kept as a sliding window: the tokens charged in the last `windowMs`, each at the instant
 * it was charged. Before forwarding, the proxy reserves an estimate (prompt bytes ÷ 4 plus
 * the requested maximum); the reservation counts in the window from that instant; after the
 * answer it is settled to the real usage, which changes its count in place: the difference
 * comes back at once, or the excess is added. A refusal says exactly how long until enough
 * of the window has slid past for the estimate to fit.
 *
 * Why a window and not a bucket: a bucket of T refilled at T per minute lets a client that
 * was idle spend T at once and T more over the next minute, 2T in one minute. In a window
 * every reservation fits only while the window, it included, holds at most T; so the tokens
 * charged in ANY `windowMs` stay within T, plus what settlements added beyond their
 * reservations (a usage above its estimate: one request's overrun, or a few).
 *
 * Why settle is idempotent and `outstanding` exists: proxies that count reservations and
 * forget to settle some leave keys blocked at 80–90% of their limit for minutes (LiteLLM
 * #18953). Here a forgotten reservation holds its tokens only until it slides out of the
 * window, and shows in `outstanding` until settled.
 *
 * Memory: at most `maxEntries` charges are kept. Past it the two closest in time are merged
 * into the later one, so tokens may be held a little longer than they were charged, never
 * shorter: the limit only gets stricter, the bound above holds. Pure: `now` on every call,
 * no timers; a clock that goes back stands still. Times in ms on the scale of `Clock.now()`.
 */

/** Keeps "wait retryAfterMs, then you are served" true despite float rounding. */
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
      /** Whole tokens left in the window after this reservation. */
      readonly remaining: number;
      /** Milliseconds until the window is empty again. */
      readonly resetMs: number;
    }
  | {
      readonly ok: false;
      /** Milliseconds until the estimate fits; always finite (the estimate is clamped). */
      readonly retryAfterMs: number;
      /** Whole tokens left in the window now (negative after settlements beyond their estimates). */
      readonly remaining: number;
      /** Milliseconds until the window is empty again. */
      readonly resetMs: number;
    };

/** Tokens charged at one instant; a merge makes one entry of two. */
interface Entry {
  at: number;
  tokens: number;
  /** Set when merged into a later entry: a reservation's settlement follows it there. */
  into: Entry | null;
}

export class TokenLedger {
  /** The window's size: `perMinute` tokens. */
  private perMinute: number;
  private readonly windowMs: number;
  private readonly maxEntries: number;
  /** Charges in the window, oldest first. */
  private entries: Entry[] = [];
  /** Sum of the entries' tokens. */
  private used = 0;
  /** The latest instant seen. */
  private last = -Infinity;
  /** Reservations not settled yet, and the entry each was charged to. Weak: a dropped one is not kept alive. */
  private readonly open = new WeakMap<Reservation, Entry>();
  private openCount = 0;
  private openTokens = 0;

  /**
   * @param perMinute tokens per `windowMs` (> 0).
   * @param opts.windowMs the window, default 60 000 (a minute); opts.maxEntries the charges kept, default 128.
   */
  constructor(perMinute: number, opts: { windowMs?: number; maxEntries?: number } = {}) {
    const { windowMs = 60_000, maxEntries = 128 } = opts;
    if (!(Number.isFinite(perMinute) && perMinute > 0)) throw new RangeError(`perMinute must be a positive number, got ${perMinute}`);
    if (!(Number.isFinite(windowMs) && windowMs > 0)) throw new RangeError(`windowMs must be a positive number, got ${windowMs}`);
    if (!(Number.isInteger(maxEntries) && maxEntries >= 2)) throw new RangeError(`maxEntries must be an integer >= 2, got ${maxEntries}`);
    this.perMinute = perMinute;
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
  }

  /** Tokens the window holds: `perMinute`. */
  get capacity(): number {
    return this.perMinute;
  }

  /**
   * A new limit (a reloaded keys file), keeping the window's charges and the open
   * reservations: what the client used in the last minute still counts, and settles as before.
   */
  resize(perMinute: number): void {
    if (!(Number.isFinite(perMinute) && perMinute > 0)) throw new RangeError(`perMinute must be a positive number, got ${perMinute}`);
    this.perMinute = perMinute;
  }

  /** Tokens reserved and not yet settled. */
  get outstanding(): number {
    return this.openTokens;
  }

  /**
   * Reserves `estimate` tokens at `now` if the window holds room for them, else reserves
   * nothing and says how long until it will. An estimate above the capacity is clamped to
   * it: such a request waits for an empty window instead of never fitting.
   */
  reserve(now: number, estimate: number): ReserveResult {
    if (!(Number.isFinite(estimate) && estimate >= 0)) throw new RangeError(`estimate must be a non-negative number, got ${estimate}`);
    const n = Math.min(estimate, this.capacity);
    const t = this.advance(now);
    if (this.used + n > this.capacity + TOKEN_EPSILON) {
      return { ok: false, retryAfterMs: this.waitFor(n, t), remaining: this.whole(), resetMs: this.untilEmpty(t) };
    }
    const entry = this.charge(t, n);
    const reservation: Reservation = Object.freeze({ tokens: n });
    this.open.set(reservation, entry);
    this.openCount++;
    this.openTokens += n;
    return { ok: true, reservation, remaining: this.whole(), resetMs: this.untilEmpty(t) };
  }

  /**
   * Settles `r` to the `actual` tokens used: its count in the window becomes `actual` (a
   * refund at once when less; more is added, and may take the window past the limit, which
   * delays the next reserve). Once its charge has slid out of the window, a refund has
   * nothing left to give back and an excess is charged now. A reservation already settled,
   * or not from this ledger, changes nothing. An `actual` that is not a finite number ≥ 0 is
   * unknown usage: the estimate stands. Never throws, so a settle in a `finally` always
   * closes the reservation.
   */
  settle(now: number, r: Reservation, actual: number): void {
    let entry = this.open.get(r);
    if (entry === undefined) return;
    this.open.delete(r);
    this.openCount--;
    this.openTokens = this.openCount === 0 ? 0 : this.openTokens - r.tokens; // no float dust when nothing is open
    const used = Number.isFinite(actual) && actual >= 0 ? actual : r.tokens;
    const t = this.advance(now);
    entry = this.resolve(entry);
    const delta = used - r.tokens;
    if (this.entries.includes(entry)) {
      const change = Math.max(delta, -entry.tokens);
      entry.tokens += change;
      this.used += change;
    } else if (delta > 0) {
      this.charge(t, delta);
    }
  }

  /** Whole tokens left in the window at `now` (negative beyond the limit). Changes nothing. */
  available(now: number): number {
    return Math.floor(this.capacity - this.usedAt(now) + TOKEN_EPSILON);
  }

  /** Milliseconds from `now` until the window is empty (0 when it is). Changes nothing. */
  resetMs(now: number): number {
    const t = Math.max(now, this.last);
    const lastEntry = this.entries.at(-1);
    return lastEntry === undefined ? 0 : Math.max(0, lastEntry.at + this.windowMs - t);
  }

  /** Nothing in the window and nothing outstanding: the same as a fresh ledger, so the caller may drop it. */
  idleAt(now: number): boolean {
    return this.openCount === 0 && this.usedAt(now) <= TOKEN_EPSILON;
  }

  /** Tokens in the window at `now`, without dropping anything. */
  private usedAt(now: number): number {
    const t = Math.max(now, this.last);
    let used = this.used;
    for (const e of this.entries) {
      if (e.at + this.windowMs > t) break;
      used -= e.tokens;
    }
    return used;
  }

  /** Drops what slid out of the window by `now`; returns the instant used (time never goes back). */
  private advance(now: number): number {
    if (now > this.last) this.last = now;
    const t = this.last;
    let drop = 0;
    while (drop < this.entries.length && this.entries[drop]!.at + this.windowMs <= t) this.used -= this.entries[drop++]!.tokens;
    if (drop > 0) this.entries = this.entries.slice(drop);
    if (this.entries.length === 0) this.used = 0;
    return t;
  }

  /** Adds `tokens` at `t` (the latest instant), merging the two closest entries past maxEntries. */
  private charge(t: number, tokens: number): Entry {
    const entry: Entry = { at: t, tokens, into: null };
    this.entries.push(entry);
    this.used += tokens;
    if (this.entries.length > this.maxEntries) this.mergeClosest();
    return entry;
  }

  /** The entry `e`'s tokens are in now, following merges; the path is shortened for the next settlement. */
  private resolve(e: Entry): Entry {
    let root = e;
    while (root.into !== null) root = root.into;
    while (e !== root) {
      const next: Entry = e.into!;
      e.into = root;
      e = next;
    }
    return root;
  }

  /** Merges the two entries closest in time into the later one: tokens held longer, never shorter. */
  private mergeClosest(): void {
    const es = this.entries;
    let best = 0;
    for (let i = 1; i < es.length - 1; i++) if (es[i + 1]!.at - es[i]!.at < es[best + 1]!.at - es[best]!.at) best = i;
    const [earlier, later] = [es[best]!, es[best + 1]!];
    later.tokens += earlier.tokens;
    earlier.into = later;
    es.splice(best, 1);
  }

  /** Milliseconds from `t` until the window holds room for `n` (the oldest charges slide out first). */
  private waitFor(n: number, t: number): number {
    let used = this.used;
    for (const e of this.entries) {
      used -= e.tokens;
      if (used + n <= this.capacity + TOKEN_EPSILON) return Math.max(0, e.at + this.windowMs - t);
    }
    return 0;
  }

  private whole(): number {
    return Math.floor(this.capacity - this.used + TOKEN_EPSILON);
  }

  private untilEmpty(t: number): number {
    const lastEntry = this.entries.at(-1);
    return lastEntry === undefined ? 0 : Math.max(0, lastEntry.at + this.windowMs - t);
  }
}
