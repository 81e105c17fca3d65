import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientWaits } from '../../dist/observe/client-waits.js';

test('per client: admissions counted, and p50 / p99 / max of its waits', () => {
  const w = new ClientWaits();
  for (let i = 1; i <= 100; i++) w.record('a', i);
  w.record('b', 12.345);
  assert.deepEqual(w.snapshot(), {
    a: { count: 100, p50Ms: 50, p99Ms: 99, maxMs: 100 },
    b: { count: 1, p50Ms: 12.3, p99Ms: 12.3, maxMs: 12.3 },
  });
});

test('percentiles cover the last samplesPerClient waits; the count covers all', () => {
  const w = new ClientWaits(10, 4);
  for (const ms of [1000, 1000, 1000, 1, 2, 3, 4]) w.record('a', ms);
  assert.deepEqual(w.snapshot().a, { count: 7, p50Ms: 2, p99Ms: 4, maxMs: 4 });
});

test('at most maxClients keys: a new one evicts the least recently admitted', () => {
  const w = new ClientWaits(3);
  w.record('a', 1);
  w.record('b', 1);
  w.record('c', 1);
  w.record('a', 1); // a is recent again: b is now the oldest
  w.record('d', 1);
  assert.deepEqual(Object.keys(w.snapshot()), ['a', 'c', 'd']);
  assert.equal(w.snapshot().a.count, 2);
});

test('keys come out sorted, and a key like __proto__ is an ordinary key', () => {
  const w = new ClientWaits();
  w.record('z', 1);
  w.record('__proto__', 2);
  w.record('m', 3);
  const s = w.snapshot();
  assert.deepEqual(Object.keys(s), ['__proto__', 'm', 'z']);
  assert.equal(s.__proto__.count, 1);
  assert.equal(JSON.parse(JSON.stringify(s)).__proto__.maxMs, 2);
});

test('a wait that is not a finite number is not recorded', () => {
  const w = new ClientWaits();
  w.record('a', NaN);
  w.record('a', Infinity);
  assert.deepEqual(w.snapshot(), {});
});

test('rejects bad sizes', () => {
  assert.throws(() => new ClientWaits(0), RangeError);
  assert.throws(() => new ClientWaits(1.5), RangeError);
  assert.throws(() => new ClientWaits(10, 0), RangeError);
});
