/**
 * Exponential backoff with jitter, as a pure function (cockatiel keeps its backoffs as
 * small functions too): retry n waits baseMs × 2^(n−1), capped at maxMs, spread by ±jitter
 * so that clients failed by the same outage do not come back in lockstep.
 *
 * The cap is applied after the jitter as well, so `maxMs` is a hard ceiling a caller can
 * compare with its remaining deadline.
 */

export interface BackoffOptions {
  /** Delay before the first retry, in milliseconds (RETRY_DELAY × 1000). ≥ 0. */
  baseMs: number;
  /** Longest delay ever returned, in milliseconds. ≥ 0. */
  maxMs: number;
  /** Relative spread: 0.2 means ±20%. Clamped to [0, 1]; default 0.2. */
  jitter?: number;
}

/**
 * Milliseconds to wait before retry number `retryNumber` (1 for the first retry).
 *
 * @param random a source of numbers in [0, 1), injectable so tests can pin the jitter:
 *   0 gives the low end (−jitter), 0.5 the exact exponential value, 1 the high end.
 */
export function backoffDelayMs(
  retryNumber: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  if (!(Number.isInteger(retryNumber) && retryNumber >= 1)) {
    throw new RangeError(`retryNumber must be an integer >= 1, got ${retryNumber}`);
  }
  const { baseMs, maxMs, jitter = 0.2 } = options;
  if (!(Number.isFinite(baseMs) && baseMs >= 0)) {
    throw new RangeError(`baseMs must be a non-negative number, got ${baseMs}`);
  }
  if (!(Number.isFinite(maxMs) && maxMs >= 0)) {
    throw new RangeError(`maxMs must be a non-negative number, got ${maxMs}`);
  }
  const spread = clamp(Number.isFinite(jitter) ? jitter : 0, 0, 1);
  // 2 ** large overflows to Infinity, which min() turns into maxMs: no special case needed.
  const exponential = Math.min(maxMs, baseMs * 2 ** (retryNumber - 1));
  const r = clamp(random(), 0, 1);
  const delay = exponential * (1 + spread * (2 * r - 1));
  return clamp(delay, 0, maxMs);
}

function clamp(x: number, lo: number, hi: number): number {
  // NaN (a broken random source) falls to the low end rather than poisoning the delay.
  if (!(x >= lo)) return lo;
  return x > hi ? hi : x;
}
