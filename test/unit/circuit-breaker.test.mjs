import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from '../../dist/resilience/circuit-breaker.js';

/** A breaker that records its transitions as "from>to@at". */
function breaker(options = {}) {
  const transitions = [];
  const cb = new CircuitBreaker({
    threshold: 3,
    openMs: 60_000,
    onTransition: (from, to, at) => transitions.push(`${from}>${to}@${at}`),
    ...options,
  });
  return { cb, transitions };
}

/** Fails `n` ordinary requests at `now`. */
function fail(cb, n, now) {
  for (let i = 0; i < n; i++) {
    assert.deepEqual(cb.admit(now), { kind: 'allow' });
    cb.recordFailure(now, false);
  }
}

test('a new breaker is closed and lets requests through', () => {
  const { cb, transitions } = breaker();
  assert.deepEqual(cb.admit(0), { kind: 'allow' });
  assert.deepEqual(cb.snapshot(0), { state: 'closed', consecutiveFailures: 0, lastTransitionAt: null, retryAfterMs: 0 });
  assert.deepEqual(transitions, []);
});

test('closed → open after threshold consecutive failures; open rejects until openMs has passed', () => {
  const { cb, transitions } = breaker();
  fail(cb, 2, 1000);
  assert.equal(cb.snapshot(1000).state, 'closed');
  fail(cb, 1, 1000);
  assert.deepEqual(transitions, ['closed>open@1000']);
  assert.deepEqual(cb.admit(1000), { kind: 'reject', retryAfterMs: 60_000 });
  assert.deepEqual(cb.admit(31_000), { kind: 'reject', retryAfterMs: 30_000 });
  assert.deepEqual(cb.snapshot(60_999), { state: 'open', consecutiveFailures: 3, lastTransitionAt: 1000, retryAfterMs: 1 });
});

test('a success while closed resets the count', () => {
  const { cb } = breaker();
  fail(cb, 2, 0);
  cb.recordSuccess(0, false);
  assert.equal(cb.snapshot(0).consecutiveFailures, 0);
  fail(cb, 2, 0);
  assert.equal(cb.snapshot(0).state, 'closed');
});

test('open → half_open lazily once openMs passed, dated at the end of the open period', () => {
  const { cb, transitions } = breaker();
  fail(cb, 3, 0);
  // Nobody asks until 90 s: the transition is still dated 60 s.
  assert.deepEqual(cb.snapshot(90_000), { state: 'half_open', consecutiveFailures: 3, lastTransitionAt: 60_000, retryAfterMs: 0 });
  assert.deepEqual(transitions, ['closed>open@0', 'open>half_open@60000']);
});

test('half_open admits exactly one probe and rejects the others with a short retryAfterMs', () => {
  const { cb } = breaker();
  fail(cb, 3, 0);
  assert.deepEqual(cb.admit(60_000), { kind: 'probe' });
  assert.deepEqual(cb.admit(60_001), { kind: 'reject', retryAfterMs: 1000 });
  assert.deepEqual(cb.admit(60_002), { kind: 'reject', retryAfterMs: 1000 });
  assert.equal(cb.snapshot(60_002).retryAfterMs, 1000);
});

test('the probe-in-flight wait is configurable', () => {
  const { cb } = breaker({ probeRetryAfterMs: 250 });
  fail(cb, 3, 0);
  cb.admit(60_000);
  assert.deepEqual(cb.admit(60_000), { kind: 'reject', retryAfterMs: 250 });
});

test("half_open → closed when the probe succeeds, and the failure count starts over", () => {
  const { cb, transitions } = breaker();
  fail(cb, 3, 0);
  assert.equal(cb.admit(60_000).kind, 'probe');
  cb.recordSuccess(61_000, true);
  assert.deepEqual(transitions, ['closed>open@0', 'open>half_open@60000', 'half_open>closed@61000']);
  assert.deepEqual(cb.snapshot(61_000), { state: 'closed', consecutiveFailures: 0, lastTransitionAt: 61_000, retryAfterMs: 0 });
  fail(cb, 2, 61_000);
  assert.equal(cb.snapshot(61_000).state, 'closed');
});

test('half_open → open for another openMs when the probe fails', () => {
  const { cb, transitions } = breaker();
  fail(cb, 3, 0);
  assert.equal(cb.admit(60_000).kind, 'probe');
  cb.recordFailure(65_000, true);
  assert.deepEqual(transitions.slice(2), ['half_open>open@65000']);
  assert.deepEqual(cb.admit(65_000), { kind: 'reject', retryAfterMs: 60_000 });
  assert.equal(cb.admit(125_000).kind, 'probe');
});

test('an abandoned probe frees the slot without changing state', () => {
  const { cb, transitions } = breaker();
  fail(cb, 3, 0);
  assert.equal(cb.admit(60_000).kind, 'probe');
  cb.recordAbandoned(true);
  assert.equal(cb.snapshot(60_000).state, 'half_open');
  assert.equal(cb.snapshot(60_000).retryAfterMs, 0);
  assert.equal(cb.admit(60_000).kind, 'probe', 'the next request probes');
  assert.equal(transitions.length, 2);
});

test('an abandoned ordinary request changes nothing', () => {
  const { cb } = breaker();
  fail(cb, 2, 0);
  cb.recordAbandoned(false);
  assert.equal(cb.snapshot(0).consecutiveFailures, 2);
  fail(cb, 1, 0);
  assert.equal(cb.snapshot(0).state, 'open', 'the run was not broken');
  cb.admit(60_000);
  cb.recordAbandoned(false);
  assert.equal(cb.admit(60_000).kind, 'reject', 'the probe slot is still taken');
});

test('late verdicts of requests admitted before the breaker opened are ignored', () => {
  const { cb, transitions } = breaker();
  fail(cb, 3, 0);
  cb.recordSuccess(10_000, false);
  cb.recordFailure(20_000, false);
  assert.deepEqual(cb.snapshot(20_000), { state: 'open', consecutiveFailures: 3, lastTransitionAt: 0, retryAfterMs: 40_000 });
  cb.admit(60_000); // probe in flight
  cb.recordSuccess(60_500, false);
  cb.recordFailure(60_500, false);
  assert.equal(cb.snapshot(60_500).state, 'half_open');
  assert.equal(transitions.length, 2);
});

test('a probe verdict arriving when no probe is pending changes nothing', () => {
  const { cb } = breaker();
  cb.recordSuccess(0, true);
  cb.recordFailure(0, true);
  cb.recordAbandoned(true);
  assert.deepEqual(cb.snapshot(0), { state: 'closed', consecutiveFailures: 0, lastTransitionAt: null, retryAfterMs: 0 });
});

test('openMs of 0 goes straight to half_open', () => {
  const { cb } = breaker({ openMs: 0, threshold: 1 });
  fail(cb, 1, 5);
  assert.deepEqual(cb.admit(5), { kind: 'probe' });
});

test('a listener that throws does not break the breaker', () => {
  const cb = new CircuitBreaker({
    threshold: 1,
    openMs: 10,
    onTransition: () => {
      throw new Error('listener bug');
    },
  });
  cb.recordFailure(0, false);
  assert.equal(cb.snapshot(0).state, 'open');
  assert.equal(cb.admit(10).kind, 'probe');
});

test('works without a listener', () => {
  const cb = new CircuitBreaker({ threshold: 1, openMs: 10 });
  cb.recordFailure(0, false);
  assert.equal(cb.admit(10).kind, 'probe');
  cb.recordSuccess(11, true);
  assert.deepEqual(cb.snapshot(11), { state: 'closed', consecutiveFailures: 0, lastTransitionAt: 11, retryAfterMs: 0 });
});

test('rejects bad options', () => {
  assert.throws(() => new CircuitBreaker({ threshold: 0, openMs: 10 }), RangeError);
  assert.throws(() => new CircuitBreaker({ threshold: 1, openMs: -1 }), RangeError);
  assert.throws(() => new CircuitBreaker({ threshold: 1, openMs: NaN }), RangeError);
  assert.throws(() => new CircuitBreaker({ threshold: 1, openMs: 10, probeRetryAfterMs: -5 }), RangeError);
});
