// Retries, deadlines, the breaker, the limiter and the concurrency gate, end to end: the
// compiled proxy against the fake LLM on 127.0.0.1, faults scripted per test.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, request, json, sseEvents, deadPort, waitFor, stats, health, waitForStats, waitForBreaker } from './helpers.mjs';

const CHAT = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] };

/** A fake and a proxy in front of it for one test. */
async function rig(env = {}, fakeOpts = {}) {
  const fake = await startFakeUpstream(fakeOpts);
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', ...env });
  return { fake, proxy, close: async () => (await proxy.stop(), await fake.close()) };
}

describe('retries', () => {
  test('two connections closed without an answer, then success: 200 after three attempts', async () => {
    const { fake, proxy, close } = await rig();
    try {
      fake.fault({ action: 'close', times: 2 });
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(r.status, 200);
      assert.equal(fake.stats.attempts, 3);
      const s = await stats(proxy);
      assert.equal(s.retries.by_reason.reset, 2);
      assert.equal(s.upstream_attempts.reset, 2);
      assert.equal(s.upstream_attempts.ok, 1);
    } finally {
      await close();
    }
  });

  test('503 twice then 200: the client sees only the 200', async () => {
    const { fake, proxy, close } = await rig();
    try {
      fake.fault({ action: 'status', status: 503, times: 2 });
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).object, 'chat.completion');
      assert.equal(fake.stats.attempts, 3);
      assert.equal((await stats(proxy)).retries.by_reason.http_503, 2);
    } finally {
      await close();
    }
  });

  test("the upstream's Retry-After is honoured when it fits the deadline", async () => {
    const { fake, proxy, close } = await rig({ TIMEOUT: '5' });
    try {
      fake.fault({ action: 'status', status: 503, retryAfter: 1 });
      const t0 = performance.now();
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      const waited = performance.now() - t0;
      assert.equal(r.status, 200);
      assert.equal(fake.stats.attempts, 2);
      assert.ok(waited >= 950, `waited ${waited} ms for Retry-After: 1`);
    } finally {
      await close();
    }
  });

  test('a Retry-After longer than the deadline is not waited for: the 503 passes through', async () => {
    const { fake, proxy, close } = await rig({ TIMEOUT: '2' });
    try {
      fake.fault({ action: 'status', status: 503, retryAfter: 120, message: 'overloaded, come back later' });
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '120');
      assert.equal(JSON.parse(r.body).error.message, 'overloaded, come back later');
      assert.equal(fake.stats.attempts, 1);
    } finally {
      await close();
    }
  });

  test('retries spent on 502s: the last upstream answer passes through with x-should-retry: false', async () => {
    const { fake, proxy, close } = await rig({ MAX_RETRIES: '2', CIRCUIT_BREAKER_THRESHOLD: '10' });
    try {
      fake.fault({ action: 'status', status: 502, times: 5, message: 'bad gateway upstream' });
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(r.status, 502);
      assert.equal(JSON.parse(r.body).error.message, 'bad gateway upstream');
      assert.equal(r.headers['x-should-retry'], 'false');
      assert.equal(fake.stats.attempts, 3);
    } finally {
      await close();
    }
  });

  test('4xx answers (an upstream 429 with its Retry-After) and 500/504 are never retried', async () => {
    const { fake, proxy, close } = await rig();
    try {
      fake.fault({ action: 'status', status: 429, retryAfter: 7, type: 'requests', code: 'rate_limit_exceeded' });
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '7');
      assert.equal(JSON.parse(r.body).error.code, 'rate_limit_exceeded');
      for (const status of [500, 504]) {
        fake.fault({ action: 'status', status });
        assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, status);
      }
      assert.equal(fake.stats.attempts, 3);
    } finally {
      await close();
    }
  });

  test('upstream down: 503 after the attempts and the backoff between them', async () => {
    const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${await deadPort()}`, MAX_RETRIES: '3', RETRY_DELAY: '0.05', RETRY_MAX_DELAY: '1', CIRCUIT_BREAKER_THRESHOLD: '10', TIMEOUT: '5' });
    try {
      const t0 = performance.now();
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      const took = performance.now() - t0;
      assert.equal(r.status, 503);
      assert.equal(JSON.parse(r.body).error.code, 'upstream_unreachable');
      assert.equal(r.headers['x-should-retry'], 'false');
      // backoff 50 + 100 + 200 ms, each -20% at worst
      assert.ok(took >= 280, `answered after ${took} ms`);
      const s = await stats(proxy);
      assert.equal(s.upstream_attempts.connect_error, 4);
      assert.equal(s.retries.by_reason.connect_error, 3);
    } finally {
      await proxy.stop();
    }
  });

  test('a reused keep-alive connection the upstream already closed is resent at once, not counted', async () => {
    // A raw upstream that answers once on a connection, then drops the connection on the
    // next request sent over it (as a server whose keep-alive ran out would).
    let served = 0;
    const conns = new Set();
    const srv = net.createServer((sock) => {
      conns.add(sock);
      let used = false;
      sock.on('data', () => {
        if (used) return sock.destroy();
        used = true;
        served++;
        const body = '{"object":"list","data":[]}';
        sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`);
      });
      sock.on('error', () => {});
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${srv.address().port}`, MAX_RETRIES: '0', CIRCUIT_BREAKER_THRESHOLD: '1' });
    try {
      assert.equal((await request(`${proxy.url}/v1/models`)).status, 200);
      const second = await request(`${proxy.url}/v1/models`);
      assert.equal(second.status, 200, 'resent on a fresh connection although MAX_RETRIES=0');
      assert.equal(served, 2);
      const h = await health(proxy);
      assert.equal(h.circuit_breaker.state, 'closed', 'a stale socket is not an upstream failure');
    } finally {
      await proxy.stop();
      for (const s of conns) s.destroy();
      srv.close();
    }
  });
});

test('a 503 too large to hold for a retry is passed on whole, not retried', async () => {
  const big = Buffer.alloc(200 * 1024, 'x');
  let hits = 0;
  const srv = http.createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain' }); // chunked: no length to judge by
    res.write(big.subarray(0, 50 * 1024));
    setTimeout(() => res.end(big.subarray(50 * 1024)), 20);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${srv.address().port}`, RATE_LIMIT_ENABLED: 'false' });
  try {
    const r = await request(`${proxy.url}/v1/models`);
    assert.equal(r.status, 503);
    assert.equal(r.body.length, big.length);
    assert.ok(r.body.equals(big));
    assert.equal(hits, 1);
  } finally {
    await proxy.stop();
    srv.close();
  }
});

/**
 * A listener whose accept queue is full: the kernel drops further SYNs, so a connect
 * neither succeeds nor fails — exactly what CONNECT_TIMEOUT is for. Node always accepts, so
 * the listener is a two-line python3 socket with a backlog of 0 and one connection in it.
 */
async function blackHole() {
  const py = spawn('python3', ['-u', '-c', "import socket,time\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(0)\nprint(s.getsockname()[1])\ntime.sleep(60)"], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise((resolve, reject) => {
    py.on('error', reject);
    py.stdout.once('data', (d) => resolve(Number(String(d).trim())));
  });
  const filler = net.connect(port, '127.0.0.1');
  filler.on('error', () => {});
  await new Promise((r) => filler.once('connect', r));
  return { port, close: () => (filler.destroy(), py.kill()) };
}

describe('deadlines', () => {
  test('a connect that hangs is cut at CONNECT_TIMEOUT and retried, then 503', async (t) => {
    if (spawnSync('python3', ['--version']).error) return t.skip('python3 not installed: no way to make a listener that never accepts');
    const hole = await blackHole();
    const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${hole.port}`, CONNECT_TIMEOUT: '0.3', MAX_RETRIES: '1', RETRY_DELAY: '0.01', TIMEOUT: '5', CIRCUIT_BREAKER_ENABLED: 'false' });
    try {
      const t0 = performance.now();
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      const took = performance.now() - t0;
      assert.equal(r.status, 503);
      assert.match(JSON.parse(r.body).error.message, /connect timeout/);
      assert.ok(took >= 590 && took < 3000, `took ${took} ms for two 300 ms connect timeouts`);
      const s = await stats(proxy);
      assert.equal(s.upstream_attempts.connect_error, 2);
      assert.equal(s.retries.by_reason.connect_error, 1);
    } finally {
      await proxy.stop();
      hole.close();
    }
  });

  test('an upstream that never answers gives 504 near TIMEOUT, and is not asked again', async () => {
    const { fake, proxy, close } = await rig({ TIMEOUT: '0.5' });
    try {
      fake.fault({ action: 'hang' });
      const t0 = performance.now();
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      const took = performance.now() - t0;
      assert.equal(r.status, 504);
      assert.equal(JSON.parse(r.body).error.code, 'upstream_timeout');
      assert.equal(r.headers['x-should-retry'], 'false');
      assert.ok(took >= 490 && took < 3000, `took ${took} ms`);
      assert.equal(fake.stats.attempts, 1);
    } finally {
      await close();
    }
  });

  test('a stream silent for longer than TIMEOUT ends with the error event', async () => {
    const { fake, proxy, close } = await rig({ TIMEOUT: '0.3' });
    try {
      fake.fault({ action: 'slow', delayMs: 1500 });
      const r = await json(`${proxy.url}/v1/chat/completions`, { ...CHAT, stream: true }, { headers: { 'x-fake-chunks': '3' } });
      assert.equal(r.status, 200);
      const events = sseEvents(r.body);
      assert.equal(JSON.parse(events.at(-1).data).error.code, 'upstream_timeout');
      assert.ok(!r.body.toString().includes('[DONE]'));
      assert.equal(r.complete, false, 'cut after the error event');
      assert.equal((await stats(proxy)).streams.idle_timeout, 1);
    } finally {
      await close();
    }
  });

  test('a healthy stream longer than TIMEOUT in total is never cut', async () => {
    const { proxy, close } = await rig({ TIMEOUT: '0.3' });
    try {
      const r = await json(`${proxy.url}/v1/chat/completions`, { ...CHAT, stream: true }, { headers: { 'x-fake-chunks': '12', 'x-fake-chunk-delay-ms': '80' } });
      const events = sseEvents(r.body);
      assert.equal(events.length, 13);
      assert.equal(events.at(-1).data, '[DONE]');
    } finally {
      await close();
    }
  });
});

describe('circuit breaker', () => {
  test('opens after the threshold, fails fast without upstream traffic, probes once and closes', async () => {
    const { fake, proxy, close } = await rig({ MAX_RETRIES: '0', CIRCUIT_BREAKER_THRESHOLD: '3', CIRCUIT_BREAKER_TIMEOUT: '0.6' });
    try {
      fake.fault({ action: 'status', status: 500, times: 3 });
      for (let i = 0; i < 3; i++) assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 500);
      assert.equal((await health(proxy)).circuit_breaker.state, 'open');
      const seen = fake.stats.attempts;
      const t0 = performance.now();
      const fast = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      const took = performance.now() - t0;
      assert.equal(fast.status, 503);
      assert.equal(JSON.parse(fast.body).error.code, 'circuit_open');
      assert.ok(Number(fast.headers['retry-after']) >= 1);
      assert.equal(fake.stats.attempts, seen, 'the upstream was not asked');
      const h = await request(`${proxy.url}/health`);
      assert.equal(h.status, 200, 'an open breaker is reported, not a 503');
      console.log(`# breaker-open answer took ${took.toFixed(1)} ms`);

      // the open period (0.6 s) passes: /health works the state out from the time it is asked
      assert.equal(await waitForBreaker(proxy, 'half_open'), 'half_open');
      // half-open: one probe goes through (held 300 ms by the upstream); others are refused meanwhile
      fake.fault({ action: 'slow', firstByteDelayMs: 300 });
      const probe = json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.ok(await waitFor(() => fake.stats.attempts === seen + 1), 'the probe reached the upstream');
      const other = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(other.status, 503);
      assert.equal(JSON.parse(other.body).error.code, 'circuit_open');
      assert.equal((await probe).status, 200);
      assert.equal(fake.stats.attempts, seen + 1, 'exactly one probe');
      assert.equal((await health(proxy)).circuit_breaker.state, 'closed');
      assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 200);
    } finally {
      await close();
    }
  });

  test('a failed probe opens it again', async () => {
    const { fake, proxy, close } = await rig({ MAX_RETRIES: '0', CIRCUIT_BREAKER_THRESHOLD: '1', CIRCUIT_BREAKER_TIMEOUT: '0.3' });
    try {
      fake.fault({ action: 'close', times: 2 });
      assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 502);
      assert.equal(await waitForBreaker(proxy, 'half_open'), 'half_open');
      assert.equal((await json(`${proxy.url}/v1/chat/completions`, CHAT)).status, 502, 'the probe failed');
      const again = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(JSON.parse(again.body).error.code, 'circuit_open');
      assert.equal(fake.stats.attempts, 2);
    } finally {
      await close();
    }
  });

  test('client errors do not count toward opening it', async () => {
    const { proxy, close } = await rig({ MAX_RETRIES: '0', CIRCUIT_BREAKER_THRESHOLD: '2' });
    try {
      for (let i = 0; i < 4; i++) assert.equal((await json(`${proxy.url}/v1/chat/completions`, { model: 'nope', messages: [] })).status, 404);
      assert.equal((await health(proxy)).circuit_breaker.state, 'closed');
    } finally {
      await close();
    }
  });
});

describe('rate limit', () => {
  test('the sixth request of a 5-per-minute client gets 429 while another client is served', async () => {
    const { proxy, close } = await rig({ RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '5', RATE_LIMIT_WINDOW: '60', PROXY_API_KEYS: 'alice=sk-client-a,bob=sk-client-b' });
    try {
      const a = { authorization: 'Bearer sk-client-a' };
      for (let i = 0; i < 5; i++) {
        const r = await json(`${proxy.url}/v1/chat/completions`, CHAT, { headers: a });
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-ratelimit-limit-requests'], '5');
        assert.equal(r.headers['x-ratelimit-remaining-requests'], String(4 - i));
      }
      const sixth = await json(`${proxy.url}/v1/chat/completions`, CHAT, { headers: a });
      assert.equal(sixth.status, 429);
      const err = JSON.parse(sixth.body).error;
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.equal(err.type, 'requests');
      const wait = Number(sixth.headers['retry-after']);
      assert.ok(wait >= 11 && wait <= 12, `retry-after ${wait}`);
      assert.equal(sixth.headers['x-ratelimit-remaining-requests'], '0');
      assert.match(sixth.headers['x-ratelimit-reset-requests'], /^\d+(\.\d+)?s$|^1m/);
      const b = await json(`${proxy.url}/v1/chat/completions`, CHAT, { headers: { authorization: 'Bearer sk-client-b' } });
      assert.equal(b.status, 200);
      for (let i = 0; i < 10; i++) assert.equal((await request(`${proxy.url}/health`)).status, 200);
      assert.equal((await stats(proxy)).rate_limited, 1);
    } finally {
      await close();
    }
  });

  test('without client keys the bucket is the address: a fresh bearer token on each request buys nothing', async () => {
    const { proxy, close } = await rig({ RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '3', RATE_LIMIT_WINDOW: '60' });
    try {
      const statuses = [];
      for (let i = 0; i < 5; i++) {
        const r = await json(`${proxy.url}/v1/chat/completions`, CHAT, { headers: { authorization: `Bearer sk-random-${i}-${Math.random()}` } });
        statuses.push(r.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    } finally {
      await close();
    }
  });
});

describe('concurrency gate', () => {
  test('beyond MAX_CONCURRENT_REQUESTS requests queue; a full queue gets 503 with Retry-After', async () => {
    const { fake, proxy, close } = await rig({ MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '1', QUEUE_TIMEOUT: '5' });
    try {
      fake.fault({ action: 'slow', firstByteDelayMs: 300, times: 2 });
      const first = json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal((await waitForStats(proxy, (s) => s.queue.slots_in_use === 1)).queue.slots_in_use, 1, 'the first holds the one slot');
      const second = json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal((await waitForStats(proxy, (s) => s.queue.depth === 1)).queue.depth, 1, 'the second waits in the queue');
      const third = await json(`${proxy.url}/v1/chat/completions`, CHAT);
      assert.equal(third.status, 503);
      assert.equal(JSON.parse(third.body).error.code, 'queue_full');
      assert.ok(third.headers['retry-after']);
      assert.equal((await first).status, 200);
      assert.equal((await second).status, 200);
      assert.equal(fake.stats.attempts, 2);
    } finally {
      await close();
    }
  });
});
