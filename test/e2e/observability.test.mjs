// Metrics, /stats and the audit log of the real process, checked against what the fake
// upstream actually did and counted.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, request, json, logLines, waitFor, waitForStats } from './helpers.mjs';

const SECRET = 'sk-test-SECRET-4242-do-not-log';

/** Parses Prometheus text into { 'name{labels}': value }. */
function samples(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

describe('observability after K requests', () => {
  const K = 12;
  let fake;
  let proxy;
  let upstreamUsage;
  before(async () => {
    fake = await startFakeUpstream({ chunkDelayMs: 1 });
    proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '1000' });
    upstreamUsage = { prompt: 0, completion: 0 };
    for (let i = 0; i < K; i++) {
      const stream = i % 2 === 0;
      const payload = { model: i % 3 === 0 ? 'fake-model-2' : 'fake-model', stream, messages: [{ role: 'user', content: `count these ${i} words please` }], ...(stream ? { stream_options: { include_usage: true } } : {}) };
      const r = await json(`${proxy.url}/v1/chat/completions`, payload, { headers: { authorization: `Bearer ${SECRET}`, cookie: `session=${SECRET}` } });
      assert.equal(r.status, 200);
      // the usage the upstream reported, from the client's side of the wire
      const text = r.body.toString();
      const usage = stream ? JSON.parse(text.split('\n\n').filter((e) => e.includes('"usage":{')).at(-1).slice(6)).usage : JSON.parse(text).usage;
      upstreamUsage.prompt += usage.prompt_tokens;
      upstreamUsage.completion += usage.completion_tokens;
    }
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  test('/metrics: request counter, histogram counts and token totals equal K and the upstream usage', async () => {
    const r = await request(`${proxy.url}/metrics`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const m = samples(r.body.toString());
    assert.equal(m['openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"}'], K);
    assert.equal(m['openai_proxy_request_duration_seconds_count{endpoint="/v1/chat/completions"}'], K);
    assert.equal(m['openai_proxy_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"}'], K);
    assert.equal(m['openai_proxy_time_to_first_byte_seconds_count{endpoint="/v1/chat/completions"}'], K);
    // one upstream: its name is host:port of UPSTREAM_URL
    const upstream = new URL(fake.url).host;
    assert.equal(m[`openai_proxy_upstream_attempts_total{upstream="${upstream}",outcome="ok"}`], K);
    assert.equal(m['openai_proxy_in_flight_requests'], 0);
    assert.equal(m[`openai_proxy_circuit_breaker_state{upstream="${upstream}",state="closed"}`], 1);
    assert.equal(m[`openai_proxy_upstream_up{upstream="${upstream}"}`], 1);
    assert.equal(m[`openai_proxy_upstream_in_flight{upstream="${upstream}"}`], 0);
    const tokens = (kind) => Object.entries(m).filter(([k]) => k.startsWith('openai_proxy_tokens_total{') && k.includes(`kind="${kind}"`)).reduce((a, [, v]) => a + v, 0);
    assert.equal(tokens('prompt'), upstreamUsage.prompt);
    assert.equal(tokens('completion'), upstreamUsage.completion);
    assert.ok(m['openai_proxy_tokens_total{model="fake-model-2",kind="completion"}'] > 0);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) assert.ok(Number.isFinite(m[name]), name);
  });

  test('the request log has one line per request with every field, model and tokens filled', async () => {
    const lines = await waitFor(() => {
      const l = logLines(proxy.logDir, 'requests.log');
      return l.length >= K ? l : null;
    });
    assert.equal(lines.length, K);
    const fields = ['ts', 'request_id', 'client', 'method', 'path', 'model', 'stream', 'status', 'duration_ms', 'ttfb_ms', 'attempts', 'upstream', 'bytes_in', 'bytes_out', 'prompt_tokens', 'completion_tokens', 'tokens_charged', 'error'];
    for (const l of lines) assert.deepEqual(Object.keys(l), fields);
    assert.equal(lines.reduce((a, l) => a + l.prompt_tokens, 0), upstreamUsage.prompt);
    assert.equal(lines.reduce((a, l) => a + l.completion_tokens, 0), upstreamUsage.completion);
    assert.equal(lines.filter((l) => l.stream).length, K / 2);
    assert.equal(lines[0].model, 'fake-model-2');
    assert.ok(lines.every((l) => l.status === 200 && l.attempts === 1 && l.error === null && l.bytes_out > 0 && l.client === '127.0.0.1'));
    assert.ok(lines.every((l) => l.upstream === new URL(fake.url).host), 'the upstream of the last attempt, by name');
    assert.ok(lines.every((l) => l.tokens_charged === l.prompt_tokens + l.completion_tokens), 'charged what the usage says, prompt and completion');
  });

  test('/stats sums it up for a person', async () => {
    const s = JSON.parse((await request(`${proxy.url}/stats`)).body);
    assert.equal(s.requests.by_endpoint['/v1/chat/completions'], K);
    assert.equal(s.requests.by_class['2xx'], K);
    assert.equal(s.latency_ms.count, K);
    assert.ok(s.latency_ms.p50 <= s.latency_ms.p99);
    assert.equal(s.tokens['fake-model'].prompt + s.tokens['fake-model-2'].prompt, upstreamUsage.prompt);
    assert.equal(s.streams.complete, K / 2);
  });

  test('no log file, /stats or /metrics holds the client key', async () => {
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length >= K);
    for (const f of readdirSync(proxy.logDir)) assert.ok(!readFileSync(join(proxy.logDir, f), 'utf8').includes(SECRET), f);
    assert.ok(!(await request(`${proxy.url}/stats`)).body.toString().includes(SECRET));
    assert.ok(!(await request(`${proxy.url}/metrics`)).body.toString().includes(SECRET));
    assert.ok(!proxy.stdout().includes(SECRET));
  });

  test('the real scrape passes promtool check metrics', async (t) => {
    if (spawnSync('promtool', ['--version']).error) return t.skip('promtool not installed (Debian package prometheus)');
    const text = (await request(`${proxy.url}/metrics`)).body;
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });
});

test('SIGHUP after a rename: the next lines go to a fresh file', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url });
  try {
    await request(`${proxy.url}/v1/models`);
    const log = join(proxy.logDir, 'requests.log');
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 1);
    renameSync(log, `${log}.1`);
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'log files reopened'));
    await request(`${proxy.url}/v1/models`);
    await request(`${proxy.url}/v1/models`);
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 2));
    assert.equal(readFileSync(`${log}.1`, 'utf8').trim().split('\n').length, 1);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('METRICS_ENABLED=false: /metrics is 404; REQUEST_LOG_ENABLED=false: no requests.log', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, METRICS_ENABLED: 'false', REQUEST_LOG_ENABLED: 'false' });
  try {
    assert.equal((await request(`${proxy.url}/metrics`)).status, 404);
    assert.equal((await request(`${proxy.url}/v1/models`)).status, 200);
    // the request is recorded (counted, and its log line, if any, handed to the log) when it ends
    const s = await waitForStats(proxy, (st) => st.requests.total === 1);
    assert.equal(s.requests.total, 1, 'the request was recorded');
    assert.equal(s.request_log.enabled, false);
    assert.ok(!readdirSync(proxy.logDir).includes('requests.log'));
  } finally {
    await proxy.stop();
    await fake.close();
  }
});
