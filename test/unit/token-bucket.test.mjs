import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../dist/resilience/token-bucket.js';
import { prng } from './prng.mjs';

const close = (actual, expected, msg) =>
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${msg}: ${actual} != ${expected}`);

test('a new bucket is full and serves a burst of capacity requests', () => {
  const b = new TokenBucket(3, 1);
  assert.equal(b.isFullAt(0), true);
  assert.deepEqual(b.take(0), { ok: true, remaining: 2, resetMs: 1000 });
  assert.deepEqual(b.take(0), { ok: true, remaining: 1, resetMs: 2000 });
  assert.deepEqual(b.take(0), { ok: true, remaining: 0, resetMs: 3000 });
});

test('answers not-ok with retryAfterMs until n tokens exist and resetMs until full', () => {
  const b = new TokenBucket(2, 0.5); // one token every 2000 ms
  b.take(0, 2);
  assert.deepEqual(b.take(500), { ok: false, remaining: 0, retryAfterMs: 1500, resetMs: 3500 });
  assert.deepEqual(b.take(500, 2), { ok: false, remaining: 0, retryAfterMs: 3500, resetMs: 3500 });
  assert.equal(b.take(1999).ok, false);
  assert.deepEqual(b.take(2000), { ok: true, remaining: 0, resetMs: 4000 });
});

test('a refused take takes nothing', () => {
  const b = new TokenBucket(2, 1);
  b.take(0, 1);
  const before = b.tokensAt(0);
  assert.equal(b.take(0, 2).ok, false);
  assert.equal(b.tokensAt(0), before);
  assert.equal(b.take(0, 2).remaining, 1);
});

test('5 per 60 s: the 6th request waits 12 000 ms, and is served after exactly that', () => {
  const b = new TokenBucket(5, 5 / 60);
  for (let i = 0; i < 5; i++) assert.equal(b.take(0).ok, true);
  const refused = b.take(0);
  assert.equal(refused.ok, false);
  close(refused.retryAfterMs, 12_000, 'retryAfterMs');
  close(refused.resetMs, 60_000, 'resetMs');
  assert.equal(b.take(refused.retryAfterMs).ok, true);
});

test('a client that waits exactly retryAfterMs is served despite float rounding', () => {
  // 1 per 9 s is 1/9000 per ms: 9000 ms of refill adds 0.9999999999999999 tokens.
  const b = new TokenBucket(1, 1 / 9);
  b.take(0);
  const r = b.take(0);
  assert.equal(r.retryAfterMs, 9000);
  assert.deepEqual(b.take(9000), { ok: true, remaining: 0, resetMs: 9000 });
  assert.equal(b.take(17_999).ok, false);
});

test('asking for more than the capacity can never succeed: retryAfterMs is Infinity', () => {
  const b = new TokenBucket(2, 1);
  const r = b.take(0, 3);
  assert.equal(r.ok, false);
  assert.equal(r.retryAfterMs, Infinity);
  assert.equal(r.remaining, 2);
});

test('refill stops at capacity', () => {
  const b = new TokenBucket(4, 10);
  b.take(0, 4);
  assert.equal(b.tokensAt(200), 2);
  assert.equal(b.tokensAt(1_000_000), 4);
  assert.equal(b.isFullAt(399), false);
  assert.equal(b.isFullAt(400), true);
});

test('a clock going backwards refills nothing and later time is not credited twice', () => {
  const b = new TokenBucket(10, 1);
  b.take(10_000, 10); // empty at t=10s
  assert.equal(b.tokensAt(5_000), 0);
  assert.deepEqual(b.take(5_000), { ok: false, remaining: 0, retryAfterMs: 1000, resetMs: 10_000 });
  // Back at t=11s, only the one second after 10s counts, not the six since 5s.
  assert.equal(b.tokensAt(11_000), 1);
  assert.equal(b.take(11_000).ok, true);
  assert.equal(b.take(11_000).ok, false);
});

test('n = 0 always succeeds and changes nothing', () => {
  const b = new TokenBucket(1, 1);
  b.take(0);
  assert.deepEqual(b.take(0, 0), { ok: true, remaining: 0, resetMs: 1000 });
});

test('rejects a bad capacity, rate or n', () => {
  assert.throws(() => new TokenBucket(0, 1), RangeError);
  assert.throws(() => new TokenBucket(Infinity, 1), RangeError);
  assert.throws(() => new TokenBucket(1, 0), RangeError);
  assert.throws(() => new TokenBucket(1, NaN), RangeError);
  const b = new TokenBucket(1, 1);
  assert.throws(() => b.take(0, -1), RangeError);
  assert.throws(() => b.take(0, NaN), RangeError);
});

test('property: over random takes and clock moves, tokens stay in [0, capacity] and refill is exact', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = prng(seed);
    const capacity = 1 + Math.floor(rnd() * 20);
    const rate = 0.01 + rnd() * 50; // tokens per second
    const b = new TokenBucket(capacity, rate);
    // An independent model: tokens held at `latest`, the latest instant the bucket saw.
    let tokens = capacity;
    let latest = rnd() * 1e6;
    let now = latest;
    b.take(now, 0); // the first instant the bucket sees
    const where = (step) => `seed ${seed} step ${step}`;
    for (let step = 0; step < 300; step++) {
      const move = rnd();
      // Mostly forward, sometimes nowhere, sometimes backwards.
      now += move < 0.1 ? -rnd() * 5000 : move < 0.2 ? 0 : rnd() * (2000 / rate);
      // After t ms, tokens = min(cap, prev + t * rate); a clock going back adds nothing.
      const refilled = now > latest ? Math.min(capacity, tokens + (now - latest) * (rate / 1000)) : tokens;
      const seen = b.tokensAt(now);
      close(seen, refilled, `${where(step)}: refill`);
      assert.ok(seen >= 0 && seen <= capacity, `${where(step)}: ${seen} within [0, ${capacity}]`);

      const n = 1 + Math.floor(rnd() * 3);
      const r = b.take(now, n);
      latest = Math.max(latest, now);
      const ok = refilled + 1e-9 >= n;
      assert.equal(r.ok, ok, `${where(step)}: ok iff ${n} tokens are there (${refilled})`);
      tokens = ok ? Math.max(0, refilled - n) : refilled;
      const after = b.tokensAt(latest);
      close(after, tokens, `${where(step)}: tokens after take`);
      assert.ok(after >= 0 && after <= capacity, `${where(step)}: ${after} within [0, ${capacity}]`);
      assert.equal(r.remaining, Math.floor(tokens + 1e-9), `${where(step)}: remaining`);
      if (!r.ok) {
        if (n > capacity) {
          assert.equal(r.retryAfterMs, Infinity);
        } else {
          // Exactly the wait: n tokens exist after retryAfterMs, and not noticeably before.
          close(b.tokensAt(latest + r.retryAfterMs), n, `${where(step)}: n tokens after retryAfterMs`);
          if (r.retryAfterMs > 1e-3) assert.ok(b.tokensAt(latest + r.retryAfterMs * 0.999) < n);
        }
      }
      close(r.resetMs, ((capacity - tokens) * 1000) / rate, `${where(step)}: resetMs`);
      assert.equal(b.isFullAt(latest + r.resetMs), true, `${where(step)}: full after resetMs`);
    }
  }
});

test('lend takes whole tokens up to max, and says how long until one when it has none', () => {
  const b = new TokenBucket(10, 10); // one token every 100 ms
  assert.deepEqual(b.lend(0, 4, 1000, 1), { n: 4, remaining: 6, resetMs: 400, retryAfterMs: 0 });
  assert.equal(b.lend(0, 64, 1000, 2).n, 6, 'no more than it holds');
  const none = b.lend(30, 1, 1030, 3);
  assert.equal(none.n, 0);
  close(none.retryAfterMs, 1070, 'all 10 are lent until 1000: the cap is 0 until then, and one token takes 100 ms more');
  const c = new TokenBucket(10, 10);
  c.lend(0, 9, 1000, 1);
  close(c.lend(30, 2, 1030, 2).retryAfterMs, 0, 'one left: lent');
  close(c.lend(30, 1, 1030, 3).retryAfterMs, 1070, 'then the same wait');
  const d = new TokenBucket(10, 10);
  d.lend(0, 5, 1000, 1);
  d.take(0, 5);
  close(d.take(30, 1).retryAfterMs, 70, 'the cap (5) is above one token: the plain refill wait');
  assert.throws(() => b.lend(0, 0, 1000, 4), RangeError);
  assert.throws(() => b.lend(0, 1.5, 1000, 4), RangeError);
});

test('lent tokens count against the capacity until their lend expires: the bucket refills only to capacity - lent', () => {
  const b = new TokenBucket(10, 10);
  b.lend(0, 4, 1000, 1);
  assert.equal(b.lentAt(500), 4);
  close(b.tokensAt(500), 6, 'capped at 10 - 4 while lent, not 10');
  assert.equal(b.isFullAt(900), false);
  assert.equal(b.lentAt(1000), 0, 'expired');
  close(b.tokensAt(1200), 8, 'the cap rose at 1000; 200 ms of refill since');
  close(b.tokensAt(5000), 10, 'full again');
  assert.equal(b.take(5000).ok, true);
});

test('tokens given back return at once, never above the capacity less what is still lent', () => {
  const b = new TokenBucket(10, 10);
  b.lend(0, 4, 1000, 7);
  b.lend(0, 2, 1000, 8);
  b.giveBack(100, 3, 7); // 3 of lend 7 unspent: 1 of it and 2 of lend 8 still out
  assert.equal(b.lentAt(100), 3);
  close(b.tokensAt(100), 7, 'min(10 - 3, 4 + 1 refilled + 3 back)');
  b.giveBack(100, 5, 99); // a lend that expired (or never was): back, but capped
  close(b.tokensAt(100), 7, 'capped');
  assert.throws(() => b.giveBack(100, -1, 7), RangeError);
});

test('a bucket that replaces another (new limits) starts as empty and keeps its lends out', () => {
  const old = new TokenBucket(10, 10);
  old.take(0, 2);
  old.lend(0, 3, 1000, 1);
  const b = new TokenBucket(20, 20);
  b.inherit(old, 0);
  close(b.tokensAt(0), 15, '20 - 5 used');
  assert.equal(b.lentAt(500), 3);
  close(b.tokensAt(500), 17, 'refilled up to 20 - 3 only');
  b.giveBack(500, 3, 1);
  close(b.tokensAt(500), 20, 'the unspent 3 back');
});
