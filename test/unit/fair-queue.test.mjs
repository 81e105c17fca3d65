import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairQueue } from '../../dist/resilience/fair-queue.js';
import { prng } from './prng.mjs';

const client = (key, weight = 1) => ({ key, weight });
const A = client('a');
const B = client('b');

test('fair order: the waiting client with the smallest counter goes first', () => {
  const q = new FairQueue('fair');
  q.admitNow(A);
  q.charge('a', 100);
  q.enqueue(A, 'a1');
  q.enqueue(B, 'b1');
  assert.equal(q.counterOf('a'), 100);
  assert.equal(q.counterOf('b'), 100, 'lifted to the smallest waiting counter');
  q.charge('b', 1);
  assert.equal(q.dequeue(), 'a1');
  assert.equal(q.dequeue(), 'b1');
  assert.equal(q.dequeue(), undefined);
});

test('ties go to the client whose oldest waiting request came first; a client\'s own requests keep their order', () => {
  const q = new FairQueue('fair');
  q.enqueue(B, 'b1');
  q.enqueue(A, 'a1');
  q.enqueue(B, 'b2');
  assert.equal(q.dequeue(), 'b1');
  q.charge('b', 5);
  assert.equal(q.dequeue(), 'a1');
  q.charge('a', 5);
  assert.equal(q.dequeue(), 'b2');
});

test('fifo order is arrival order whatever the counters', () => {
  const q = new FairQueue('fifo');
  q.enqueue(A, 'a1');
  q.enqueue(B, 'b1');
  q.enqueue(A, 'a2');
  q.charge('a', 1e9);
  assert.deepEqual([q.dequeue(), q.dequeue(), q.dequeue()], ['a1', 'b1', 'a2']);
  assert.equal(q.order, 'fifo');
  assert.equal(new FairQueue().order, 'fair');
});

test('a client is held while it has something queued or in flight, and forgotten after', () => {
  const q = new FairQueue('fair');
  const e = q.enqueue(A, 'a1');
  assert.equal(q.activeClients, 1);
  assert.equal(q.remove(e), true);
  assert.equal(q.remove(e), false, 'removing twice does nothing');
  assert.equal(q.activeClients, 0);
  q.enqueue(A, 'a1');
  assert.equal(q.dequeue(), 'a1');
  assert.equal(q.activeClients, 1, 'in flight');
  assert.equal(q.remove(e), false);
  q.finish('a');
  q.finish('a'); // one too many: ignored
  q.finish('nobody');
  assert.equal(q.activeClients, 0);
  assert.equal(q.counterOf('a'), undefined);
});

test('queuedOf and queuedBy count waiting requests per client', () => {
  const q = new FairQueue('fair');
  q.enqueue(A, 1);
  q.enqueue(A, 2);
  q.enqueue(B, 3);
  q.admitNow(client('c'));
  assert.equal(q.size, 3);
  assert.equal(q.queuedOf('a'), 2);
  assert.equal(q.queuedOf('c'), 0);
  assert.equal(q.queuedOf('zz'), 0);
  assert.deepEqual(Object.fromEntries(q.queuedBy()), { a: 2, b: 1 });
});

test('a weight change applies to later charges', () => {
  const q = new FairQueue('fair');
  q.admitNow(client('a', 1));
  q.charge('a', 10);
  q.admitNow(client('a', 5));
  q.charge('a', 10);
  assert.equal(q.counterOf('a'), 12);
});

test('a weight that is not a positive finite number is refused', () => {
  const q = new FairQueue('fair');
  for (const weight of [0, -2, NaN, Infinity]) {
    assert.throws(() => q.enqueue({ key: 'a', weight }, 1), RangeError);
    assert.throws(() => q.admitNow({ key: 'a', weight }), RangeError);
  }
  assert.equal(q.activeClients, 0);
});

test('a refund lets a client that was overcharged catch up first', () => {
  const q = new FairQueue('fair');
  q.admitNow(A);
  q.charge('a', 1000);
  q.admitNow(B);
  q.charge('b', 1000);
  q.enqueue(B, 'b1');
  q.enqueue(A, 'a1');
  assert.equal(q.counterOf('a'), q.counterOf('b'));
  q.charge('a', -990); // settled far below the estimate
  assert.equal(q.dequeue(), 'a1');
});

/**
 * The invariants of src/resilience/fair-queue.ts under random operations, with every
 * admission charged at once (the theorem's assumption) and direct admissions only when
 * nobody waits (as the gate does): the counters of the waiting clients always lie within U
 * of each other, U = the largest cost ÷ weight charged so far; and a client that stays
 * backlogged is never lifted, so service differences stay within 2U.
 */
test('property: waiting counters stay within U of each other, and backlogged service within 2U', (t) => {
  let closest = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const rnd = prng(seed);
    const q = new FairQueue('fair');
    const clients = Array.from({ length: 2 + Math.floor(rnd() * 5) }, (_, i) => client(`c${i}`, 0.25 + rnd() * 4));
    const inFlight = [];
    const entries = [];
    const served = Object.fromEntries(clients.map((c) => [c.key, 0])); // service ÷ weight, all time
    const pairs = new Map(); // "f|g" → service difference when both became backlogged
    let U = 0;
    const admitted = (c) => {
      const cost = 1 + rnd() * 100;
      q.charge(c.key, cost);
      U = Math.max(U, cost / c.weight);
      served[c.key] += cost / c.weight;
      inFlight.push(c.key);
    };
    for (let step = 0; step < 2000; step++) {
      const where = `seed ${seed} step ${step}`;
      const what = rnd();
      if (what < 0.4) {
        const c = clients[Math.floor(rnd() * clients.length)];
        entries.push(q.enqueue(c, c));
      } else if (what < 0.75) {
        if (q.size > 0) admitted(q.dequeue());
        else if (rnd() < 0.5) {
          const c = clients[Math.floor(rnd() * clients.length)];
          q.admitNow(c);
          admitted(c);
        }
      } else if (what < 0.95) {
        if (inFlight.length > 0) q.finish(inFlight.splice(Math.floor(rnd() * inFlight.length), 1)[0]);
      } else if (entries.length > 0) {
        q.remove(entries.splice(Math.floor(rnd() * entries.length), 1)[0]);
      }
      const waiting = [...q.queuedBy().keys()];
      if (waiting.length > 1) {
        const counters = waiting.map((k) => q.counterOf(k));
        const spread = Math.max(...counters) - Math.min(...counters);
        assert.ok(spread <= U + 1e-9, `${where}: waiting counters spread ${spread} > U = ${U}`);
      }
      // pairs backlogged since they were recorded, up to and including the step that ends one
      for (const [pair, d0] of pairs) {
        const [f, g] = pair.split('|');
        const drift = Math.abs(served[f] - served[g] - d0);
        assert.ok(drift <= 2 * U + 1e-9, `${where}: ${pair} drifted ${drift} > 2U = ${2 * U}`);
        if (U > 0) closest = Math.max(closest, drift / (2 * U));
        if (q.queuedOf(f) === 0 || q.queuedOf(g) === 0) pairs.delete(pair);
      }
      for (const f of waiting) {
        for (const g of waiting) if (f < g && !pairs.has(`${f}|${g}`)) pairs.set(`${f}|${g}`, served[f] - served[g]);
      }
    }
  }
  t.diagnostic(`largest drift seen: ${closest.toFixed(2)} of 2U`);
  assert.ok(closest > 0.5, 'the check has teeth');
});
