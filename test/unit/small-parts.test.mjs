// Small pure helpers: request ids, rate-limit durations, the error renderer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestIdFor } from '../../dist/http/request-id.js';
import { formatDuration } from '../../dist/http/duration.js';
import { ProxyError, renderError } from '../../dist/errors.js';

test('a sane client request id is kept; anything else is replaced', () => {
  assert.equal(requestIdFor('abc-123_XYZ'), 'abc-123_XYZ');
  for (const bad of [undefined, '', 'a b', 'x'.repeat(129), ['a', 'b'], 'bad\u0001']) assert.match(requestIdFor(bad), /^req_[0-9a-f]{32}$/);
});

test('durations are written as Go duration strings, as OpenAI does', () => {
  assert.equal(formatDuration(0), '0ms');
  assert.equal(formatDuration(12.4), '12ms');
  assert.equal(formatDuration(1000), '1s');
  assert.equal(formatDuration(1500), '1.5s');
  assert.equal(formatDuration(360_000), '6m0s');
  assert.equal(formatDuration(3_723_000), '1h2m3s');
  assert.equal(formatDuration(-5), '0ms');
});

test('proxy errors render in the OpenAI shape with the right headers', () => {
  const e = new ProxyError('upstream_timeout', 'slow');
  assert.equal(e.status, 504);
  assert.deepEqual(JSON.parse(renderError(e)), { error: { message: 'slow', type: 'server_error', param: null, code: 'upstream_timeout' } });
  assert.deepEqual(e.responseHeaders(), { 'x-should-retry': 'false' });
  const r = new ProxyError('rate_limited', 'wait', { retryAfterSec: 0.2, headers: { 'x-a': '1' } });
  assert.deepEqual(r.responseHeaders(), { 'x-a': '1', 'retry-after': '1' });
  assert.equal(new ProxyError('circuit_open', 'x', { retryAfterSec: 12.1 }).responseHeaders()['retry-after'], '13');
});
