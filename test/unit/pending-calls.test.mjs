// Calls waiting for the primary's answer: one clock timer for all, each expiring at its own deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PendingCalls } from '../../dist/cluster/pending-calls.js';
import { FakeClock } from './orchestration-fakes.mjs';

test('each call expires at its own deadline, with one timer armed at a time; an answered call never expires', () => {
  const clock = new FakeClock();
  const expired = [];
  const calls = new PendingCalls(clock, 1000, (id, v) => expired.push([id, v, clock.now()]));
  const a = calls.open('a');
  clock.t += 300;
  const b = calls.open('b');
  clock.t += 100;
  const c = calls.open('c');
  assert.equal(clock.pending(), 1, 'one timer for three calls');
  assert.equal(calls.take(c), 'c');
  assert.equal(calls.take(c), undefined, 'twice: nothing');
  clock.advance(600); // a's deadline
  assert.deepEqual(expired, [[a, 'a', 2000]]);
  assert.equal(clock.pending(), 1, 're-armed for b');
  clock.advance(300);
  assert.deepEqual(expired.slice(1), [[b, 'b', 2300]]);
  assert.equal(calls.size, 0);
  assert.equal(clock.pending(), 0, 'nothing left, nothing armed');
  const d = calls.open('d');
  assert.deepEqual(calls.drain(), [[d, 'd']]);
  assert.equal(calls.size, 0);
});

test('without a timeout no timer is armed', () => {
  const clock = new FakeClock();
  const calls = new PendingCalls(clock, Infinity, () => assert.fail('expired'));
  calls.open('a');
  assert.equal(clock.pending(), 0);
});
