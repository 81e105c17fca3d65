import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenLedger } from '../../dist/resilience/token-ledger.js';

/** mulberry32: a tiny seeded PRNG, so a failing random sequence can be replayed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const close = (actual, expected, msg) =>
  assert.ok(Math.abs(actual - expected) <= 1e-7 * Math.max(1, Math.abs(expected)), `${msg}: ${actual} != ${expected}`);

/** 6000 per minute is 0.1 token per ms: waits come out in whole milliseconds. */
const ledger = (perMinute = 6000) => new TokenLedger(perMinute);

test('a new ledger is full and idle; a reservation takes its tokens and is outstanding', () => {
  const l = ledger();
  assert.equal(l.capacity, 6000);
  assert.equal(l.available(0), 6000);
  assert.equal(l.idleAt(0), true);
  const r = l.reserve(0, 1000);
  assert.equal(r.ok, true);
  assert.deepEqual(r.reservation, { tokens: 1000 });
  assert.equal(r.remaining, 5000);
  assert.equal(r.resetMs, 10_000);
  assert.equal(l.outstanding, 1000);
  assert.equal(l.idleAt(0), false);
});

test('the retry-after is exact: waiting it then reserving succeeds, 1 ms less fails', () => {
  const l = ledger();
  l.reserve(0, 6000);
  const refused = l.reserve(0, 100);
  assert.deepEqual(refused, { ok: false, retryAfterMs: 1000, remaining: 0, resetMs: 60_000 });
  assert.equal(l.reserve(999, 100).ok, false);
  assert.equal(l.reserve(1000, 100).ok, true);
});

test('the retry-after is exact on a rate that is not a round number of ms per token', () => {
  const l = new TokenLedger(7); // one token every 8571.428… ms
  l.reserve(0, 7);
  const refused = l.reserve(0, 3);
  assert.equal(refused.ok, false);
  assert.equal(l.reserve(refused.retryAfterMs - 1, 3).ok, false);
  assert.equal(l.reserve(refused.retryAfterMs, 3).ok, true);
});

test('a refused reserve takes nothing and opens nothing', () => {
  const l = ledger();
  l.reserve(0, 5000);
  assert.equal(l.reserve(0, 2000).ok, false);
  assert.equal(l.available(0), 1000);
  assert.equal(l.outstanding, 5000);
});

test('settling below the estimate refunds the difference; settling at 0 refunds it all', () => {
  const l = ledger();
  const a = l.reserve(0, 4000).reservation;
  const b = l.reserve(0, 2000).reservation;
  assert.equal(l.available(0), 0);
  l.settle(0, a, 1500);
  assert.equal(l.available(0), 2500);
  l.settle(0, b, 0);
  assert.equal(l.available(0), 4500);
  assert.equal(l.outstanding, 0);
});

test('a refund never fills the bucket past its capacity', () => {
  const l = ledger();
  const r = l.reserve(0, 3000).reservation;
  l.settle(60_000, r, 0); // refilled meanwhile
  assert.equal(l.available(60_000), 6000);
  assert.equal(l.idleAt(60_000), true);
});

test('an estimate below the usage charges the excess as debt, which delays the next reserve', () => {
  const l = ledger();
  const r = l.reserve(0, 1000).reservation;
  l.settle(0, r, 7000); // 6000 more than reserved: 5000 left minus 6000 = 1000 in debt
  assert.equal(l.available(0), -1000);
  const refused = l.reserve(0, 500);
  assert.equal(refused.ok, false);
  assert.equal(refused.remaining, -1000);
  assert.equal(refused.retryAfterMs, 15_000, 'repay 1000, then 500 more, at 0.1 per ms');
  assert.equal(refused.resetMs, 70_000);
  assert.equal(l.reserve(14_999, 500).ok, false);
  assert.equal(l.reserve(15_000, 500).ok, true);
});

test('debt is bounded at -capacity', () => {
  const l = ledger();
  const r = l.reserve(0, 10).reservation;
  l.settle(0, r, 1e9);
  assert.equal(l.available(0), -6000);
  assert.equal(l.resetMs(0), 120_000);
});

test('while in debt nothing fits, not even a zero estimate', () => {
  const l = ledger();
  l.settle(0, l.reserve(0, 0).reservation, 6500);
  const refused = l.reserve(0, 0);
  assert.equal(refused.ok, false);
  assert.equal(refused.retryAfterMs, 5000);
  assert.equal(l.reserve(5000, 0).ok, true);
});

test('settling twice is a no-op, and so is settling a reservation of another ledger', () => {
  const l = ledger();
  const r = l.reserve(0, 1000).reservation;
  l.settle(0, r, 200);
  const after = l.available(0);
  l.settle(0, r, 0);
  l.settle(0, r, 9000);
  assert.equal(l.available(0), after);
  assert.equal(l.outstanding, 0);
  const other = ledger().reserve(0, 500).reservation;
  l.settle(0, other, 0);
  assert.equal(l.available(0), after);
  assert.equal(l.outstanding, 0);
});

test('a reservation never settled stays in outstanding: the "blocked at 80%" bug is visible, and costs its tokens only once', () => {
  const l = ledger();
  const forgotten = l.reserve(0, 4800).reservation; // 80% of the limit
  assert.equal(l.outstanding, 4800);
  assert.equal(l.reserve(0, 2000).ok, false);
  // The bucket refills as for any request: no lasting block, but the leak shows and the entry is not idle.
  assert.equal(l.available(48_000), 6000);
  assert.equal(l.outstanding, 4800);
  assert.equal(l.idleAt(1e9), false, 'an entry with an open reservation is never dropped');
  l.settle(1e9, forgotten, 4800);
  assert.equal(l.outstanding, 0);
  assert.equal(l.idleAt(1e9), true);
});

test('an estimate larger than the limit is clamped: it waits for a full bucket, and its usage is charged in full', () => {
  const l = ledger();
  l.settle(0, l.reserve(0, 1).reservation, 1);
  const refused = l.reserve(0, 50_000);
  assert.equal(refused.ok, false);
  assert.equal(refused.retryAfterMs, 10, 'until the bucket is full, not Infinity');
  const r = l.reserve(10, 50_000);
  assert.equal(r.ok, true);
  assert.equal(r.reservation.tokens, 6000);
  assert.equal(l.outstanding, 6000);
  l.settle(10, r.reservation, 9000);
  assert.equal(l.available(10), -3000);
});

test('unknown usage (NaN, negative, Infinity) settles at the estimate and still closes the reservation', () => {
  for (const actual of [NaN, -1, Infinity]) {
    const l = ledger();
    const r = l.reserve(0, 1000).reservation;
    l.settle(0, r, actual);
    assert.equal(l.available(0), 5000, `${actual}`);
    assert.equal(l.outstanding, 0, `${actual}`);
  }
});

test('a clock going backwards refills nothing and later time is not credited twice', () => {
  const l = ledger();
  l.reserve(10_000, 6000);
  assert.equal(l.available(5_000), 0);
  assert.deepEqual(l.reserve(5_000, 100), { ok: false, retryAfterMs: 1000, remaining: 0, resetMs: 60_000 });
  assert.equal(l.available(11_000), 100);
  assert.equal(l.reserve(11_000, 100).ok, true);
  assert.equal(l.reserve(11_000, 1).ok, false);
});

test('resetMs and available read without changing anything', () => {
  const l = ledger();
  l.reserve(0, 3000);
  assert.equal(l.resetMs(0), 30_000);
  assert.equal(l.resetMs(10_000), 20_000);
  assert.equal(l.available(10_000), 4000);
  assert.equal(l.resetMs(40_000), 0);
  assert.equal(l.available(0), 3000, 'reading at a later time did not advance the ledger');
});

test('windowMs scales the refill period', () => {
  const l = new TokenLedger(100, { windowMs: 1000 });
  l.reserve(0, 100);
  assert.equal(l.available(500), 50);
  assert.equal(l.resetMs(500), 500);
});

test('rejects a bad limit, window or estimate', () => {
  assert.throws(() => new TokenLedger(0), RangeError);
  assert.throws(() => new TokenLedger(-1), RangeError);
  assert.throws(() => new TokenLedger(Infinity), RangeError);
  assert.throws(() => new TokenLedger(NaN), RangeError);
  assert.throws(() => new TokenLedger(10, { windowMs: 0 }), RangeError);
  const l = ledger();
  assert.throws(() => l.reserve(0, -1), RangeError);
  assert.throws(() => l.reserve(0, NaN), RangeError);
  assert.throws(() => l.reserve(0, Infinity), RangeError);
  assert.equal(l.outstanding, 0);
});

/**
 * The reference: a list of (time, ±tokens) events, replayed from a full bucket on every
 * question. Refill is summed between events and capped at the capacity; a reserve is −n
 * (0 when refused: the ledger looked at that instant), a settlement is +(reserved − used),
 * kept within [−capacity, capacity]. Times are the latest seen (a clock going back stands still).
 */
class Model {
  constructor(capacity, perMs) {
    Object.assign(this, { capacity, perMs, events: [], latest: -Infinity, open: new Map() });
  }
  at(now) {
    return Math.max(now, this.latest);
  }
  level(now) {
    const { capacity, perMs } = this;
    let level = capacity;
    let prev = null;
    for (const e of this.events) {
      if (prev !== null) level = Math.min(capacity, level + (e.t - prev) * perMs);
      prev = e.t;
      level = e.kind === 'reserve' ? level - e.tokens : Math.min(capacity, Math.max(-capacity, level + e.tokens));
      if (e.kind === 'reserve' && level < 0 && level > -1e-9) level = 0;
    }
    const t = this.at(now);
    return prev === null ? level : Math.min(capacity, level + (t - prev) * perMs);
  }
  push(now, kind, tokens) {
    this.latest = this.at(now);
    this.events.push({ t: this.latest, kind, tokens });
  }
  outstanding() {
    let sum = 0;
    for (const n of this.open.values()) sum += n;
    return sum;
  }
}

test('property: random reserves, settlements and clock moves agree with the event-list model', () => {
  for (let seed = 1; seed <= 150; seed++) {
    const rnd = prng(seed);
    const perMinute = 1 + Math.floor(rnd() * 10_000);
    const windowMs = rnd() < 0.5 ? 60_000 : 1 + rnd() * 120_000;
    const l = new TokenLedger(perMinute, { windowMs });
    const m = new Model(perMinute, perMinute / windowMs);
    let now = rnd() * 1e6;
    let lastRefusal = null;
    let id = 0;
    const where = (step) => `seed ${seed} step ${step}`;
    for (let step = 0; step < 250; step++) {
      const what = rnd();
      if (what < 0.25) {
        const move = rnd();
        now += move < 0.15 ? -rnd() * 5000 : move < 0.3 && lastRefusal !== null ? lastRefusal : rnd() * windowMs * 0.3;
      } else if (what < 0.65) {
        const estimate = rnd() < 0.05 ? perMinute * (1 + rnd() * 3) : rnd() < 0.1 ? 0 : rnd() * perMinute * 0.4;
        const n = Math.min(estimate, perMinute);
        const level = m.level(now);
        const r = l.reserve(now, estimate);
        const ok = level + 1e-9 >= n;
        assert.equal(r.ok, ok, `${where(step)}: ok iff ${n} fits in ${level}`);
        m.push(now, 'reserve', ok ? n : 0);
        const after = m.level(now);
        assert.equal(r.remaining, Math.floor(after + 1e-9), `${where(step)}: remaining`);
        close(r.resetMs, (perMinute - after) / m.perMs, `${where(step)}: resetMs`);
        if (ok) {
          close(r.reservation.tokens, n, `${where(step)}: clamped`);
          m.open.set(r.reservation, n);
          lastRefusal = null;
        } else {
          close(r.retryAfterMs, (n - level) / m.perMs, `${where(step)}: retryAfterMs`);
          assert.ok(Number.isFinite(r.retryAfterMs));
          lastRefusal = r.retryAfterMs;
        }
        id++;
      } else {
        const open = [...m.open.keys()];
        const settled = rnd() < 0.1 || open.length === 0;
        const r = settled ? { tokens: 5 } : open[Math.floor(rnd() * open.length)];
        const pick = rnd();
        const used = pick < 0.2 ? 0 : pick < 0.5 ? r.tokens * rnd() : pick < 0.7 ? r.tokens : pick < 0.95 ? r.tokens * (1 + rnd() * 2) : NaN;
        l.settle(now, r, used);
        if (m.open.has(r)) {
          m.open.delete(r);
          m.push(now, 'settle', r.tokens - (Number.isFinite(used) ? used : r.tokens));
        }
      }
      close(l.outstanding, m.outstanding(), `${where(step)}: outstanding`);
      const level = m.level(now);
      assert.ok(level >= -perMinute - 1e-9 && level <= perMinute + 1e-9, `${where(step)}: level within ±capacity`);
      assert.equal(l.available(now), Math.floor(level + 1e-9), `${where(step)}: available`);
      close(l.resetMs(now), Math.max(0, (perMinute - level) / m.perMs), `${where(step)}: resetMs(now)`);
      assert.equal(l.idleAt(now), m.open.size === 0 && level + 1e-9 >= perMinute, `${where(step)}: idleAt`);
    }
  }
});

/**
 * A backlogged stream for 2 simulated minutes: each request is reserved the moment it fits
 * (the client retries exactly at retryAfterMs, and right after a refund), lasts a random
 * time, then settles to at most its estimate. The bound from the module comment: in any
 * window of 60 s that starts once the stream is backlogged, the tokens charged (reserves
 * made in the window plus settlement corrections applied in it) are at most T + n_max, and
 * from t = 0 (full bucket) the charge up to t is at most T + T·t/60 s.
 */
test('a steady stream over 2 minutes never charges more than T per minute + one request, and is not starved either', (t) => {
  let most = 0;
  let fewest = Infinity;
  for (let seed = 1; seed <= 20; seed++) {
    const rnd = prng(seed);
    const T = 10_000;
    const nMax = 1500;
    const l = new TokenLedger(T);
    const charges = []; // (t, tokens) as the ledger applied them
    const inFlight = []; // { end, r, used }
    let now = 0;
    let next = 100 + Math.floor(rnd() * (nMax - 100));
    let backloggedFrom = null;
    while (now <= 120_000) {
      // settle what ended by now, then reserve as much as fits
      inFlight.sort((a, b) => a.end - b.end);
      while (inFlight.length > 0 && inFlight[0].end <= now) {
        const f = inFlight.shift();
        l.settle(f.end, f.r, f.used);
        charges.push({ t: f.end, tokens: f.used - f.r.tokens });
      }
      const r = l.reserve(now, next);
      if (r.ok) {
        charges.push({ t: now, tokens: next });
        inFlight.push({ end: now + 500 + rnd() * 20_000, r: r.reservation, used: Math.floor(next * rnd()) });
        next = 100 + Math.floor(rnd() * (nMax - 100));
        continue;
      }
      backloggedFrom ??= now;
      const settleAt = inFlight.length > 0 ? Math.min(...inFlight.map((f) => f.end)) : Infinity;
      now = Math.min(now + r.retryAfterMs, settleAt);
    }
    const chargedIn = (from, to) => charges.filter((c) => c.t > from && c.t <= to).reduce((s, c) => s + c.tokens, 0);
    let worst = -Infinity;
    let least = Infinity;
    for (let t1 = backloggedFrom; t1 + 60_000 <= 120_000; t1 += 250) {
      const w = chargedIn(t1, t1 + 60_000);
      worst = Math.max(worst, w);
      least = Math.min(least, w);
    }
    most = Math.max(most, worst);
    fewest = Math.min(fewest, least);
    assert.ok(worst <= T + nMax + 1e-6, `seed ${seed}: ${worst} charged in a minute > T + n_max = ${T + nMax}`);
    assert.ok(least >= T - nMax, `seed ${seed}: only ${least} in a minute while backlogged`);
    for (let t = 0; t <= 120_000; t += 1000) {
      assert.ok(chargedIn(-1, t) <= T + (T * t) / 60_000 + 1e-6, `seed ${seed}: cumulative bound at ${t}`);
    }
  }
  t.diagnostic(`T = 10000, n_max = 1500: charged per 60 s window while backlogged between ${fewest} and ${most} (bound ${10_000 + 1500})`);
});
