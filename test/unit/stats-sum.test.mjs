// /stats over all workers: numbers summed, settings once, worst states, latest errors,
// upstreams merged by name, percentiles over pooled samples, and who answered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sumStats } from '../../dist/cluster/stats-sum.js';

const report = (over) => ({
  uptime_s: 10,
  requests: { total: 3, by_class: { '2xx': 3 }, by_status: { 200: 3 }, by_endpoint: { '/v1/chat/completions': 3 } },
  in_flight: 1,
  queue: { depth: 1, slots_in_use: 0, max_concurrent: 8, size: 100, order: 'fair', waiting_by_client: { size: 1 }, wait_ms_by_client: { alice: { count: 2, p50_ms: 5, p99_ms: 9, max_ms: 9 } } },
  tokens: { 'fake-model': { prompt: 10, completion: 20 } },
  circuit_breaker: { state: 'closed', consecutive_failures: 0, last_transition: null, retry_after_s: 0 },
  upstreams: [{ name: 'a', url: 'http://127.0.0.1:1/', state: 'up', weight: 2, max_concurrent: 0, in_flight: 1, attempts: { ok: 3 }, models: ['m1'] }],
  last_upstream_error: null,
  request_log: { enabled: true, dropped_lines: 0 },
  ...over,
});
const view = { alive: 2, answered: [1, 2], missing: [], restarts: 0 };

test('counts add up, settings show once, a map keyed by data is summed even when a key looks like a field', () => {
  const parts = new Map([
    [1, { report: report(), samples: { latency: [1, 2, 3], ttfb: [] } }],
    [2, { report: report({ uptime_s: 12 }), samples: { latency: [10], ttfb: [4] } }],
  ]);
  const s = sumStats(parts, view);
  assert.deepEqual(s.requests, { total: 6, by_class: { '2xx': 6 }, by_status: { 200: 6 }, by_endpoint: { '/v1/chat/completions': 6 } });
  assert.equal(s.in_flight, 2);
  assert.equal(s.uptime_s, 12, 'the longest');
  assert.deepEqual(s.queue, { depth: 2, slots_in_use: 0, max_concurrent: 8, size: 100, order: 'fair', waiting_by_client: { size: 2 }, wait_ms_by_client: { alice: { count: 4, p50_ms: 5, p99_ms: 9, max_ms: 9 } } });
  assert.deepEqual(s.tokens, { 'fake-model': { prompt: 20, completion: 40 } });
  assert.deepEqual(s.upstreams, [{ name: 'a', url: 'http://127.0.0.1:1/', state: 'up', weight: 2, max_concurrent: 0, in_flight: 2, attempts: { ok: 6 }, models: ['m1'] }]);
  assert.deepEqual(s.latency_ms, { count: 4, p50: 2, p90: 10, p99: 10, max: 10 }, 'over the pooled samples, not an average');
  assert.deepEqual(s.time_to_first_byte_ms, { count: 1, p50: 4, p90: 4, p99: 4, max: 4 });
  assert.deepEqual(s.workers, { alive: 2, answered: 2, missing: [], restarts: 0, requests_by_worker: { 1: 3, 2: 3 } });
  assert.deepEqual(s.request_log, { enabled: true, dropped_lines: 0 });
});

test('the worst breaker and upstream state wins, the latest error and transition, upstreams and models by name', () => {
  const err = (at) => ({ at, upstream: 'a', outcome: 'reset', message: at });
  const parts = new Map([
    [1, { report: report({ circuit_breaker: { state: 'closed', consecutive_failures: 1, last_transition: '2026-01-01T00:00:01Z', retry_after_s: 0 }, last_upstream_error: err('2026-01-01T00:00:05Z') }), samples: { latency: [], ttfb: [] } }],
    [
      2,
      {
        report: report({
          circuit_breaker: { state: 'open', consecutive_failures: 5, last_transition: '2026-01-01T00:00:03Z', retry_after_s: 30 },
          last_upstream_error: err('2026-01-01T00:00:04Z'),
          upstreams: [
            { name: 'a', state: 'breaker_open', in_flight: 0, models: ['m2'] },
            { name: 'b', state: 'up', in_flight: 4 },
          ],
        }),
        samples: { latency: [], ttfb: [] },
      },
    ],
  ]);
  const s = sumStats(parts, { alive: 2, answered: [1, 2], missing: [], restarts: 1 });
  assert.deepEqual(s.circuit_breaker, { state: 'open', consecutive_failures: 5, last_transition: '2026-01-01T00:00:03Z', retry_after_s: 30 });
  assert.equal(s.last_upstream_error.at, '2026-01-01T00:00:05Z');
  assert.deepEqual(s.upstreams.map((u) => [u.name, u.state, u.in_flight, u.models]), [['a', 'breaker_open', 1, ['m1', 'm2']], ['b', 'up', 4, undefined]]);
  assert.equal(s.latency_ms.count, 0);
  assert.equal(s.latency_ms.p50, null);
});

test('a worker that did not answer is named; the sums are of those that did', () => {
  const s = sumStats(new Map([[2, { report: report(), samples: { latency: [], ttfb: [] } }]]), { alive: 2, answered: [2], missing: [1], restarts: 0 });
  assert.equal(s.requests.total, 3);
  assert.deepEqual(s.workers, { alive: 2, answered: 1, missing: [1], restarts: 0, requests_by_worker: { 2: 3 } });
});
