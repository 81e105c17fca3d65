import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelayMs } from '../../dist/resilience/backoff.js';

const fixed = (x) => () => x;
const opts = { baseMs: 1000, maxMs: 30_000 };

test('with random fixed at 0.5 the delay is exactly baseMs × 2^(n−1)', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, opts, fixed(0.5))),
    [1000, 2000, 4000, 8000, 16_000],
  );
});

test('random 0 gives the low end (−20%) and random 1 the high end (+20%)', () => {
  assert.equal(backoffDelayMs(1, opts, fixed(0)), 800);
  assert.equal(backoffDelayMs(1, opts, fixed(1)), 1200);
  assert.equal(backoffDelayMs(3, opts, fixed(0)), 3200);
  assert.equal(backoffDelayMs(3, opts, fixed(1)), 4800);
});

test('the delay is capped at maxMs, after the jitter too', () => {
  assert.equal(backoffDelayMs(6, opts, fixed(0.5)), 30_000); // 32 000 capped
  assert.equal(backoffDelayMs(6, opts, fixed(1)), 30_000); // not 36 000
  assert.equal(backoffDelayMs(6, opts, fixed(0)), 24_000); // jitter still spreads below the cap
  assert.equal(backoffDelayMs(5, opts, fixed(1)), 19_200);
});

test('huge retry numbers do not overflow into Infinity or NaN', () => {
  assert.equal(backoffDelayMs(5000, opts, fixed(0.5)), 30_000);
});

test('the jitter is configurable, and 0 means none', () => {
  assert.equal(backoffDelayMs(2, { ...opts, jitter: 0 }, fixed(1)), 2000);
  assert.equal(backoffDelayMs(2, { ...opts, jitter: 0.5 }, fixed(0)), 1000);
  // Out-of-range jitter is clamped to [0, 1]: never a negative delay.
  assert.equal(backoffDelayMs(2, { ...opts, jitter: 5 }, fixed(0)), 0);
  assert.equal(backoffDelayMs(2, { ...opts, jitter: -1 }, fixed(0)), 2000);
  assert.equal(backoffDelayMs(2, { ...opts, jitter: NaN }, fixed(0)), 2000);
});

test('a broken random source never makes the delay negative, NaN or above maxMs', () => {
  for (const r of [-3, 7, NaN]) {
    const d = backoffDelayMs(2, opts, fixed(r));
    assert.ok(d >= 0 && d <= 30_000, `random ${r} gave ${d}`);
  }
});

test('uses Math.random by default and stays within ±20%', () => {
  for (let i = 0; i < 100; i++) {
    const d = backoffDelayMs(2, opts);
    assert.ok(d >= 1600 && d <= 2400, String(d));
  }
});

test('rejects a retry number below 1 or fractional, and negative base or cap', () => {
  assert.throws(() => backoffDelayMs(0, opts), RangeError);
  assert.throws(() => backoffDelayMs(1.5, opts), RangeError);
  assert.throws(() => backoffDelayMs(1, { baseMs: -1, maxMs: 10 }), RangeError);
  assert.throws(() => backoffDelayMs(1, { baseMs: 1, maxMs: NaN }), RangeError);
});

test('options are not mutated', () => {
  const frozen = Object.freeze({ baseMs: 10, maxMs: 100 });
  assert.equal(backoffDelayMs(1, frozen, fixed(0.5)), 10);
  assert.deepEqual(frozen, { baseMs: 10, maxMs: 100 });
});
