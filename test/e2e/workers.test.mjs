// WORKERS=2 with the real compiled proxy: requests spread over both workers, one
// requests.log line per request, /metrics and /stats summed over the workers whichever one
// takes the scrape, a killed worker replaced while the service keeps answering, one
// SIGTERM draining every worker. Each wait is on an event (a log line, an exit, a stats
// field), never a fixed sleep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startProxy, runProxy, request, json, logLines, waitFor, stats, sseEvents, deadPort, MAIN } from './helpers.mjs';

/** Runs the proxy until it exits by itself (killed after 30 s): { code, stdout, stderr }. */
function runToExit(env) {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, NODE_V8_COVERAGE: process.env.NODE_V8_COVERAGE ?? '', HOST: '127.0.0.1', LOG_DIR: mkdtempSync(join(tmpdir(), 'oproxy-')), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const CHAT = { model: 'fake-model', messages: [{ role: 'user', content: 'hello there' }] };

/** Lines of the proxy's stdout (the primary writes every process's application log there). */
const stdoutLines = (proxy) => proxy.stdout().split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** Starts the proxy with WORKERS=2 and waits until both workers listen. */
async function twoWorkers(env = {}) {
  const proxy = await startProxy({ WORKERS: '2', ...env });
  const both = await waitFor(() => new Set(stdoutLines(proxy).filter((l) => l.msg === 'listening').map((l) => l.worker)).size === 2, 10_000);
  assert.ok(both, `both workers listening:\n${proxy.stdout()}${proxy.stderr()}`);
  return proxy;
}

/** The value of one sample line of a scrape (its name with labels, exactly), or undefined. */
function sample(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Sends n chat completions, each on a fresh connection (so round-robin spreads them). */
async function chats(url, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await json(`${url}/v1/chat/completions`, CHAT, { agent: false }));
  return out;
}

test('WORKERS=2: requests are served by both workers; requests.log has one whole line per request; /metrics and /stats sum both', async () => {
  const fake = await startFakeUpstream();
  const proxy = await twoWorkers({ UPSTREAM_URL: fake.url });
  try {
    const N = 12;
    const answers = await chats(proxy.url, N);
    assert.deepEqual(answers.map((a) => a.status), new Array(N).fill(200));
    const lines = await waitFor(() => {
      const l = logLines(proxy.logDir, 'requests.log');
      return l.length >= N && l;
    }, 5000);
    assert.equal(lines.length, N, 'exactly one line per request');
    assert.deepEqual(new Set(lines.map((l) => l.request_id)).size, N);
    const byWorker = {};
    for (const l of lines) byWorker[l.worker] = (byWorker[l.worker] ?? 0) + 1;
    assert.deepEqual(Object.keys(byWorker).sort(), ['1', '2'], `both workers served: ${JSON.stringify(byWorker)}`);
    const prompt = lines.reduce((n, l) => n + l.prompt_tokens, 0);
    const completion = lines.reduce((n, l) => n + l.completion_tokens, 0);

    // several scrapes: each lands on either worker, and each must show the whole sum
    for (let i = 0; i < 4; i++) {
      const m = (await request(`${proxy.url}/metrics`, { agent: false })).body.toString();
      assert.equal(sample(m, 'openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"}'), N, m);
      assert.equal(sample(m, 'openai_proxy_request_duration_seconds_count{endpoint="/v1/chat/completions"}'), N);
      assert.equal(sample(m, 'openai_proxy_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"}'), N);
      assert.equal(sample(m, 'openai_proxy_tokens_total{model="fake-model",kind="prompt"}'), prompt);
      assert.equal(sample(m, 'openai_proxy_tokens_total{model="fake-model",kind="completion"}'), completion);
      assert.equal(sample(m, 'openai_proxy_upstream_attempts_total{upstream="' + new URL(fake.url).host + '",outcome="ok"}'), N);
      assert.equal(sample(m, 'openai_proxy_workers'), 2);
      assert.equal(sample(m, 'openai_proxy_worker_restarts_total'), 0);
      assert.equal(sample(m, 'openai_proxy_scrape_missing_workers'), 0);
      assert.equal(sample(m, 'openai_proxy_limits_failed_open_total'), 0, 'the primary answered every limits call');
      assert.equal(sample(m, 'openai_proxy_in_flight_requests'), 0);
      for (const w of ['primary', '1', '2']) assert.ok(sample(m, `process_resident_memory_bytes{worker="${w}"}`) > 0, `memory of ${w} shown apart`);
      assert.equal(m.match(/^# TYPE openai_proxy_requests_total /gm).length, 1, 'one family, not one per worker');

      const s = await stats(proxy);
      assert.equal(s.requests.total, N);
      assert.equal(s.requests.by_status['200'], N);
      assert.equal(s.tokens['fake-model'].prompt, prompt);
      assert.equal(s.latency_ms.count, N, 'percentiles over the pooled samples of both');
      assert.equal(s.workers.alive, 2);
      assert.deepEqual(s.workers.missing, []);
      assert.equal(s.workers.requests_by_worker['1'] + s.workers.requests_by_worker['2'], N);
      assert.deepEqual(s.workers.requests_by_worker, Object.fromEntries(Object.entries(byWorker).map(([k, v]) => [k, v])));
    }
  } finally {
    assert.equal((await proxy.stop()).code, 0);
    await fake.close();
  }
});

test('WORKERS=2: a worker killed with SIGKILL is replaced, the service keeps answering, counters never go down', async () => {
  const fake = await startFakeUpstream();
  const proxy = await twoWorkers({ UPSTREAM_URL: fake.url });
  try {
    await chats(proxy.url, 6);
    const before = sample((await request(`${proxy.url}/metrics`)).body.toString(), 'openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"}');
    assert.equal(before, 6);
    const victim = stdoutLines(proxy).find((l) => l.msg === 'worker started' && l.worker === 1);
    process.kill(victim.pid, 'SIGKILL');
    const replaced = await waitFor(() => stdoutLines(proxy).find((l) => l.msg === 'worker exited; replacing it'), 5000);
    assert.ok(replaced, proxy.stdout());
    assert.equal(replaced.worker, 1);
    assert.equal(replaced.signal, 'SIGKILL');
    assert.ok(await waitFor(() => stdoutLines(proxy).some((l) => l.msg === 'listening' && l.worker === 3), 5000), 'worker 3 took its place');
    const answers = await chats(proxy.url, 6);
    assert.deepEqual(answers.map((a) => a.status), new Array(6).fill(200));
    const m = (await request(`${proxy.url}/metrics`)).body.toString();
    assert.equal(sample(m, 'openai_proxy_worker_restarts_total'), 1);
    assert.equal(sample(m, 'openai_proxy_workers'), 2);
    // worker 1's counts seen at the last scrape stay in the sum after it died
    assert.equal(sample(m, 'openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"}'), 12);
    const s = await stats(proxy);
    assert.equal(s.workers.restarts, 1);
    assert.deepEqual(Object.keys(s.workers.requests_by_worker).sort(), ['2', '3']);
  } finally {
    assert.equal((await proxy.stop()).code, 0);
    await fake.close();
  }
});

/** A streamed chat completion; resolves { status, body, complete } at its end. */
function stream(url, chunks, delayMs, onData) {
  return new Promise((resolve) => {
    const parts = [];
    const req = http.request(`${url}/v1/chat/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-fake-chunks': String(chunks), 'x-fake-chunk-delay-ms': String(delayMs) } }, (res) => {
      res.on('data', (c) => (parts.push(c), onData()));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), complete: true }));
      res.on('error', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), complete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), complete: false }));
    req.end(JSON.stringify({ ...CHAT, stream: true }));
  });
}

test('WORKERS=2: one SIGTERM drains every worker: streams in flight on both finish, then the primary exits 0', async () => {
  const fake = await startFakeUpstream();
  const proxy = await twoWorkers({ UPSTREAM_URL: fake.url, SHUTDOWN_TIMEOUT: '10' });
  try {
    let flowing = 0;
    const seen = new Set();
    const streams = [0, 1, 2, 3].map((i) => stream(proxy.url, 20, 100, () => !seen.has(i) && (seen.add(i), flowing++)));
    assert.ok(await waitFor(() => flowing === 4, 5000), 'four streams flowing');
    const s = await stats(proxy);
    assert.equal(s.in_flight, 4, 'in flight summed over the workers');
    assert.deepEqual(Object.values(s.workers.requests_by_worker), [0, 0]);
    proxy.proc.kill('SIGTERM');
    const results = await Promise.all(streams);
    for (const r of results) {
      assert.equal(r.complete, true);
      assert.equal(sseEvents(r.body).at(-1).data, '[DONE]');
    }
    const { code } = await proxy.exited;
    assert.equal(code, 0);
    const lines = logLines(proxy.logDir, 'requests.log');
    assert.equal(lines.length, 4, 'every drained request logged once, none lost at exit');
    assert.deepEqual(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'the streams were on both workers');
    const msgs = logLines(proxy.logDir, 'proxy.log');
    assert.equal(msgs.filter((l) => l.msg === 'stopped').length, 2, 'both workers drained');
    assert.ok(msgs.some((l) => l.msg === 'draining the workers'));
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('WORKERS=2: SIGHUP makes the primary reopen requests.log (logrotate), lines go to the new file', async () => {
  const fake = await startFakeUpstream();
  const proxy = await twoWorkers({ UPSTREAM_URL: fake.url });
  try {
    await chats(proxy.url, 2);
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 2, 5000));
    renameSync(join(proxy.logDir, 'requests.log'), join(proxy.logDir, 'requests.log.1'));
    proxy.proc.kill('SIGHUP');
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'log files reopened'), 5000));
    await chats(proxy.url, 3);
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 3, 5000));
    assert.equal(logLines(proxy.logDir, 'requests.log.1').length, 2);
  } finally {
    assert.equal((await proxy.stop()).code, 0);
    await fake.close();
  }
});

test('WORKERS=2 with a bad variable exits 2 once, before any worker starts', async () => {
  const r = await runProxy({ WORKERS: '2', TIMEOUT: 'soon' });
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trim().split('\n'), ['config error: TIMEOUT="soon" is not accepted; expected a number of seconds > 0 (fractions allowed)']);
  assert.doesNotMatch(r.stdout, /worker started/);
  const bad = await runProxy({ WORKERS: 'many' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^config error: WORKERS="many" is not accepted; expected auto or an integer 1-256\n$/);
});

test('WORKERS=2 on a port already taken: the workers cannot listen, the primary exits 1 instead of restarting them forever', async () => {
  const blocker = http.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  try {
    // its own run, not runProxy's: that one sends SIGTERM after 5 s, which a loaded machine
    // can reach before two workers even started
    const r = await runToExit({ WORKERS: '2', PORT: String(blocker.address().port) });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
    assert.match(r.stdout, /worker failed before the service started; stopping/);
  } finally {
    blocker.close();
  }
});

test('WORKERS=2: a client limit holds across the workers (the rate once, not twice), and so does MAX_CONCURRENT_REQUESTS', async () => {
  const fake = await startFakeUpstream();
  const proxy = await twoWorkers({ UPSTREAM_URL: fake.url, RATE_LIMIT_REQUESTS: '6', RATE_LIMIT_WINDOW: '3600', MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '10' });
  try {
    // one slow stream holds the only slot; requests on fresh connections land on both workers
    const slow = json(`${proxy.url}/v1/chat/completions`, { ...CHAT, stream: true }, { agent: false, headers: { 'x-fake-chunks': '4', 'x-fake-chunk-delay-ms': '300' } });
    assert.ok(await waitFor(async () => (await stats(proxy)).queue.slots_in_use === 1, 5000), 'the stream took the slot');
    const queued = [json(`${proxy.url}/v1/chat/completions`, CHAT, { agent: false }), json(`${proxy.url}/v1/chat/completions`, CHAT, { agent: false })];
    // both wait behind the one slot, whichever worker took them: the cap is the cluster's
    const s = await waitFor(async () => {
      const st = await stats(proxy);
      return st.queue.depth === 2 && st;
    }, 5000);
    assert.ok(s, 'two requests queued behind one slot across the workers');
    assert.equal(s.queue.slots_in_use, 1);
    assert.equal((await slow).status, 200);
    assert.deepEqual((await Promise.all(queued)).map((r) => r.status), [200, 200]);
    // 3 of the 6 requests of the bucket are spent; 8 more: 3 pass, 5 are refused, over both workers
    const more = await chats(proxy.url, 8);
    assert.deepEqual(more.map((r) => r.status), [200, 200, 200, 429, 429, 429, 429, 429]);
    const lines = await waitFor(() => {
      const l = logLines(proxy.logDir, 'requests.log');
      return l.length >= 11 && l;
    }, 5000);
    const refusedBy = new Set(lines.filter((l) => l.status === 429).map((l) => l.worker));
    assert.deepEqual([...refusedBy].sort(), [1, 2], 'both workers refused: each saw the bucket the other spent');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('WORKERS=2: both workers killed at once: the primary lives on with none (nothing else holds it), replaces both, and answers again', async () => {
  const fake = await startFakeUpstream();
  // a fixed port: with none of its workers left the primary closes the shared socket, and
  // PORT=0 would give the replacements a new one (a real PORT is listened on again)
  const proxy = await twoWorkers({ UPSTREAM_URL: fake.url, PORT: String(await deadPort()) });
  try {
    const pids = stdoutLines(proxy).filter((l) => l.msg === 'worker started').map((l) => l.pid);
    assert.equal(pids.length, 2);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const back = await waitFor(() => new Set(stdoutLines(proxy).filter((l) => l.msg === 'listening' && l.worker > 2).map((l) => l.worker)).size === 2, 10_000);
    assert.ok(back, `two replacements listening:\n${proxy.stdout()}`);
    assert.equal(proxy.proc.exitCode, null, 'the primary is still running');
    const answers = await chats(proxy.url, 4);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200]);
  } finally {
    assert.equal((await proxy.stop()).code, 0);
    await fake.close();
  }
});
