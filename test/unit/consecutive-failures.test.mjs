import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsecutiveFailures } from '../../dist/resilience/consecutive-failures.js';

test('says trip on the threshold-th failure in a row, and on every one after', () => {
  const trip = new ConsecutiveFailures(3);
  assert.equal(trip.failure(), false);
  assert.equal(trip.failure(), false);
  assert.equal(trip.failure(), true);
  assert.equal(trip.failure(), true);
  assert.equal(trip.count, 4);
});

test('a success in between starts the count again', () => {
  const trip = new ConsecutiveFailures(2);
  trip.failure();
  trip.success();
  assert.equal(trip.count, 0);
  assert.equal(trip.failure(), false);
  assert.equal(trip.failure(), true);
});

test('reset forgets the run', () => {
  const trip = new ConsecutiveFailures(2);
  trip.failure();
  trip.failure();
  trip.reset();
  assert.equal(trip.count, 0);
  assert.equal(trip.failure(), false);
});

test('a threshold of 1 trips on the first failure', () => {
  assert.equal(new ConsecutiveFailures(1).failure(), true);
});

test('rejects a threshold that is not an integer >= 1', () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => new ConsecutiveFailures(bad), RangeError, String(bad));
  }
});
