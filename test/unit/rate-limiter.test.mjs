import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../dist/resilience/rate-limiter.js';
import { TokenBucket } from '../../dist/resilience/token-bucket.js';

test('the 6th request of a 5-per-60s client is refused with retryAfterMs 12000', () => {
  const limiter = new RateLimiter({ capacity: 5, windowSec: 60 });
  for (let i = 0; i < 5; i++) {
    const d = limiter.check('client', 1000);
    assert.equal(d.allowed, true);
    assert.equal(d.remaining, 4 - i);
    assert.equal(d.retryAfterMs, 0);
    assert.equal(d.limit, 5);
  }
  const sixth = limiter.check('client', 1000);
  assert.deepEqual(sixth, { allowed: false, limit: 5, remaining: 0, retryAfterMs: 12_000, resetMs: 60_000 });
  assert.equal(limiter.check('client', 1000 + 11_999).allowed, false);
  assert.equal(limiter.check('client', 1000 + 12_000).allowed, true);
});

test('a greedy key is limited while another key is served', () => {
  const limiter = new RateLimiter({ capacity: 3, windowSec: 1 });
  for (let i = 0; i < 3; i++) assert.equal(limiter.check('greedy', 0).allowed, true);
  for (let i = 0; i < 10; i++) assert.equal(limiter.check('greedy', 0).allowed, false);
  const other = limiter.check('polite', 0);
  assert.equal(other.allowed, true);
  assert.equal(other.remaining, 2);
});

test('retryAfterMs and resetMs are whole milliseconds, rounded up', () => {
  const limiter = new RateLimiter({ capacity: 3, windowSec: 10 }); // one per 3333.33 ms
  for (let i = 0; i < 3; i++) limiter.check('k', 0);
  const d = limiter.check('k', 0);
  assert.equal(d.retryAfterMs, 3334);
  assert.equal(d.resetMs, 10_000);
  assert.equal(limiter.check('k', 3334).allowed, true);
});

test('a bucket that refilled to full is dropped: it answers like a new one', () => {
  const limiter = new RateLimiter({ capacity: 2, windowSec: 1 });
  limiter.check('a', 0);
  limiter.check('b', 200);
  assert.equal(limiter.size, 2);
  // At 600 ms 'a' is full (refilled after 500 ms) and 'b' is not: only 'a' goes.
  limiter.check('c', 600);
  assert.equal(limiter.size, 2);
  assert.equal(limiter.check('a', 600).remaining, 1, 'a answers like a fresh bucket');
});

test('the sweep stops at the first bucket that is not full, keeping it', () => {
  const limiter = new RateLimiter({ capacity: 2, windowSec: 1 });
  limiter.check('a', 0);
  limiter.check('a', 0); // empty: full again only at 1000 ms
  limiter.check('b', 0);
  limiter.check('c', 900);
  assert.equal(limiter.size, 3);
  assert.equal(limiter.check('a', 900).allowed, true);
  assert.equal(limiter.check('a', 900).allowed, false, 'the drained bucket was kept, not reset');
});

test('each call drops at most two full buckets, so no call pays for a long backlog', () => {
  const limiter = new RateLimiter({ capacity: 2, windowSec: 1 });
  for (const k of ['a', 'b', 'c']) limiter.check(k, 0);
  limiter.check('d', 10_000); // a, b and c are all full by now
  assert.equal(limiter.size, 2, 'a and b dropped, c left for the next call');
  limiter.check('e', 10_000);
  assert.equal(limiter.size, 2, 'c dropped; d and e were just used');
});

test('past maxKeys the least recently used key is evicted', () => {
  const limiter = new RateLimiter({ capacity: 2, windowSec: 60, maxKeys: 3 });
  for (const k of ['a', 'b', 'c']) limiter.check(k, 0);
  limiter.check('a', 0); // 'a' used again: now 'b' is the least recently used
  limiter.check('d', 0);
  assert.equal(limiter.size, 3);
  assert.equal(limiter.check('a', 0).allowed, false, "'a' kept its drained bucket");
  assert.equal(limiter.check('b', 0).remaining, 1, "'b' was evicted and starts over");
});

test('one million distinct keys keep the map bounded and a hot key is still answered right', () => {
  const limiter = new RateLimiter({ capacity: 5, windowSec: 60 });
  const hot = new TokenBucket(5, 5 / 60); // what the hot key's answers must match
  let now = 0;
  let maxSize = 0;
  let hotRefused = 0;
  for (let i = 0; i < 1_000_000; i++) {
    now += 1; // a slow clock: 1 ms per request, 1000 s in all
    limiter.check(`client-${i}`, now);
    if (limiter.size > maxSize) maxSize = limiter.size;
    if (i % 1000 === 0) {
      // The hot key asks once a second: twelve times its allowance.
      const got = limiter.check('hot', now);
      const want = hot.take(now);
      assert.equal(got.allowed, want.ok, `hot key at ${now} ms`);
      assert.equal(got.remaining, want.remaining);
      if (!got.allowed) hotRefused++;
    }
  }
  // A once-used bucket is full again 12 s later, so about 12 000 keys are live at a time.
  assert.ok(maxSize < 13_000, `size stayed bounded: max ${maxSize}`);
  assert.ok(limiter.size < 13_000);
  assert.ok(hotRefused > 900, `the hot key was limited (${hotRefused} refusals)`);
});

test('rejects bad options', () => {
  assert.throws(() => new RateLimiter({ capacity: 0, windowSec: 60 }), RangeError);
  assert.throws(() => new RateLimiter({ capacity: 5, windowSec: 0 }), RangeError);
  assert.throws(() => new RateLimiter({ capacity: 5, windowSec: NaN }), RangeError);
  assert.throws(() => new RateLimiter({ capacity: 5, windowSec: 60, maxKeys: 0 }), RangeError);
  assert.throws(() => new RateLimiter({ capacity: 5, windowSec: 60, maxKeys: 1.5 }), RangeError);
});

test('options are not mutated', () => {
  const options = Object.freeze({ capacity: 5, windowSec: 60 });
  const limiter = new RateLimiter(options);
  limiter.check('k', 0);
  assert.deepEqual(options, { capacity: 5, windowSec: 60 });
});
