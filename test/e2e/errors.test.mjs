// What the proxy answers itself: OpenAI-shaped errors for the failures it sees, and the
// bounds it keeps on what a client sends.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, request, json, multipart, deadPort, waitForStats } from './helpers.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

function assertOpenAiError(r, status, code) {
  assert.equal(r.status, status);
  assert.equal(r.headers['content-type'], 'application/json');
  const body = JSON.parse(r.body);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(body.error.code, code);
  assert.equal(body.error.param, null);
  assert.ok(body.error.message.length > 0);
  assert.ok(r.headers['x-request-id']);
  return body.error;
}

describe('errors the proxy makes', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeUpstream();
    proxy = await startProxy({ UPSTREAM_URL: fake.url, MAX_RETRIES: '0', RATE_LIMIT_ENABLED: 'false', CIRCUIT_BREAKER_ENABLED: 'false', MAX_REQUEST_BODY: '64KiB', MAX_REPLAY_BODY: '4KiB' });
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  test('paths outside /v1/ get a 404 and the upstream is never asked', async () => {
    const before = fake.stats.attempts;
    for (const path of ['/v2/models', '/admin', '/v1', '/favicon.ico']) assertOpenAiError(await request(`${proxy.url}${path}`), 404, 'not_found');
    assert.equal(fake.stats.attempts, before);
  });

  test('own endpoints answer only GET and HEAD', async () => {
    const r = await request(`${proxy.url}/health`, { method: 'POST' });
    assertOpenAiError(r, 405, 'method_not_allowed');
    assert.equal(r.headers.allow, 'GET, HEAD');
  });

  test('an upstream that closes without answering gives 502 with x-should-retry: false', async () => {
    fake.fault({ action: 'close' });
    const r = await json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', messages: [] });
    assertOpenAiError(r, 502, 'upstream_protocol_error');
    assert.equal(r.headers['x-should-retry'], 'false');
  });

  test('a body over MAX_REQUEST_BODY gets 413 before the upstream is asked', async () => {
    const before = fake.stats.attempts;
    const r = await request(`${proxy.url}/v1/files`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: randomBytes(100 * 1024) });
    assertOpenAiError(r, 413, 'request_too_large');
    assert.equal(fake.stats.attempts, before);
  });

  test('a chunked body that grows past MAX_REQUEST_BODY is cut with 413', async () => {
    // no content-length: the limit can only be seen while streaming
    const r = await new Promise((resolve, reject) => {
      const sock = net.connect(proxy.port, '127.0.0.1', () => {
        sock.write('POST /v1/files HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n');
        const piece = randomBytes(8 * 1024);
        for (let i = 0; i < 12; i++) sock.write(`${piece.length.toString(16)}\r\n`), sock.write(piece), sock.write('\r\n');
        sock.write('0\r\n\r\n');
      });
      let got = '';
      sock.on('data', (d) => (got += d.toString('latin1')));
      sock.on('close', () => resolve(got));
      sock.on('error', () => resolve(got));
      setTimeout(() => reject(new Error('no answer')), 5000).unref();
    });
    assert.match(r, /^HTTP\/1\.1 413 /);
    assert.match(r, /"code":"request_too_large"/);
  });

  test('a body above the replay limit streams through byte-exact', async () => {
    const data = randomBytes(40 * 1024); // over MAX_REPLAY_BODY, under MAX_REQUEST_BODY
    const form = multipart({ purpose: 'batch' }, { name: 'big.bin', data });
    const up = await request(`${proxy.url}/v1/files`, { method: 'POST', headers: { 'content-type': form.contentType }, body: form.body });
    assert.equal(up.status, 200);
    assert.equal(JSON.parse(up.body).sha256, sha256(data));
  });

  test('a client request id that is not a sane token is replaced', async () => {
    const r = await request(`${proxy.url}/v1/echo/x`, { headers: { 'x-request-id': 'a'.repeat(500) } });
    assert.match(r.headers['x-request-id'], /^req_[0-9a-f]{32}$/);
  });

  test('a request line the server cannot parse gets a 400 and the proxy keeps serving', async () => {
    const raw = await new Promise((resolve) => {
      const sock = net.connect(proxy.port, '127.0.0.1', () => sock.write('GARBAGE / HTTP/9.9\r\n\r\n'));
      let got = '';
      sock.on('data', (d) => (got += d));
      sock.on('close', () => resolve(got));
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.equal((await request(`${proxy.url}/`)).status, 200);
  });
});

describe('an upstream that is down', () => {
  test('gives 503 upstream_unreachable with x-should-retry: false; /health stays 200 and names the error', async () => {
    const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${await deadPort()}`, MAX_RETRIES: '1', RETRY_DELAY: '0.01', CIRCUIT_BREAKER_ENABLED: 'false' });
    try {
      const r = await json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', messages: [] });
      assertOpenAiError(r, 503, 'upstream_unreachable');
      assert.equal(r.headers['x-should-retry'], 'false');
      const health = await request(`${proxy.url}/health`);
      assert.equal(health.status, 200);
      const h = JSON.parse(health.body);
      assert.equal(h.status, 'ok');
      assert.equal(h.last_upstream_error.outcome, 'connect_error');
      assert.equal(h.upstream.protocol, 'http/1.1');
      const stats = JSON.parse((await request(`${proxy.url}/stats`)).body);
      assert.equal(stats.upstream_attempts.connect_error, 2);
      assert.equal(stats.retries.by_reason.connect_error, 1);
    } finally {
      await proxy.stop();
    }
  });
});

for (const h2c of [false, true]) {
  test(`a streamed body (over the replay limit) is still retried when the connection never opened (${h2c ? 'h2c' : 'http/1.1'})`, async () => {
    const port = await deadPort();
    const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${port}`, UPSTREAM_HTTP2: String(h2c), MAX_REPLAY_BODY: '4KiB', MAX_RETRIES: '2', RETRY_DELAY: '0.4', RETRY_MAX_DELAY: '1', TIMEOUT: '5', RATE_LIMIT_ENABLED: 'false' });
    let fake;
    try {
      const data = randomBytes(200 * 1024);
      const form = multipart({ purpose: 'batch' }, { name: 'big.bin', data });
      const pending = request(`${proxy.url}/v1/files`, { method: 'POST', headers: { 'content-type': form.contentType }, body: form.body });
      // the first connect is refused; the upstream comes up during the backoff (>= 320 ms)
      const s = await waitForStats(proxy, (st) => st.in_flight_by_phase.backoff === 1);
      assert.equal(s.in_flight_by_phase.backoff, 1, 'the request is backing off');
      assert.equal(s.upstream_attempts.connect_error, 1, 'after one refused connect');
      fake = await startFakeUpstream({ port, h2c });
      const up = await pending;
      assert.equal(up.status, 200, up.body.toString());
      assert.equal(JSON.parse(up.body).sha256, sha256(data), 'the body arrived whole after the retry');
      assert.equal(fake.stats.attempts, 1);
    } finally {
      await proxy.stop();
      await fake?.close();
    }
  });
}
