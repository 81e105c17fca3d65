// The retry loop on a fake clock: what it repeats, how long it waits, when it stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retry } from '../../dist/resilience/retry.js';
import { Cancel } from '../../dist/cancel.js';

function fakeClock() {
  return {
    t: 0,
    sleeps: [],
    now() {
      return this.t;
    },
    sleep(ms, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      this.sleeps.push(ms);
      this.t += ms;
      return Promise.resolve();
    },
  };
}

const base = (clock, over = {}) => ({ maxRetries: 3, backoffMs: (n) => 100 * 2 ** (n - 1), clock, deadline: 10_000, cancel: new Cancel(), ...over });
const retryable = (reason, value = 'fail', extra = {}) => ({ kind: 'retry', reason, value, ...extra });

test('a final verdict on the first attempt returns at once without waiting', async () => {
  const clock = fakeClock();
  const r = await retry(async () => ({ kind: 'final', value: 'ok' }), base(clock));
  assert.deepEqual(r, { value: 'ok', attempts: 1, stoppedBecause: 'final' });
  assert.deepEqual(clock.sleeps, []);
});

test('two failures then success: three attempts, waiting the exponential backoff in between', async () => {
  const clock = fakeClock();
  const reasons = [];
  const r = await retry(async (n) => (n < 3 ? retryable('connect_error') : { kind: 'final', value: 'ok' }), { ...base(clock), onRetry: (n, reason, delay) => reasons.push([n, reason, delay]) });
  assert.equal(r.value, 'ok');
  assert.equal(r.attempts, 3);
  assert.deepEqual(clock.sleeps, [100, 200]);
  assert.deepEqual(reasons, [[1, 'connect_error', 100], [2, 'connect_error', 200]]);
});

test('stops after MAX_RETRIES retries and hands back the last failure', async () => {
  const clock = fakeClock();
  const r = await retry(async (n) => retryable('http_503', `503 #${n}`), base(clock));
  assert.deepEqual(r, { value: '503 #4', attempts: 4, stoppedBecause: 'retries_spent' });
  assert.deepEqual(clock.sleeps, [100, 200, 400]);
});

test("an upstream Retry-After replaces the backoff when it fits before the deadline", async () => {
  const clock = fakeClock();
  const r = await retry(async (n) => (n === 1 ? retryable('http_503', 'x', { retryAfterMs: 2000 }) : { kind: 'final', value: 'ok' }), base(clock));
  assert.equal(r.value, 'ok');
  assert.deepEqual(clock.sleeps, [2000]);
});

test('a Retry-After longer than what is left of the deadline is not waited for', async () => {
  const clock = fakeClock();
  const r = await retry(async () => retryable('http_503', 'the 503', { retryAfterMs: 20_000 }), base(clock));
  assert.deepEqual(r, { value: 'the 503', attempts: 1, stoppedBecause: 'deadline' });
  assert.deepEqual(clock.sleeps, []);
});

test('no retry starts when its backoff would run past the deadline', async () => {
  const clock = fakeClock();
  const r = await retry(async () => retryable('reset'), base(clock, { deadline: 250 }));
  assert.equal(r.stoppedBecause, 'deadline');
  assert.deepEqual(clock.sleeps, [100]); // 100 fits, the next 200 would end at 300 > 250
});

test('a stale pooled connection is resent at once and not counted as a retry', async () => {
  const clock = fakeClock();
  const r = await retry(async (n) => (n === 1 ? retryable('stale_connection', 'x', { immediate: true }) : n === 2 ? retryable('reset') : { kind: 'final', value: 'ok' }), base(clock, { maxRetries: 1 }));
  assert.equal(r.value, 'ok');
  assert.equal(r.attempts, 3);
  assert.deepEqual(clock.sleeps, [100]);
});

test('immediate resends are bounded too', async () => {
  const clock = fakeClock();
  const r = await retry(async () => retryable('stale_connection', 'x', { immediate: true }), base(clock, { maxRetries: 0, maxImmediate: 2 }));
  assert.equal(r.attempts, 3);
  assert.equal(r.stoppedBecause, 'retries_spent');
});

test('the gate can refuse a retry (breaker open, budget spent)', async () => {
  const clock = fakeClock();
  const asked = [];
  const r = await retry(async () => retryable('http_502'), { ...base(clock), mayRetry: (reason) => (asked.push(reason), false) });
  assert.equal(r.stoppedBecause, 'refused');
  assert.equal(r.attempts, 1);
  assert.deepEqual(asked, ['http_502']);
});

test('a client that left stops the loop, before or during the wait', async () => {
  const clock = fakeClock();
  const c = new Cancel();
  const r = await retry(async () => (c.abort(new Error('gone')), retryable('reset')), base(clock, { cancel: c }));
  assert.equal(r.stoppedBecause, 'aborted');
  const c2 = new Cancel();
  const sleeper = { now: () => 0, sleep: (_ms, signal) => (c2.abort(new Error('gone')), Promise.reject(signal.reason)) };
  const r2 = await retry(async () => retryable('reset'), base(sleeper, { cancel: c2 }));
  assert.equal(r2.stoppedBecause, 'aborted');
  assert.equal(r2.attempts, 1);
});
