// The proxy's metrics as dashboards see them: every name of INTERFACE.md with its type
// and labels, bounded label values, and the process/runtime metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTENT_TYPE, Registry } from '../../dist/metrics/registry.js';
import { LATENCY_BUCKETS, ProxyMetrics, TTFB_BUCKETS } from '../../dist/metrics/proxy-metrics.js';
import { meanLagSeconds, registerProcessMetrics } from '../../dist/metrics/process-metrics.js';
import { CappedLabels, OTHER } from '../../dist/metrics/capped-labels.js';

/** INTERFACE.md's "Prometheus metrics" table. */
const INTERFACE = {
  openai_proxy_requests_total: 'counter',
  openai_proxy_request_duration_seconds: 'histogram',
  openai_proxy_time_to_first_byte_seconds: 'histogram',
  openai_proxy_in_flight_requests: 'gauge',
  openai_proxy_upstream_attempts_total: 'counter',
  openai_proxy_retries_total: 'counter',
  openai_proxy_rate_limited_total: 'counter',
  openai_proxy_circuit_breaker_state: 'gauge',
  openai_proxy_tokens_total: 'counter',
  openai_proxy_client_tokens_total: 'counter',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  process_start_time_seconds: 'gauge',
  nodejs_eventloop_lag_seconds: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
};

const types = (text) => Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
const samples = (text, name) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

function setup(opts) {
  const registry = new Registry();
  const metrics = new ProxyMetrics(registry, opts);
  return { registry, metrics };
}

test('the content type is the exact 0.0.4 string Prometheus 3 parses', () => {
  assert.equal(CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
});

test('every metric of INTERFACE.md is rendered with its type, and nothing else', (t) => {
  const { registry, metrics } = setup();
  const proc = registerProcessMetrics(registry);
  t.after(() => proc.close());
  metrics.requestFinished('POST', '/v1/chat/completions', 200, 1.5, 0.3);
  metrics.inFlightInc();
  metrics.attempt('gpu-a', 'ok');
  metrics.retry('connect_error');
  metrics.rateLimited('tokens');
  metrics.tokens('gpt-4o', 10, 20);
  metrics.clientTokens('alice', 10, 20);
  assert.deepEqual(types(registry.render()), INTERFACE);
});

test('a finished request counts once by method, endpoint and status, and feeds both histograms', () => {
  const { registry, metrics } = setup();
  metrics.requestFinished('POST', '/v1/chat/completions', 200, 0.75, 0.2);
  metrics.requestFinished('POST', '/v1/chat/completions', 200, 12, null);
  metrics.requestFinished('GET', '/v1/models', 502, 0.004, 0.004);
  const text = registry.render();
  assert.deepEqual(samples(text, 'openai_proxy_requests_total'), [
    'openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"} 2',
    'openai_proxy_requests_total{method="GET",endpoint="/v1/models",status="502"} 1',
  ]);
  assert.match(text, /^openai_proxy_request_duration_seconds_bucket\{endpoint="\/v1\/chat\/completions",le="1"\} 1$/m);
  assert.match(text, /^openai_proxy_request_duration_seconds_count\{endpoint="\/v1\/chat\/completions"\} 2$/m);
  assert.match(text, /^openai_proxy_request_duration_seconds_sum\{endpoint="\/v1\/chat\/completions"\} 12.75$/m);
  // No first byte, no TTFB observation: the chat endpoint's TTFB count stays 1.
  assert.match(text, /^openai_proxy_time_to_first_byte_seconds_count\{endpoint="\/v1\/chat\/completions"\} 1$/m);
  assert.match(text, /^openai_proxy_time_to_first_byte_seconds_bucket\{endpoint="\/v1\/models",le="0.005"\} 1$/m);
});

test('a TTFB series appears only once a request had a first byte; bad durations are dropped, not thrown', () => {
  const { registry, metrics } = setup();
  metrics.requestFinished('POST', '/v1/embeddings', 504, NaN, null);
  let text = registry.render();
  assert.equal(samples(text, 'openai_proxy_time_to_first_byte_seconds_count').length, 0);
  assert.match(text, /^openai_proxy_request_duration_seconds_count\{endpoint="\/v1\/embeddings"\} 0$/m);
  assert.match(text, /^openai_proxy_requests_total\{method="POST",endpoint="\/v1\/embeddings",status="504"\} 1$/m);
  metrics.requestFinished('POST', '/v1/embeddings', 200, 0.1, Infinity);
  assert.equal(samples(registry.render(), 'openai_proxy_time_to_first_byte_seconds_count').length, 0);
  metrics.requestFinished('POST', '/v1/embeddings', 200, 0.1, 0.05);
  text = registry.render();
  assert.equal(samples(text, 'openai_proxy_time_to_first_byte_seconds_count').length, 1, 'created on the first non-null TTFB');
});

test('method and status label values are bounded', () => {
  const { registry, metrics } = setup();
  metrics.requestFinished('BREW', '/v1/x', 200, 0.1, null);
  metrics.requestFinished('get', '/v1/x', 200, 0.1, null);
  metrics.requestFinished('PATCH', '/v1/x', 499, 0.1, null);
  metrics.requestFinished('GET', '/v1/x', 0, 0.1, null);
  metrics.requestFinished('GET', '/v1/x', 200.5, 0.1, null);
  assert.deepEqual(samples(registry.render(), 'openai_proxy_requests_total'), [
    'openai_proxy_requests_total{method="OTHER",endpoint="/v1/x",status="200"} 2',
    'openai_proxy_requests_total{method="PATCH",endpoint="/v1/x",status="499"} 1',
    'openai_proxy_requests_total{method="GET",endpoint="/v1/x",status="other"} 2',
  ]);
});

test('in-flight goes up and down; rate-limited counts', () => {
  const { registry, metrics } = setup();
  assert.deepEqual(samples(registry.render(), 'openai_proxy_in_flight_requests'), ['openai_proxy_in_flight_requests 0']);
  metrics.inFlightInc();
  metrics.inFlightInc();
  metrics.inFlightDec();
  metrics.rateLimited('requests');
  metrics.rateLimited('parallel');
  metrics.rateLimited('parallel');
  const text = registry.render();
  assert.deepEqual(samples(text, 'openai_proxy_in_flight_requests'), ['openai_proxy_in_flight_requests 1']);
  assert.deepEqual(samples(text, 'openai_proxy_rate_limited_total'), [
    'openai_proxy_rate_limited_total{reason="requests"} 1',
    'openai_proxy_rate_limited_total{reason="tokens"} 0',
    'openai_proxy_rate_limited_total{reason="parallel"} 2',
  ]);
});

test('every attempt outcome of an upstream is shown from its first scrape, at 0; a protocol error counts as a reset', () => {
  const { registry, metrics } = setup();
  metrics.addUpstream('gpu-a');
  metrics.attempt('gpu-a', 'timeout');
  metrics.attempt('gpu-a', 'timeout');
  metrics.attempt('gpu-a', 'http_5xx');
  metrics.attempt('gpu-a', 'protocol');
  metrics.attempt('gpu-a', 'bogus'); // not an outcome: ignored rather than a new series
  assert.deepEqual(samples(registry.render(), 'openai_proxy_upstream_attempts_total'), [
    'openai_proxy_upstream_attempts_total{upstream="gpu-a",outcome="ok"} 0',
    'openai_proxy_upstream_attempts_total{upstream="gpu-a",outcome="connect_error"} 0',
    'openai_proxy_upstream_attempts_total{upstream="gpu-a",outcome="timeout"} 2',
    'openai_proxy_upstream_attempts_total{upstream="gpu-a",outcome="reset"} 1',
    'openai_proxy_upstream_attempts_total{upstream="gpu-a",outcome="http_5xx"} 1',
  ]);
});

test("each upstream's breaker state gauge has exactly one 1: closed at first, then the current state", () => {
  const { registry, metrics } = setup();
  metrics.addUpstream('gpu-a');
  metrics.addUpstream('gpu-b');
  const state = () => samples(registry.render(), 'openai_proxy_circuit_breaker_state');
  assert.deepEqual(state(), [
    'openai_proxy_circuit_breaker_state{upstream="gpu-a",state="closed"} 1',
    'openai_proxy_circuit_breaker_state{upstream="gpu-a",state="open"} 0',
    'openai_proxy_circuit_breaker_state{upstream="gpu-a",state="half_open"} 0',
    'openai_proxy_circuit_breaker_state{upstream="gpu-b",state="closed"} 1',
    'openai_proxy_circuit_breaker_state{upstream="gpu-b",state="open"} 0',
    'openai_proxy_circuit_breaker_state{upstream="gpu-b",state="half_open"} 0',
  ]);
  for (const s of ['open', 'half_open', 'closed', 'open']) {
    metrics.breakerState('gpu-a', s);
    const now = state().filter((l) => l.includes('gpu-a'));
    assert.equal(now.filter((l) => l.endsWith(' 1')).length, 1);
    assert.ok(now.includes(`openai_proxy_circuit_breaker_state{upstream="gpu-a",state="${s}"} 1`));
  }
  assert.ok(state().includes('openai_proxy_circuit_breaker_state{upstream="gpu-b",state="closed"} 1'), 'the other upstream is untouched');
});

test('retry reasons are counted, and fold into other beyond 20 distinct reasons', () => {
  const { registry, metrics } = setup();
  metrics.retry('connect_error');
  metrics.retry('connect_error');
  for (let i = 0; i < 25; i++) metrics.retry(`r${i}`);
  const lines = samples(registry.render(), 'openai_proxy_retries_total');
  assert.equal(lines[0], 'openai_proxy_retries_total{reason="connect_error"} 2');
  assert.equal(lines.length, 21);
  assert.equal(lines.at(-1), 'openai_proxy_retries_total{reason="other"} 6');
});

test('tokens count by model and kind; a missing model is unknown; beyond maxModels models fold into other', () => {
  const { registry, metrics } = setup({ maxModels: 2 });
  metrics.tokens('llama-3', 100, 20);
  metrics.tokens('qwen', 5, 5);
  metrics.tokens('mistral', 1, 2); // third distinct model: over the cap
  metrics.tokens('phi', 3, 4);
  metrics.tokens('llama-3', 1, 1); // an accepted model keeps its own series
  metrics.tokens(null, 7, 0);
  metrics.tokens('', 1, 0);
  metrics.tokens('qwen', -5, Number.NaN); // junk counts from the upstream are ignored
  assert.deepEqual(samples(registry.render(), 'openai_proxy_tokens_total'), [
    'openai_proxy_tokens_total{model="llama-3",kind="prompt"} 101',
    'openai_proxy_tokens_total{model="llama-3",kind="completion"} 21',
    'openai_proxy_tokens_total{model="qwen",kind="prompt"} 5',
    'openai_proxy_tokens_total{model="qwen",kind="completion"} 5',
    'openai_proxy_tokens_total{model="other",kind="prompt"} 4',
    'openai_proxy_tokens_total{model="other",kind="completion"} 6',
    'openai_proxy_tokens_total{model="unknown",kind="prompt"} 8',
    'openai_proxy_tokens_total{model="unknown",kind="completion"} 0',
  ]);
});

test('the default model cap is 50; overlong or control-character names fold into other without using the cap', () => {
  const { registry, metrics } = setup();
  metrics.tokens('x'.repeat(129), 1, 1);
  metrics.tokens('bad\nname', 1, 1);
  for (let i = 0; i < 60; i++) metrics.tokens(`m${i}`, 1, 1);
  const lines = samples(registry.render(), 'openai_proxy_tokens_total');
  assert.equal(lines.length, 2 * 51);
  assert.ok(lines.includes('openai_proxy_tokens_total{model="m49",kind="prompt"} 1'));
  assert.ok(lines.includes('openai_proxy_tokens_total{model="other",kind="prompt"} 12'));
});

test('CappedLabels refuses a bad cap and reports how many values it kept', () => {
  assert.throws(() => new CappedLabels(-1, (v) => v), /max must be an integer >= 0/);
  assert.throws(() => new CappedLabels(1.5, (v) => v), RangeError);
  const c = new CappedLabels(0, (v) => `series:${v}`);
  assert.equal(c.get('a'), `series:${OTHER}`);
  assert.equal(c.size, 0);
});

test('latency buckets are LLM-sized: strictly increasing, from 5 ms to 10 minutes', () => {
  for (const b of [LATENCY_BUCKETS, TTFB_BUCKETS]) {
    assert.equal(b[0], 0.005);
    for (let i = 1; i < b.length; i++) assert.ok(b[i] > b[i - 1]);
    assert.ok(Object.isFrozen(b));
  }
  assert.equal(LATENCY_BUCKETS.at(-1), 600);
});

test('process metrics are present, numeric and plausible', (t) => {
  const registry = new Registry();
  const proc = registerProcessMetrics(registry, { startTimeSec: 1700000000.5 });
  t.after(() => proc.close());
  const value = (text, name) => {
    const [line] = samples(text, name);
    assert.ok(line, `${name} missing`);
    return Number(line.slice(name.length + 1));
  };
  const text = registry.render();
  assert.match(text, /^process_start_time_seconds 1700000000.5$/m);
  assert.ok(value(text, 'process_cpu_seconds_total') > 0);
  assert.ok(value(text, 'process_resident_memory_bytes') > 1e6);
  assert.ok(value(text, 'nodejs_heap_size_used_bytes') > 1e5);
  const lag = value(text, 'nodejs_eventloop_lag_seconds');
  assert.ok(lag >= 0 && Number.isFinite(lag));
  // The CPU counter only grows between scrapes.
  const cpu1 = value(text, 'process_cpu_seconds_total');
  for (let i = 0; i < 1e5; i++) Math.sqrt(i);
  assert.ok(value(registry.render(), 'process_cpu_seconds_total') >= cpu1);
});

test('the default start time is the process start, and close() stops the scrape-time reads', () => {
  const registry = new Registry();
  const proc = registerProcessMetrics(registry);
  const start = Number(samples(registry.render(), 'process_start_time_seconds')[0].split(' ')[1]);
  const expected = Date.now() / 1000 - process.uptime();
  assert.ok(Math.abs(start - expected) < 5, `${start} vs ${expected}`);
  proc.close();
  proc.close(); // idempotent
  const frozen = samples(registry.render(), 'process_cpu_seconds_total');
  for (let i = 0; i < 1e6; i++) Math.sqrt(i);
  assert.deepEqual(samples(registry.render(), 'process_cpu_seconds_total'), frozen);
});

test('event-loop lag is the mean delay beyond the 20 ms sampling interval, 0 without samples', () => {
  assert.equal(meanLagSeconds(0, NaN), 0);
  assert.equal(meanLagSeconds(3, NaN), 0);
  assert.equal(meanLagSeconds(10, 20e6), 0, 'an idle loop samples exactly the interval');
  assert.equal(meanLagSeconds(10, 19e6), 0, 'timer jitter below the interval is not negative lag');
  assert.equal(meanLagSeconds(10, 45e6), 0.025);
});

test('queue depth and lost request-log lines are read at scrape time from their owners', () => {
  const registry = new Registry();
  const src = { depth: 3, dropped: 0 };
  new ProxyMetrics(registry, {}, { queueDepth: () => src.depth, requestLogDropped: () => src.dropped, upstreams: () => [] });
  let text = registry.render();
  assert.deepEqual(samples(text, 'openai_proxy_queue_depth'), ['openai_proxy_queue_depth 3']);
  assert.deepEqual(samples(text, 'openai_proxy_request_log_dropped_total'), ['openai_proxy_request_log_dropped_total 0']);
  src.depth = 0;
  src.dropped = 7;
  text = registry.render();
  assert.deepEqual(samples(text, 'openai_proxy_queue_depth'), ['openai_proxy_queue_depth 0']);
  assert.deepEqual(samples(text, 'openai_proxy_request_log_dropped_total'), ['openai_proxy_request_log_dropped_total 7']);
  registry.render();
  assert.deepEqual(samples(registry.render(), 'openai_proxy_request_log_dropped_total'), ['openai_proxy_request_log_dropped_total 7'], 'counted once, not per scrape');
});

test('per upstream: in flight and up read at scrape time; a removed upstream takes every series of its own with it', () => {
  const registry = new Registry();
  const fleet = [
    { name: 'gpu-a', inFlight: 3, up: true },
    { name: 'gpu-b', inFlight: 0, up: false },
  ];
  const metrics = new ProxyMetrics(registry, {}, { queueDepth: () => 0, requestLogDropped: () => 0, upstreams: () => fleet });
  for (const u of fleet) metrics.addUpstream(u.name);
  let text = registry.render();
  assert.deepEqual(samples(text, 'openai_proxy_upstream_in_flight'), ['openai_proxy_upstream_in_flight{upstream="gpu-a"} 3', 'openai_proxy_upstream_in_flight{upstream="gpu-b"} 0']);
  assert.deepEqual(samples(text, 'openai_proxy_upstream_up'), ['openai_proxy_upstream_up{upstream="gpu-a"} 1', 'openai_proxy_upstream_up{upstream="gpu-b"} 0']);
  fleet.pop();
  metrics.removeUpstream('gpu-b');
  text = registry.render();
  assert.ok(!text.includes('gpu-b'), 'no series of gpu-b is left');
  assert.equal(samples(text, 'openai_proxy_upstream_attempts_total').length, 5);
});

test("a key id's tokens are counted by kind, under its id", () => {
  const { registry, metrics } = setup();
  metrics.clientTokens('alice', 12, 30);
  metrics.clientTokens('alice', 3, 5);
  metrics.clientTokens('bob', 1, 1);
  assert.deepEqual(samples(registry.render(), 'openai_proxy_client_tokens_total'), [
    'openai_proxy_client_tokens_total{client="alice",kind="prompt"} 15',
    'openai_proxy_client_tokens_total{client="alice",kind="completion"} 35',
    'openai_proxy_client_tokens_total{client="bob",kind="prompt"} 1',
    'openai_proxy_client_tokens_total{client="bob",kind="completion"} 1',
  ]);
});
