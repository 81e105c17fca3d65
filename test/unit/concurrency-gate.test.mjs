import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConcurrencyGate, GateRejected } from '../../dist/resilience/concurrency-gate.js';

/** A clock whose sleeps resolve only when the test calls advance(ms). */
function fakeClock() {
  const sleeps = new Set();
  return {
    t: 0,
    get pendingSleeps() {
      return sleeps.size;
    },
    now() {
      return this.t;
    },
    sleep(ms, signal) {
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const s = { at: this.t + ms, resolve };
        sleeps.add(s);
        signal?.addEventListener('abort', () => {
          sleeps.delete(s);
          reject(signal.reason);
        });
      });
    },
    async advance(ms) {
      this.t += ms;
      for (const s of [...sleeps]) {
        if (s.at <= this.t) {
          sleeps.delete(s);
          s.resolve();
        }
      }
      await flush();
    },
  };
}

/** Lets pending promise callbacks run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Starts an acquire and records how it settles, without awaiting it. */
function track(promise) {
  const state = { status: 'pending', value: undefined };
  promise.then(
    (value) => Object.assign(state, { status: 'granted', value }),
    (value) => Object.assign(state, { status: 'rejected', value }),
  );
  return state;
}

function gate(options = {}) {
  const clock = fakeClock();
  return { clock, gate: new ConcurrencyGate({ maxConcurrent: 2, queueSize: 2, queueTimeoutMs: 5000, clock, ...options }) };
}

test('grants at once while under maxConcurrent', async () => {
  const { gate: g } = gate();
  const r1 = await g.acquire();
  await g.acquire();
  assert.equal(typeof r1, 'function');
  assert.equal(g.inFlight, 2);
  assert.equal(g.queued, 0);
});

test('past maxConcurrent requests wait, and a release grants the oldest waiter first', async () => {
  const { gate: g } = gate({ queueSize: 5 });
  const r1 = await g.acquire();
  await g.acquire();
  const a = track(g.acquire());
  const b = track(g.acquire());
  await flush();
  assert.equal(g.queued, 2);
  assert.equal(a.status, 'pending');
  r1();
  await flush();
  assert.equal(a.status, 'granted');
  assert.equal(b.status, 'pending');
  assert.equal(g.inFlight, 2);
  assert.equal(g.queued, 1);
});

test('release is idempotent: a second call frees nothing more', async () => {
  const { gate: g } = gate();
  const r1 = await g.acquire();
  await g.acquire();
  const a = track(g.acquire());
  const b = track(g.acquire());
  r1();
  r1();
  await flush();
  assert.equal(a.status, 'granted');
  assert.equal(b.status, 'pending');
  assert.equal(g.inFlight, 2);
});

test('a newcomer does not overtake the queue when a slot frees', async () => {
  const { gate: g } = gate({ maxConcurrent: 1 });
  const r1 = await g.acquire();
  const a = track(g.acquire());
  r1(); // the slot goes to `a` before the newcomer arrives
  const b = track(g.acquire());
  await flush();
  assert.equal(a.status, 'granted');
  assert.equal(b.status, 'pending');
});

test('rejects with GateRejected queue_full when the queue is full', async () => {
  const { gate: g } = gate({ retryAfterMs: 2500 });
  await g.acquire();
  await g.acquire();
  g.acquire();
  g.acquire();
  const err = await g.acquire().catch((e) => e);
  assert.ok(err instanceof GateRejected);
  assert.ok(err instanceof Error);
  assert.equal(err.reason, 'queue_full');
  assert.equal(err.retryAfterMs, 2500);
  assert.equal(err.name, 'GateRejected');
  assert.equal(g.queued, 2);
});

test('a queueSize of 0 refuses at once when all slots are taken', async () => {
  const { gate: g } = gate({ maxConcurrent: 1, queueSize: 0 });
  await g.acquire();
  const err = await g.acquire().catch((e) => e);
  assert.equal(err.reason, 'queue_full');
  assert.equal(err.retryAfterMs, 1000, 'the default hint');
});

test('rejects with queue_timeout once the wait passes queueTimeoutMs, and leaves the queue', async () => {
  const { gate: g, clock } = gate({ maxConcurrent: 1 });
  const r1 = await g.acquire();
  const a = track(g.acquire());
  await clock.advance(4999);
  assert.equal(a.status, 'pending');
  await clock.advance(1);
  assert.equal(a.status, 'rejected');
  assert.ok(a.value instanceof GateRejected);
  assert.equal(a.value.reason, 'queue_timeout');
  assert.equal(g.queued, 0);
  r1();
  assert.equal(g.inFlight, 0, 'the timed-out waiter got no slot');
});

test('being granted cancels the timeout sleep', async () => {
  const { gate: g, clock } = gate({ maxConcurrent: 1 });
  const r1 = await g.acquire();
  const a = track(g.acquire());
  assert.equal(clock.pendingSleeps, 1);
  r1();
  await flush();
  assert.equal(a.status, 'granted');
  assert.equal(clock.pendingSleeps, 0);
  await clock.advance(10_000);
  assert.equal(g.inFlight, 1);
});

test('a timeout that fires after the grant changes nothing', async () => {
  // A clock that ignores cancellation: its sleep resolves anyway.
  const clock = { now: () => 0, sleep: () => Promise.resolve() };
  const g = new ConcurrencyGate({ maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 10, clock });
  const r1 = await g.acquire();
  const a = track(g.acquire());
  r1(); // granted synchronously, before the sleep's callback runs
  await flush();
  assert.equal(a.status, 'granted');
  assert.equal(g.inFlight, 1);
});

test('an abort while queued rejects with the signal reason and leaves the queue', async () => {
  const { gate: g, clock } = gate({ maxConcurrent: 1 });
  const r1 = await g.acquire();
  const ac = new AbortController();
  const a = track(g.acquire(ac.signal));
  const b = track(g.acquire());
  const reason = new Error('client left');
  ac.abort(reason);
  await flush();
  assert.equal(a.status, 'rejected');
  assert.equal(a.value, reason);
  assert.equal(g.queued, 1);
  assert.equal(clock.pendingSleeps, 1, "the aborted waiter's sleep was cancelled");
  r1();
  await flush();
  assert.equal(b.status, 'granted', 'the slot went to the next waiter');
});

test('an already aborted signal is rejected at once, taking no slot', async () => {
  const { gate: g } = gate();
  const ac = new AbortController();
  ac.abort(new Error('gone'));
  await assert.rejects(g.acquire(ac.signal), { message: 'gone' });
  assert.equal(g.inFlight, 0);
});

test('a signal that aborts after the grant changes nothing', async () => {
  const { gate: g } = gate({ maxConcurrent: 1 });
  const r1 = await g.acquire();
  const ac = new AbortController();
  const a = track(g.acquire(ac.signal));
  r1();
  await flush();
  ac.abort();
  await flush();
  assert.equal(a.status, 'granted');
  assert.equal(g.inFlight, 1);
});

test('maxConcurrent 0 means unlimited', async () => {
  const { gate: g } = gate({ maxConcurrent: 0, queueSize: 0 });
  const releases = [];
  for (let i = 0; i < 1000; i++) releases.push(await g.acquire());
  assert.equal(g.inFlight, 1000);
  for (const r of releases) r();
  assert.equal(g.inFlight, 0);
});

test('queueTimeoutMs Infinity waits as long as it takes, with no sleep', async () => {
  const { gate: g, clock } = gate({ maxConcurrent: 1, queueTimeoutMs: Infinity });
  const r1 = await g.acquire();
  const a = track(g.acquire());
  assert.equal(clock.pendingSleeps, 0);
  await clock.advance(1e9);
  assert.equal(a.status, 'pending');
  r1();
  await flush();
  assert.equal(a.status, 'granted');
});

test('rejects bad options', () => {
  const clock = fakeClock();
  const base = { maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 1, clock };
  assert.throws(() => new ConcurrencyGate({ ...base, maxConcurrent: -1 }), RangeError);
  assert.throws(() => new ConcurrencyGate({ ...base, maxConcurrent: 1.5 }), RangeError);
  assert.throws(() => new ConcurrencyGate({ ...base, queueSize: -1 }), RangeError);
  assert.throws(() => new ConcurrencyGate({ ...base, queueTimeoutMs: NaN }), RangeError);
  assert.throws(() => new ConcurrencyGate({ ...base, queueTimeoutMs: -1 }), RangeError);
});
