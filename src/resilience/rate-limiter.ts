/**
 * One token bucket per client key, with memory that stays bounded however many distinct
 * keys arrive. Two rules keep it bounded:
 *
 * 1. A bucket that has refilled to full answers exactly like a bucket that does not exist,
 *    so it can be dropped. Buckets are kept in least-recently-used order (a key moves to
 *    the end on every use), and each call looks at a few entries at the front: the ones
 *    least recently used, hence the likeliest to be full. That is O(1) per call, with no
 *    timer and no full scan.
 * 2. A hard cap, `maxKeys`: past it, the least recently used bucket is evicted even if it is
 *    not full. That key then starts over with a full bucket, a small leak accepted only
 *    under a flood of distinct keys, in exchange for a memory bound that always holds.
 */
import { TokenBucket } from './token-bucket.js';

export interface RateLimiterOptions {
  /** Requests a client may make in a burst; also the refill per window. Must be > 0. */
  capacity: number;
  /** Window in seconds over which `capacity` requests are refilled. Must be > 0. */
  windowSec: number;
  /** Most client buckets held at once; default 100 000. */
  maxKeys?: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** The bucket size, for `x-ratelimit-limit-requests`. */
  limit: number;
  /** Whole requests left, for `x-ratelimit-remaining-requests`. */
  remaining: number;
  /** Whole milliseconds until the request would be allowed; 0 when allowed. */
  retryAfterMs: number;
  /** Whole milliseconds until the bucket is full, for `x-ratelimit-reset-requests`. */
  resetMs: number;
}

/**
 * Entries examined at the front per call. Each call adds at most one entry, so dropping up
 * to two lets the sweep catch up with any backlog of full buckets.
 */
const SWEEP_PER_CALL = 2;

/** A bucket in the use-order list; `older`/`newer` link it to its neighbours. */
interface Entry {
  readonly key: string;
  readonly bucket: TokenBucket;
  older: Entry | null;
  newer: Entry | null;
}

export class RateLimiter {
  private readonly capacity: number;
  private readonly refillPerSec: number;
  private readonly maxKeys: number;
  private readonly entries = new Map<string, Entry>();
  /**
   * Use order as a doubly linked list, least recently used first. A Map's own insertion
   * order would do in principle, but V8 leaves deleted slots at the front of the table
   * and `keys().next()` walks over all of them, which made the sweep O(n) per call.
   */
  private oldest: Entry | null = null;
  private newest: Entry | null = null;

  constructor(options: RateLimiterOptions) {
    const { capacity, windowSec, maxKeys = 100_000 } = options;
    if (!(Number.isFinite(capacity) && capacity > 0)) {
      throw new RangeError(`capacity must be a positive number, got ${capacity}`);
    }
    if (!(Number.isFinite(windowSec) && windowSec > 0)) {
      throw new RangeError(`windowSec must be a positive number, got ${windowSec}`);
    }
    if (!(Number.isInteger(maxKeys) && maxKeys > 0)) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.capacity = capacity;
    this.refillPerSec = capacity / windowSec;
    this.maxKeys = maxKeys;
  }

  /** Buckets currently held. */
  get size(): number {
    return this.entries.size;
  }

  /** Spends one request of `key`'s allowance at `now` (ms), or says how long to wait. */
  check(key: string, now: number): RateLimitDecision {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { key, bucket: new TokenBucket(this.capacity, this.refillPerSec), older: null, newer: null };
      this.entries.set(key, entry);
    } else {
      this.unlink(entry);
    }
    this.append(entry);
    const result = entry.bucket.take(now);
    this.sweep(now);
    // Evict past the cap, least recently used first; the key just used is newest, so it stays.
    while (this.entries.size > this.maxKeys) this.remove(this.oldest!);
    return {
      allowed: result.ok,
      limit: this.capacity,
      remaining: result.remaining,
      // Rounded up so that a client who waits this long is served.
      retryAfterMs: result.ok ? 0 : Math.ceil(result.retryAfterMs),
      resetMs: Math.ceil(result.resetMs),
    };
  }

  /**
   * Drops full buckets from the least recently used end. Stops at the first bucket that is
   * not full: the ones after it were used more recently, so they are rarely fuller, and
   * every bucket is full one window after its last use, so it will be reached in time.
   */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_CALL; i++) {
      const oldest = this.oldest;
      if (oldest === null || !oldest.bucket.isFullAt(now)) return;
      this.remove(oldest);
    }
  }

  private remove(entry: Entry): void {
    this.unlink(entry);
    this.entries.delete(entry.key);
  }

  private append(entry: Entry): void {
    entry.older = this.newest;
    entry.newer = null;
    if (this.newest === null) this.oldest = entry;
    else this.newest.newer = entry;
    this.newest = entry;
  }

  private unlink(entry: Entry): void {
    if (entry.older === null) this.oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === null) this.newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = null;
    entry.newer = null;
  }
}
