import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenLedger } from '../../dist/resilience/token-ledger.js';
import { prng } from './prng.mjs';

const close = (actual, expected, msg) =>
  assert.ok(Math.abs(actual - expected) <= 1e-7 * Math.max(1, Math.abs(expected)), `${msg}: ${actual} != ${expected}`);

const ledger = (perMinute = 6000) => new TokenLedger(perMinute);

// The tokens-per-minute ledger as a sliding window: reservations count from their instant,
// settlements change them in place, and any window holds at most the limit.

test('a new ledger is empty and idle; a reservation takes its tokens and is outstanding', () => {
  const l = ledger();
  assert.equal(l.capacity, 6000);
  assert.equal(l.available(0), 6000);
  assert.equal(l.idleAt(0), true);
  const r = l.reserve(0, 1000);
  assert.equal(r.ok, true);
  assert.deepEqual(r.reservation, { tokens: 1000 });
  assert.equal(r.remaining, 5000);
  assert.equal(r.resetMs, 60_000, 'the window is empty again a minute after its last charge');
  assert.equal(l.outstanding, 1000);
  assert.equal(l.idleAt(0), false);
});

test('the retry-after is exact: it is when enough of the window has slid past; 1 ms less fails', () => {
  const l = ledger();
  l.reserve(0, 4000);
  l.reserve(20_000, 2000);
  const refused = l.reserve(30_000, 3000);
  assert.deepEqual(refused, { ok: false, retryAfterMs: 30_000, remaining: 0, resetMs: 50_000 });
  assert.equal(l.reserve(59_999, 3000).ok, false);
  assert.equal(l.reserve(60_000, 3000).ok, true, 'the 4,000 of t=0 slid out');
});

test('a refused reserve takes nothing and opens nothing', () => {
  const l = ledger();
  l.reserve(0, 5000);
  assert.equal(l.reserve(0, 2000).ok, false);
  assert.equal(l.available(0), 1000);
  assert.equal(l.outstanding, 5000);
});

test('settling below the estimate refunds the difference at once; settling at 0 refunds it all', () => {
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

test('a settlement after its charge slid out: a refund gives nothing back, an excess is charged now', () => {
  const l = ledger();
  const refund = l.reserve(0, 3000).reservation;
  const excess = l.reserve(0, 1000).reservation;
  l.settle(60_000, refund, 0);
  assert.equal(l.available(60_000), 6000, 'nothing left to give back, nothing taken either');
  l.settle(60_000, excess, 2500);
  assert.equal(l.available(60_000), 4500, 'the 1,500 beyond the estimate counts from now');
  assert.equal(l.available(120_000), 6000);
});

test('a usage above its estimate can take the window past the limit, which delays the next reserve', () => {
  const l = ledger();
  const r = l.reserve(0, 1000).reservation;
  l.settle(0, r, 7000);
  assert.equal(l.available(0), -1000);
  const refused = l.reserve(10_000, 0);
  assert.equal(refused.ok, false, 'beyond the limit nothing fits, not even a zero estimate');
  assert.equal(refused.retryAfterMs, 50_000);
  assert.equal(l.reserve(60_000, 500).ok, true);
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
  l.settle(0, ledger().reserve(0, 500).reservation, 0);
  assert.equal(l.available(0), after);
});

test('a reservation never settled stays in outstanding: the "blocked at 80%" bug is visible, and holds its tokens only a window', () => {
  const l = ledger();
  const forgotten = l.reserve(0, 4800).reservation; // 80% of the limit
  assert.equal(l.reserve(0, 2000).ok, false);
  assert.equal(l.available(60_000), 6000, 'slid out after a minute: no lasting block');
  assert.equal(l.outstanding, 4800, 'but the leak shows');
  assert.equal(l.idleAt(1e9), false, 'an entry with an open reservation is never dropped');
  l.settle(1e9, forgotten, 4800);
  assert.equal(l.outstanding, 0);
  assert.equal(l.idleAt(1e9), true);
});

test('an estimate larger than the limit is clamped: it waits for an empty window, and its usage is charged in full', () => {
  const l = ledger();
  l.settle(0, l.reserve(0, 1).reservation, 1);
  const refused = l.reserve(0, 50_000);
  assert.equal(refused.ok, false);
  assert.equal(refused.retryAfterMs, 60_000, 'until the window is empty, not Infinity');
  const r = l.reserve(60_000, 50_000);
  assert.equal(r.ok, true);
  assert.equal(r.reservation.tokens, 6000);
  l.settle(60_000, r.reservation, 9000);
  assert.equal(l.available(60_000), -3000);
});

test('unknown usage (NaN, negative, Infinity) settles at the estimate and still closes the reservation', () => {
  for (const actual of [NaN, -1, Infinity]) {
    const l = ledger();
    l.settle(0, l.reserve(0, 1000).reservation, actual);
    assert.equal(l.available(0), 5000, `${actual}`);
    assert.equal(l.outstanding, 0, `${actual}`);
  }
});

test('a clock going backwards stands still: nothing slides out early', () => {
  const l = ledger();
  l.reserve(10_000, 6000);
  assert.equal(l.available(5_000), 0);
  assert.deepEqual(l.reserve(5_000, 100), { ok: false, retryAfterMs: 60_000, remaining: 0, resetMs: 60_000 });
  assert.equal(l.available(70_000), 6000);
});

test('resetMs and available read without changing anything; windowMs sets the window', () => {
  const l = ledger();
  l.reserve(0, 3000);
  assert.equal(l.resetMs(10_000), 50_000);
  assert.equal(l.available(60_000), 6000);
  assert.equal(l.available(0), 3000, 'reading at a later time did not slide the window');
  const short = new TokenLedger(100, { windowMs: 1000 });
  short.reserve(0, 100);
  assert.equal(short.available(999), 0);
  assert.equal(short.available(1000), 100);
});

test('memory: past maxEntries the two closest charges merge into the later one, so tokens are held longer, never shorter', () => {
  const l = new TokenLedger(1000, { maxEntries: 4 });
  const rs = [0, 10, 20, 5000, 9000].map((t) => l.reserve(t, 10).reservation); // 0 and 10 merge at 10
  assert.equal(l.available(9000), 950);
  assert.equal(l.available(60_000), 950, 'the 10 charged at 0 is held until 60,010, with the 10 it merged into');
  assert.equal(l.available(60_010), 970);
  assert.equal(l.available(60_020), 980);
  l.settle(9000, rs[0], 0); // its entry was merged: the refund follows it there
  assert.equal(l.available(9000), 960);
  for (const r of rs.slice(1)) l.settle(9000, r, 0);
  assert.equal(l.outstanding, 0);
  assert.equal(l.available(9000), 1000);
});

test('rejects a bad limit, window or estimate', () => {
  assert.throws(() => new TokenLedger(0), RangeError);
  assert.throws(() => new TokenLedger(-1), RangeError);
  assert.throws(() => new TokenLedger(Infinity), RangeError);
  assert.throws(() => new TokenLedger(NaN), RangeError);
  assert.throws(() => new TokenLedger(10, { windowMs: 0 }), RangeError);
  assert.throws(() => new TokenLedger(10, { maxEntries: 1 }), RangeError);
  const l = ledger();
  assert.throws(() => l.reserve(0, -1), RangeError);
  assert.throws(() => l.reserve(0, NaN), RangeError);
  assert.throws(() => l.reserve(0, Infinity), RangeError);
  assert.equal(l.outstanding, 0);
});

/**
 * The reference: every charge as (time, tokens), replayed on every question; the window at t
 * holds the charges with time > t − windowMs. A reserve fits iff window + n ≤ capacity; a
 * settlement changes its charge while the charge is in the window, else adds the excess now.
 * Times are the latest seen (a clock going back stands still). No merging (maxEntries large).
 */
class Model {
  constructor(capacity, windowMs) {
    Object.assign(this, { capacity, windowMs, charges: [], latest: -Infinity, open: new Map() });
  }
  at(now) {
    return Math.max(now, this.latest);
  }
  used(now) {
    const t = this.at(now);
    // at + w > t, the ledger's form: at an exact boundary t − w and at + w round differently.
    return this.charges.filter((c) => c.t + this.windowMs > t).reduce((n, c) => n + c.tokens, 0);
  }
  charge(now, tokens) {
    this.latest = this.at(now);
    const c = { t: this.latest, tokens };
    this.charges.push(c);
    return c;
  }
  outstanding() {
    let sum = 0;
    for (const { n } of this.open.values()) sum += n;
    return sum;
  }
}

test('property: random reserves, settlements and clock moves agree with the charge-list model', () => {
  for (let seed = 1; seed <= 150; seed++) {
    const rnd = prng(seed);
    const perMinute = 1 + Math.floor(rnd() * 10_000);
    const windowMs = rnd() < 0.5 ? 60_000 : 1 + rnd() * 120_000;
    const l = new TokenLedger(perMinute, { windowMs, maxEntries: 100_000 });
    const m = new Model(perMinute, windowMs);
    let now = rnd() * 1e6;
    let lastRefusal = null;
    const where = (step) => `seed ${seed} step ${step}`;
    for (let step = 0; step < 250; step++) {
      const what = rnd();
      if (what < 0.25) {
        const move = rnd();
        now += move < 0.15 ? -rnd() * 5000 : move < 0.3 && lastRefusal !== null ? lastRefusal : rnd() * windowMs * 0.3;
      } else if (what < 0.65) {
        const estimate = rnd() < 0.05 ? perMinute * (1 + rnd() * 3) : rnd() < 0.1 ? 0 : rnd() * perMinute * 0.4;
        const n = Math.min(estimate, perMinute);
        const used = m.used(now);
        const r = l.reserve(now, estimate);
        m.latest = m.at(now); // a reserve, granted or not, is an instant the ledger has seen
        const ok = used + n <= perMinute + 1e-9;
        assert.equal(r.ok, ok, `${where(step)}: ok iff ${n} fits beside ${used}`);
        if (ok) {
          close(r.reservation.tokens, n, `${where(step)}: clamped`);
          m.open.set(r.reservation, { n, charge: m.charge(now, n) });
          lastRefusal = null;
        } else {
          assert.ok(Number.isFinite(r.retryAfterMs));
          const from = m.at(now); // waits count from the latest instant seen
          assert.ok(m.used(from + r.retryAfterMs + 1e-6) + n <= perMinute + 1e-9, `${where(step)}: fits after retryAfterMs`); // + 1e-6: the float sum of the instants
          if (r.retryAfterMs >= 1) assert.ok(m.used(from + r.retryAfterMs - 1) + n > perMinute + 1e-9, `${where(step)}: not 1 ms earlier`);
          lastRefusal = r.retryAfterMs;
        }
        assert.equal(r.remaining, Math.floor(perMinute - m.used(now) + 1e-9), `${where(step)}: remaining`);
      } else {
        const open = [...m.open.keys()];
        const stray = rnd() < 0.1 || open.length === 0;
        const r = stray ? { tokens: 5 } : open[Math.floor(rnd() * open.length)];
        const pick = rnd();
        const used = pick < 0.2 ? 0 : pick < 0.5 ? r.tokens * rnd() : pick < 0.7 ? r.tokens : pick < 0.95 ? r.tokens * (1 + rnd() * 2) : NaN;
        l.settle(now, r, used);
        const o = m.open.get(r);
        if (o !== undefined) {
          m.open.delete(r);
          const delta = (Number.isFinite(used) ? used : r.tokens) - r.tokens;
          const t = m.at(now);
          if (o.charge.t + windowMs > t) o.charge.tokens = Math.max(0, o.charge.tokens + delta);
          else if (delta > 0) m.charge(now, delta);
          m.latest = t;
        }
      }
      close(l.outstanding, m.outstanding(), `${where(step)}: outstanding`);
      assert.equal(l.available(now), Math.floor(perMinute - m.used(now) + 1e-9), `${where(step)}: available`);
      assert.equal(l.idleAt(now), m.open.size === 0 && m.used(now) <= 1e-9, `${where(step)}: idleAt`);
    }
  }
});

/**
 * A client reserving as fast as it can for 2 simulated minutes: each request is reserved the
 * moment it fits (at retryAfterMs, and right after a refund), lasts a random time, then
 * settles to at most its estimate. From t = 0 on, any window of 60 s charges at most T, and
 * the client is not starved (it gets close to T per minute).
 */
test('a steady stream over 2 minutes: any 60 s window, the first one included, charges at most T, and the client gets close to T', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rnd = prng(seed);
    const T = 10_000;
    const l = new TokenLedger(T);
    const charges = []; // (t, tokens), settlements as corrections at the reservation's instant
    const inFlight = [];
    let now = 0;
    let next = 100 + Math.floor(rnd() * 1400);
    while (now <= 120_000) {
      inFlight.sort((a, b) => a.end - b.end);
      while (inFlight.length > 0 && inFlight[0].end <= now) {
        const f = inFlight.shift();
        l.settle(f.end, f.r, f.used);
        f.charge.tokens = f.used; // within the window: changed in place
      }
      const r = l.reserve(now, next);
      if (r.ok) {
        const charge = { t: now, tokens: next };
        charges.push(charge);
        inFlight.push({ end: now + 500 + rnd() * 5000, r: r.reservation, used: Math.floor(next * rnd()), charge });
        next = 100 + Math.floor(rnd() * 1400);
        continue;
      }
      const settleAt = inFlight.length > 0 ? Math.min(...inFlight.map((f) => f.end)) : Infinity;
      now = Math.min(now + r.retryAfterMs, settleAt);
    }
    for (let t = -60_000; t <= 120_000; t += 250) {
      const inWindow = charges.filter((c) => c.t > t && c.t <= t + 60_000).reduce((n, c) => n + c.tokens, 0);
      assert.ok(inWindow <= T + 1e-6, `seed ${seed}: window (${t}, ${t + 60_000}] charged ${inWindow} > ${T}`);
    }
    const total = charges.filter((c) => c.t <= 120_000).reduce((n, c) => n + c.tokens, 0);
    assert.ok(total > 1.5 * T, `seed ${seed}: not starved (${total} in 2 minutes)`);
  }
});

test('resize changes the limit and keeps the window: charges and open reservations carry over', () => {
  const l = ledger();
  l.reserve(0, 4000);
  const open = l.reserve(0, 1000).reservation;
  l.resize(3000);
  assert.equal(l.capacity, 3000);
  assert.equal(l.available(0), -2000, '5,000 charged against the new 3,000');
  assert.equal(l.reserve(0, 0).ok, false);
  l.settle(0, open, 0);
  assert.equal(l.available(0), -1000);
  assert.equal(l.outstanding, 4000, 'the first reservation is still open');
  assert.equal(l.available(60_000), 3000);
  assert.throws(() => l.resize(0), RangeError);
  assert.equal(l.capacity, 3000);
});

test('memory: a hot key merges on every charge, and reservations merged many times over still settle exactly', () => {
  const l = new TokenLedger(1e9, { maxEntries: 8 });
  const rs = [];
  for (let i = 0; i < 5000; i++) rs.push(l.reserve(i, 100).reservation);
  assert.equal(l.available(5000), 1e9 - 500_000);
  for (const [i, r] of rs.entries()) l.settle(5000, r, i % 2 === 0 ? 0 : 100);
  assert.equal(l.outstanding, 0);
  assert.equal(l.available(5000), 1e9 - 250_000, 'half refunded, through every merge');
});
