import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from '../../dist/resilience/retry-budget.js';

function started(budget, n) {
  for (let i = 0; i < n; i++) budget.requestStarted();
}

test('a quiet proxy may still have minRetries retries in flight', () => {
  const budget = new RetryBudget();
  started(budget, 1);
  assert.equal(budget.tryAcquireRetry(), true);
  assert.equal(budget.tryAcquireRetry(), true);
  assert.equal(budget.tryAcquireRetry(), true);
  assert.equal(budget.tryAcquireRetry(), false);
  assert.equal(budget.retriesInFlight, 3);
});

test('under load retries in flight are capped at ratio × requests in flight', () => {
  const budget = new RetryBudget({ ratio: 0.2, minRetries: 3 });
  started(budget, 100);
  assert.equal(budget.maxRetries, 20);
  let granted = 0;
  while (budget.tryAcquireRetry()) granted++;
  assert.equal(granted, 20);
});

test('the cap is floored: 24 requests at 20% allow 4 retries, not 4.8', () => {
  const budget = new RetryBudget({ ratio: 0.2, minRetries: 0 });
  started(budget, 24);
  assert.equal(budget.maxRetries, 4);
});

test('a released retry frees its slot', () => {
  const budget = new RetryBudget({ minRetries: 1 });
  assert.equal(budget.tryAcquireRetry(), true);
  assert.equal(budget.tryAcquireRetry(), false);
  budget.releaseRetry();
  assert.equal(budget.tryAcquireRetry(), true);
});

test('ending requests shrinks the budget', () => {
  const budget = new RetryBudget({ ratio: 0.5, minRetries: 0 });
  started(budget, 4);
  assert.equal(budget.maxRetries, 2);
  budget.requestEnded();
  budget.requestEnded();
  assert.equal(budget.requestsInFlight, 2);
  assert.equal(budget.maxRetries, 1);
});

test('minRetries 0 and ratio 0 allow no retry at all', () => {
  const budget = new RetryBudget({ ratio: 0, minRetries: 0 });
  started(budget, 1000);
  assert.equal(budget.tryAcquireRetry(), false);
});

test('counters never go negative, so unbalanced calls cannot mint budget', () => {
  const budget = new RetryBudget({ ratio: 1, minRetries: 0 });
  budget.requestEnded();
  budget.releaseRetry();
  assert.equal(budget.requestsInFlight, 0);
  assert.equal(budget.retriesInFlight, 0);
  budget.requestStarted();
  assert.equal(budget.tryAcquireRetry(), true);
  assert.equal(budget.tryAcquireRetry(), false);
});

test('rejects bad options', () => {
  assert.throws(() => new RetryBudget({ ratio: -0.1 }), RangeError);
  assert.throws(() => new RetryBudget({ ratio: NaN }), RangeError);
  assert.throws(() => new RetryBudget({ minRetries: -1 }), RangeError);
  assert.throws(() => new RetryBudget({ minRetries: 1.5 }), RangeError);
});
