// WebSocket upgrades against the real proxy: the same admission as any request (rate
// limit, breaker, concurrency cap), the same header hygiene as a forwarded request, a
// record in the request log, and an upstream written as an IPv6 literal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeUpstream, wsConnect } from '../../scripts/fake-upstream.mjs';
import { startProxy, json, request, logLines, waitFor, deadPort } from './helpers.mjs';

const CHAT = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] };
const wsUrl = (proxy) => `ws://127.0.0.1:${proxy.port}/v1/realtime?model=fake-model`;

/** The refusal of an upgrade the proxy did not let through: { status, headers, body }. */
async function refused(url, headers) {
  try {
    const ws = await wsConnect(url, { headers });
    await ws.close();
  } catch (err) {
    if (err.response) return { ...err.response, error: JSON.parse(err.response.body).error };
    throw err;
  }
  assert.fail('the upgrade was let through');
}

test('an upgrade spends the client bucket: over the rate limit it gets 429 with the rate headers', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_REQUESTS: '1', RATE_LIMIT_WINDOW: '60' });
  try {
    const ws = await wsConnect(wsUrl(proxy));
    await ws.close();
    const r = await refused(wsUrl(proxy));
    assert.equal(r.status, 429);
    assert.equal(r.error.code, 'rate_limit_exceeded');
    assert.equal(r.headers['x-ratelimit-limit-requests'], '1');
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal(fake.stats.wsConnections, 1, 'the refused one never reached the upstream');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('an open breaker refuses upgrades too: 503 circuit_open, the upstream not asked', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', MAX_RETRIES: '0', CIRCUIT_BREAKER_THRESHOLD: '1', CIRCUIT_BREAKER_TIMEOUT: '60' });
  try {
    fake.fault({ action: 'status', status: 500 });
    assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 500);
    const seen = fake.stats.attempts;
    const r = await refused(wsUrl(proxy));
    assert.equal(r.status, 503);
    assert.equal(r.error.code, 'circuit_open');
    assert.ok(r.headers['retry-after']);
    assert.equal(fake.stats.attempts, seen);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('an open tunnel holds a concurrency slot: with one slot and no queue the next request is refused until it closes', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '0' });
  try {
    const ws = await wsConnect(wsUrl(proxy));
    const second = await refused(wsUrl(proxy));
    assert.equal(second.status, 503);
    assert.equal(second.error.code, 'queue_full');
    assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 503, 'an HTTP request waits behind the tunnel as well');
    ws.send('still here');
    assert.equal((await ws.next()).data.toString(), 'still here');
    await ws.close();
    const stats = async () => JSON.parse((await request(`${proxy.url}/stats`)).body);
    assert.ok(await waitFor(async () => (await stats()).queue.slots_in_use === 0), 'the slot is given back when the tunnel closes');
    const again = await wsConnect(wsUrl(proxy));
    await again.close();
    assert.equal(fake.stats.wsConnections, 2);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('the handshake gets the forwarded-header hygiene: X-Forwarded-For by TRUST_PROXY, x-request-id, Host of the upstream', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, TRUST_PROXY: 'true' });
  try {
    const ws = await wsConnect(wsUrl(proxy), { headers: { 'x-forwarded-for': '198.51.100.7', 'x-request-id': 'ws-req-1', 'proxy-authorization': 'secret' } });
    await ws.close();
    const seen = fake.stats.lastRequest.headers;
    assert.equal(seen['x-forwarded-for'], '198.51.100.7, 127.0.0.1', 'a trusted chain is appended to, as for HTTP requests');
    assert.equal(seen['x-request-id'], 'ws-req-1');
    assert.equal(seen.host, new URL(fake.url).host);
    assert.equal(seen['proxy-authorization'], undefined, 'hop-by-hop fields never pass');
    assert.equal(seen.upgrade?.toLowerCase(), 'websocket');
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 1);
    const [rec] = logLines(proxy.logDir, 'requests.log');
    assert.equal(rec.status, 101);
    assert.equal(rec.request_id, 'ws-req-1');
    assert.equal(rec.attempts, 1);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('an upstream refusing the handshake: its answer passes unchanged', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false' });
  try {
    fake.fault({ action: 'status', status: 403, message: 'not for you' });
    const r = await refused(wsUrl(proxy));
    assert.equal(r.status, 403);
    assert.equal(r.error.message, 'not for you');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('an upstream that cannot be reached, that drops the handshake, or never answers it: 503, 502, 504 on the socket, each in the record', async () => {
  const fake = await startFakeUpstream();
  const dead = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${await deadPort()}`, RATE_LIMIT_ENABLED: 'false' });
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', TIMEOUT: '0.5', CIRCUIT_BREAKER_THRESHOLD: '10' });
  try {
    const unreachable = await refused(wsUrl(dead));
    assert.equal(unreachable.status, 503);
    assert.equal(unreachable.error.code, 'upstream_unreachable');
    assert.equal(unreachable.headers['x-should-retry'], 'false');
    fake.fault({ action: 'close' });
    const dropped = await refused(wsUrl(proxy));
    assert.equal(dropped.status, 502);
    assert.equal(dropped.error.code, 'upstream_protocol_error');
    fake.fault({ action: 'hang' });
    const t0 = performance.now();
    const silent = await refused(wsUrl(proxy));
    assert.equal(silent.status, 504);
    assert.ok(performance.now() - t0 < 3000);
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 2);
    assert.deepEqual(logLines(proxy.logDir, 'requests.log').map((r) => [r.status, r.error]), [[502, 'upstream_protocol_error'], [504, 'upstream_timeout']]);
    const s = JSON.parse((await request(`${proxy.url}/stats`)).body);
    assert.equal(s.upstream_attempts.reset, 1);
    assert.equal(s.upstream_attempts.timeout, 1);
  } finally {
    await dead.stop();
    await proxy.stop();
    await fake.close();
  }
});

test('an upstream written as an IPv6 literal: requests and the WebSocket tunnel both reach it', async (t) => {
  let fake;
  try {
    fake = await startFakeUpstream({ host: '::1' });
  } catch (err) {
    return t.skip(`SKIP: cannot listen on [::1] here (${err.code ?? err.message}): no IPv6 loopback`);
  }
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false' });
  try {
    assert.match(fake.url, /^http:\/\/\[::1\]:\d+$/);
    assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 200);
    const ws = await wsConnect(wsUrl(proxy));
    ws.send('over v6');
    assert.equal((await ws.next()).data.toString(), 'over v6');
    await ws.close();
    assert.equal(fake.stats.wsConnections, 1);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});
