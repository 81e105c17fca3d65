import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retryAfterMs } from '../../dist/resilience/retry-after.js';

const NOW = Date.UTC(2024, 5, 1, 12, 0, 0); // Sat, 01 Jun 2024 12:00:00 GMT

test('delta-seconds becomes milliseconds', () => {
  assert.equal(retryAfterMs({ 'retry-after': '120' }, NOW), 120_000);
  assert.equal(retryAfterMs({ 'retry-after': '0' }, NOW), 0);
  assert.equal(retryAfterMs({ 'retry-after': ' 3 ' }, NOW), 3000);
  assert.equal(retryAfterMs({ 'retry-after': '1.5' }, NOW), 1500);
});

test('retry-after-ms is preferred when present and valid', () => {
  assert.equal(retryAfterMs({ 'retry-after-ms': '250.5', 'retry-after': '10' }, NOW), 250.5);
  assert.equal(retryAfterMs({ 'retry-after-ms': '0' }, NOW), 0);
});

test('an invalid retry-after-ms falls back to retry-after', () => {
  assert.equal(retryAfterMs({ 'retry-after-ms': '-5', 'retry-after': '2' }, NOW), 2000);
  assert.equal(retryAfterMs({ 'retry-after-ms': 'soon', 'retry-after': '2' }, NOW), 2000);
  assert.equal(retryAfterMs({ 'retry-after-ms': '' }, NOW), undefined);
});

test('an IMF-fixdate counts from the given wall clock', () => {
  assert.equal(retryAfterMs({ 'retry-after': 'Sat, 01 Jun 2024 12:00:30 GMT' }, NOW), 30_000);
});

test('the obsolete RFC 850 and asctime date formats are accepted (RFC 9110 §5.6.7)', () => {
  assert.equal(retryAfterMs({ 'retry-after': 'Saturday, 01-Jun-24 12:01:00 GMT' }, NOW), 60_000);
  assert.equal(retryAfterMs({ 'retry-after': 'Sat Jun  1 12:00:05 2024' }, NOW), 5000);
  assert.equal(retryAfterMs({ 'retry-after': 'Sat Jun 15 12:00:00 2024' }, NOW), 14 * 86_400_000);
});

test('a two-digit year more than 50 years ahead means the past century', () => {
  // 99 would be 2099, over 50 years after 2024, so it is 1999: in the past.
  assert.equal(retryAfterMs({ 'retry-after': 'Friday, 31-Dec-99 23:59:59 GMT' }, NOW), 0);
  // 30 is 2030, within 50 years.
  const in2030 = Date.UTC(2030, 0, 1) - NOW;
  assert.equal(retryAfterMs({ 'retry-after': 'Tuesday, 01-Jan-30 00:00:00 GMT' }, NOW), in2030);
});

test('a date in the past gives 0', () => {
  assert.equal(retryAfterMs({ 'retry-after': 'Sun, 06 Nov 1994 08:49:37 GMT' }, NOW), 0);
});

test('a leap second is one more second', () => {
  assert.equal(retryAfterMs({ 'retry-after': 'Sat, 01 Jun 2024 12:00:60 GMT' }, NOW), 60_000);
});

test('garbage, negatives and impossible dates give undefined', () => {
  for (const bad of [
    '-1',
    'soon',
    '',
    '1e3',
    'Infinity',
    '0x10',
    'Sat, 31 Feb 2024 00:00:00 GMT',
    'Sat, 01 Jun 2024 24:00:00 GMT',
    'Sat, 01 Jun 2024 12:60:00 GMT',
    'Sat, 01 Jun 2024 12:00:61 GMT',
    'Sat, 01 Jun 0094 12:00:00 GMT',
    'Sat, 01 Jun 2024 12:00:00 UTC',
    '2024-06-01T12:00:00Z',
  ]) {
    assert.equal(retryAfterMs({ 'retry-after': bad }, NOW), undefined, JSON.stringify(bad));
  }
});

test('no headers give undefined', () => {
  assert.equal(retryAfterMs({}, NOW), undefined);
  assert.equal(retryAfterMs({ 'retry-after': undefined }, NOW), undefined);
});

test('a repeated header uses its first value', () => {
  assert.equal(retryAfterMs({ 'retry-after': ['4', '9'] }, NOW), 4000);
  assert.equal(retryAfterMs({ 'retry-after-ms': ['40', '90'] }, NOW), 40);
  assert.equal(retryAfterMs({ 'retry-after': [] }, NOW), undefined);
});
