// The request path's defects of issue 11, reproduced against the real proxy and the fake
// upstream on 127.0.0.1 (the orchestration table covers them without sockets), and what
// the lifetime made visible: the phase and the queue in /stats and /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, json, request, logLines, waitFor } from './helpers.mjs';

const CHAT = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] };
const stats = async (proxy) => JSON.parse((await request(`${proxy.url}/stats`)).body);
const health = async (proxy) => JSON.parse((await request(`${proxy.url}/health`)).body);

/** Starts a chat request the test can abandon: { done, leave() }. */
function leavable(url, headers = {}) {
  const body = JSON.stringify(CHAT);
  const req = http.request(`${url}/v1/chat/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } });
  const done = new Promise((resolve) => {
    req.on('response', (res) => (res.resume(), res.on('end', () => resolve(res.statusCode))));
    req.on('error', () => resolve('closed'));
  });
  req.end(body);
  return { done, leave: () => req.destroy() };
}

test('defect 1: a half-open probe written to a pooled connection the upstream had closed is resent, and its 200 closes the breaker', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', MAX_RETRIES: '0', CIRCUIT_BREAKER_THRESHOLD: '3', CIRCUIT_BREAKER_TIMEOUT: '0.3' });
  try {
    assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 200, 'a warm pooled connection');
    fake.fault({ action: 'status', status: 503, times: 3 });
    for (let i = 0; i < 3; i++) assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 503);
    assert.equal((await health(proxy)).circuit_breaker.state, 'open');
    assert.ok(await waitFor(async () => (await health(proxy)).circuit_breaker.state === 'half_open', 3000), 'the open period ends');
    const opened = fake.stats.connections;
    // the probe goes out on the pooled connection; the upstream drops it on arrival
    fake.fault({ action: 'close' });
    const probe = await json(`${proxy.url}/v1/chat/completions`, CHAT);
    assert.equal(probe.status, 200, 'resent on a new connection');
    assert.equal(fake.stats.connections, opened + 1, 'the resend used a new connection');
    assert.equal((await health(proxy)).circuit_breaker.state, 'closed', "the resend's verdict is the probe's");
    for (let i = 0; i < 3; i++) assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 200);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

/** An upstream that sends a 503 head and the start of its body, then nothing. */
async function stallingUpstream() {
  const sockets = new Set();
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.once('data', () => sock.write('HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"error":'));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    open: () => [...sockets].filter((s) => !s.destroyed).length,
    closed: () => [...sockets].filter((s) => s.destroyed || s.readableEnded).length,
    close: () => (sockets.forEach((s) => s.destroy()), srv.close()),
  };
}

test('defect 2: a 503 whose body stalls is cut at TIMEOUT with 504, its upstream connection closed and its slot given back', async () => {
  const up = await stallingUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: up.url, RATE_LIMIT_ENABLED: 'false', TIMEOUT: '0.5', MAX_CONCURRENT_REQUESTS: '1' });
  try {
    const t0 = performance.now();
    const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
    const took = performance.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).error.code, 'upstream_timeout');
    assert.ok(took < 3000, `answered after ${took} ms (TIMEOUT is 0.5 s)`);
    assert.ok(await waitFor(() => up.closed() === 1), 'the proxy closed the stalled upstream connection');
    const s = await stats(proxy);
    assert.equal(s.queue.slots_in_use, 0);
    assert.equal(s.in_flight, 0);
  } finally {
    await proxy.stop();
    up.close();
  }
});

test('defect 2: a client that leaves while a stalled 503 body is held is 499, and the upstream connection is closed', async () => {
  const up = await stallingUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: up.url, RATE_LIMIT_ENABLED: 'false', TIMEOUT: '30' });
  try {
    const c = leavable(proxy.url);
    assert.ok(await waitFor(async () => (await stats(proxy)).in_flight_by_phase.holding_error === 1), 'the proxy holds the 503 body');
    c.leave();
    assert.ok(await waitFor(() => up.closed() === 1), 'the upstream connection is closed at once');
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 1));
    const [rec] = logLines(proxy.logDir, 'requests.log');
    assert.equal(rec.status, 499);
    assert.equal(rec.error, 'client_gone');
  } finally {
    await proxy.stop();
    up.close();
  }
});

test('defect 3: a client that leaves during a retry backoff is 499 in the request log, not the 503', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', TIMEOUT: '30', RETRY_DELAY: '10', RETRY_MAX_DELAY: '10' });
  try {
    fake.fault({ action: 'status', status: 503, times: 5 });
    const c = leavable(proxy.url);
    assert.ok(await waitFor(async () => (await stats(proxy)).in_flight_by_phase.backoff === 1), 'the proxy backs off before its retry');
    c.leave();
    assert.equal(await c.done, 'closed');
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 1));
    const [rec] = logLines(proxy.logDir, 'requests.log');
    assert.equal(rec.status, 499);
    assert.equal(rec.error, 'client_gone');
    assert.equal(rec.attempts, 1);
    assert.equal(fake.stats.attempts, 1, 'the retry never went out');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('the queue is visible: /stats and /metrics show a request waiting for a slot, and one that leaves the queue is 499', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '2', QUEUE_TIMEOUT: '30' });
  try {
    fake.fault({ action: 'hang' });
    const first = leavable(proxy.url);
    assert.ok(await waitFor(async () => (await stats(proxy)).queue.slots_in_use === 1));
    const second = leavable(proxy.url);
    assert.ok(await waitFor(async () => (await stats(proxy)).queue.depth === 1));
    const s = await stats(proxy);
    assert.equal(s.in_flight_by_phase.queued, 1);
    assert.equal(s.in_flight_by_phase.attempt, 1);
    const metrics = (await request(`${proxy.url}/metrics`)).body.toString();
    assert.match(metrics, /^openai_proxy_queue_depth 1$/m);
    assert.match(metrics, /^openai_proxy_request_log_dropped_total 0$/m);
    second.leave();
    assert.ok(await waitFor(async () => (await stats(proxy)).queue.depth === 0), 'a client that leaves leaves the queue');
    first.leave();
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 2));
    const records = logLines(proxy.logDir, 'requests.log');
    assert.deepEqual(records.map((r) => r.status), [499, 499]);
    assert.deepEqual(records.map((r) => r.attempts).sort(), [0, 1]);
    assert.equal((await stats(proxy)).request_log.dropped_lines, 0);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});
