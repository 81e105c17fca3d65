// Every client's limits in one table: requests per window, requests in flight, tokens per
// minute reserved and settled; bounded memory; limits that change on reload keep what was used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientLimits } from '../../dist/resilience/client-limits.js';

const policy = (over = {}) => ({ requests: { capacity: 5, windowSec: 60 }, tokensPerMinute: null, maxParallel: null, weight: 1, ...over });

test('requests: the sixth of a 5-per-minute client is refused with the exact wait; another client is served', () => {
  const limits = new ClientLimits();
  const p = policy();
  for (let i = 0; i < 5; i++) {
    const r = limits.enter('alice', p, 0);
    assert.equal(r.ok, true);
    assert.deepEqual(r.requests, { limit: 5, remaining: 4 - i, resetMs: (i + 1) * 12_000 });
    limits.leave(r.client, 0, 0);
  }
  const sixth = limits.enter('alice', p, 0);
  assert.deepEqual({ ok: sixth.ok, reason: sixth.reason, retryAfterMs: sixth.retryAfterMs }, { ok: false, reason: 'requests', retryAfterMs: 12_000 });
  assert.equal(limits.enter('bob', p, 0).ok, true);
});

test('max_parallel: one too many at once is refused without spending a request; a place frees when one leaves', () => {
  const limits = new ClientLimits();
  const p = policy({ maxParallel: 2 });
  const a = limits.enter('alice', p, 0);
  const b = limits.enter('alice', p, 0);
  const c = limits.enter('alice', p, 0);
  assert.equal(c.ok, false);
  assert.equal(c.reason, 'parallel');
  assert.equal(c.requests.remaining, 3, 'the refused one took no request from the bucket');
  limits.leave(a.client, 0, 0);
  limits.leave(a.client, 0, 0); // twice: still one place
  assert.equal(limits.enter('alice', p, 0).ok, true);
  assert.equal(limits.enter('alice', p, 0).ok, false);
  limits.leave(b.client, 0, 0);
});

test('tokens: an estimate that does not fit is refused with the wait; settling refunds what was not used', () => {
  const limits = new ClientLimits();
  const p = policy({ requests: null, tokensPerMinute: 6000 });
  const first = limits.enter('alice', p, 0);
  assert.equal(limits.reserve(first.client, 5000, 0).ok, true);
  const second = limits.enter('alice', p, 0);
  const refused = limits.reserve(second.client, 2000, 0);
  assert.equal(refused.ok, false);
  assert.ok(refused.retryAfterMs > 0);
  assert.equal(refused.tokens.limit, 6000);
  limits.leave(second.client, 0, 0);
  limits.leave(first.client, 300, 0); // it cost 300: 4,700 come back
  const third = limits.enter('alice', p, 0);
  assert.equal(limits.reserve(third.client, 5500, 0).ok, true, 'the refund made room at once');
  limits.leave(third.client, 5500, 0);
});

test('a client without a token limit reserves nothing; its headers have no token figures', () => {
  const limits = new ClientLimits();
  const t = limits.enter('alice', policy(), 0).client;
  assert.equal(limits.reserve(t, 100, 0), null);
  assert.equal(limits.tokens(t, 0), null);
});

test('limits changed by a reload: what the client used carries over into its new bucket and ledger', () => {
  const limits = new ClientLimits();
  const before = policy({ requests: { capacity: 10, windowSec: 60 }, tokensPerMinute: 1000 });
  for (let i = 0; i < 8; i++) {
    const t = limits.enter('alice', before, 0).client;
    if (i === 0) limits.reserve(t, 600, 0);
    limits.leave(t, i === 0 ? 600 : 0, 0);
  }
  const open = limits.enter('alice', before, 1000).client;
  limits.reserve(open, 300, 1000); // in flight across the reload
  const after = policy({ requests: { capacity: 4, windowSec: 60 }, tokensPerMinute: 2000 });
  const r = limits.enter('alice', after, 1000);
  assert.equal(r.ok, false, '9 used of the new 4: nothing left');
  assert.equal(limits.tokens(open, 1000).remaining, 1100, 'the 600 and the open 300 still count against the new 2,000');
  limits.leave(open, 100, 1000);
  assert.equal(limits.tokens(open, 1000).remaining, 1300, 'the open reservation settles in the new ledger');
  assert.equal(limits.outstanding(), 0);
  assert.equal(limits.tokens(limits.enter('bob', after, 1000).client, 1000).remaining, 2000);
  const later = limits.enter('alice', after, 60_000);
  assert.equal(later.ok, true);
  assert.equal(limits.tokens(later.client, 60_000).remaining, 1900, 'the 600 of t=0 slid out, the 100 of t=1,000 not yet');
  const off = limits.enter('alice', policy({ requests: { capacity: 4, windowSec: 60 } }), 60_000);
  assert.equal(limits.tokens(off.client, 60_000), null, 'token limit removed');
});

test('memory: idle clients are dropped as others arrive; a client with a request in flight is kept', () => {
  const limits = new ClientLimits();
  const p = policy({ requests: { capacity: 1, windowSec: 1 } });
  const busy = limits.enter('busy', p, 0).client;
  for (let i = 0; i < 1000; i++) limits.leave(limits.enter(`ip:${i}`, p, i * 10).client, 0, i * 10);
  assert.ok(limits.size <= 102, `${limits.size} entries held: about one window's worth of arrivals (1 s / 10 ms), not all 1,000`);
  limits.leave(busy, 0, 20_000);
  const capped = new ClientLimits(10);
  for (let i = 0; i < 50; i++) capped.enter(`ip:${i}`, p, 0);
  assert.equal(capped.size, 10, 'the hard cap holds even for clients that are not idle');
});

// The memory bound, as the request limiter before it had it (its tests, moved here).
const once = (limits, key, p, now) => {
  const r = limits.enter(key, p, now);
  if (r.ok) limits.leave(r.client, 0, now);
  return r;
};
const bucket = (capacity, windowSec) => policy({ requests: { capacity, windowSec } });

test('waits and resets are whole milliseconds, rounded up', () => {
  const limits = new ClientLimits();
  const p = bucket(3, 10); // one per 3333.33 ms
  for (let i = 0; i < 3; i++) once(limits, 'k', p, 0);
  const d = once(limits, 'k', p, 0);
  assert.equal(d.retryAfterMs, 3334);
  assert.equal(d.requests.resetMs, 10_000);
  assert.equal(once(limits, 'k', p, 3334).ok, true);
});

test('a client whose bucket refilled to full is dropped: it answers like a new one; the sweep stops at one that is not', () => {
  const limits = new ClientLimits();
  const p = bucket(2, 1);
  once(limits, 'a', p, 0);
  once(limits, 'b', p, 200);
  once(limits, 'c', p, 600); // a is full again (500 ms), b is not
  assert.equal(limits.size, 2);
  assert.equal(once(limits, 'a', p, 600).requests.remaining, 1, 'a answers like a fresh client');
  once(limits, 'd', p, 600);
  assert.equal(once(limits, 'b', p, 600).requests.remaining, 0, 'b kept what it had used');
});

test('each call drops at most two idle clients, so no call pays for a long backlog', () => {
  const limits = new ClientLimits();
  const p = bucket(2, 1);
  for (const k of ['a', 'b', 'c']) once(limits, k, p, 0);
  once(limits, 'd', p, 10_000);
  assert.equal(limits.size, 2, 'a and b dropped, c left for the next call');
  once(limits, 'e', p, 10_000);
  assert.equal(limits.size, 2);
});

test('one million distinct clients keep the table bounded and a hot client is still answered right', async () => {
  const { TokenBucket } = await import('../../dist/resilience/token-bucket.js');
  const limits = new ClientLimits();
  const p = bucket(5, 60);
  const hot = new TokenBucket(5, 5 / 60); // what the hot client's answers must match
  let maxSize = 0;
  let hotRefused = 0;
  for (let i = 0, now = 0; i < 1_000_000; i++) {
    now += 1; // 1 ms per request, 1000 s in all
    once(limits, `ip:${i}`, p, now);
    if (limits.size > maxSize) maxSize = limits.size;
    if (i % 1000 === 0) {
      const got = once(limits, 'hot', p, now);
      const want = hot.take(now);
      assert.equal(got.ok, want.ok, `hot client at ${now} ms`);
      assert.equal(got.requests.remaining, want.remaining);
      if (!got.ok) hotRefused++;
    }
  }
  // a once-used bucket is full again 12 s later: about 12,000 clients are live at a time
  assert.ok(maxSize < 13_000, `size stayed bounded: max ${maxSize}`);
  assert.ok(hotRefused > 900, `the hot client was limited (${hotRefused} refusals)`);
});

test('lent requests: up to the want from the client bucket, the same bucket enter spends; unspent ones come back; a reload keeps them out', () => {
  const limits = new ClientLimits();
  const p = policy();
  assert.deepEqual(limits.lendRequests('alice', p, 3, 1000, 1, 0), { n: 3, requests: { limit: 5, remaining: 2, resetMs: 36_000 } });
  assert.equal(limits.enter('alice', p, 0).ok, true, 'enter spends from the same bucket');
  assert.deepEqual(limits.lendRequests('alice', p, 4, 1000, 2, 0), { n: 1, requests: { limit: 5, remaining: 0, resetMs: 60_000 } });
  assert.deepEqual(limits.lendRequests('alice', p, 1, 1000, 3, 0), { n: 0, requests: { limit: 5, remaining: 0, resetMs: 60_000 }, retryAfterMs: 12_000 });
  limits.returnRequests('alice', 1, 2, 0); // 2 of the first 3 unspent
  limits.returnRequests('nobody', 1, 2, 0); // an unknown client: nothing
  assert.equal(limits.lendRequests('alice', p, 4, 1000, 4, 0).n, 2);
  // a reload to 10: the 4 lent still count, with the one entered
  const ten = policy({ requests: { capacity: 10, windowSec: 60 } });
  assert.equal(limits.enter('alice', ten, 0).requests.remaining, 4, '10 - 5 used - 1');
  assert.throws(() => limits.lendRequests('alice', policy({ maxParallel: 1 }), 1, 1000, 5, 0), TypeError);
  assert.throws(() => limits.lendRequests('alice', policy({ requests: null }), 1, 1000, 5, 0), TypeError);
});
