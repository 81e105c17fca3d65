// A bounded fuzz of the listener over raw sockets: random bytes, broken request lines,
// huge and repeated headers, bad chunked encoding, early closes, bodies that lie about
// their length. Afterwards the proxy still serves, its heap is back near where it started,
// and every answer it gave was a well-formed HTTP response (errors in the OpenAI shape).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, request } from './helpers.mjs';

/** A small seeded PRNG (mulberry32): the same run every time, any failure reproducible. */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CASES = [
  (r) => [Buffer.from(Array.from({ length: 1 + Math.floor(r() * 400) }, () => Math.floor(r() * 256)))],
  (r) => [`${['GET', 'POST', 'BREW', '', 'G ET'][Math.floor(r() * 5)]} ${['/v1/models', '/', '*', 'nope', '/v1/../../etc'][Math.floor(r() * 5)]} ${['HTTP/1.1', 'HTTP/9.9', 'HTTX', ''][Math.floor(r() * 4)]}\r\n\r\n`],
  () => [`GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`],
  () => [`GET /nope HTTP/1.1\r\nhost: x\r\n${'x-rep: 1\r\n'.repeat(3000)}\r\n`],
  () => ['POST /v1/echo/x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
  () => ['POST /v1/echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  () => ['POST /v1/echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n'],
  () => ['POST /v1/echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nhello, and then some garbage that is not a request\r\n\r\n'],
  (r) => ['POST /v1/echo/x HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nshort', { close: true, afterMs: Math.floor(r() * 20) }],
  () => ['GET /v1/mod', { close: true }],
  () => ['GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'],
  () => ['GET /v1/models HTTP/1.1\r\nhost: x\r\nx-request-id: ' + 'z'.repeat(5000) + '\r\nconnection: close\r\n\r\n'],
];

function send(port, parts) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.setTimeout(3000, () => sock.destroy());
    sock.on('connect', () => {
      for (const p of parts) {
        if (typeof p === 'object' && !Buffer.isBuffer(p)) {
          if (p.close) setTimeout(() => sock.destroy(), p.afterMs ?? 0);
          return;
        }
        sock.write(p);
      }
      sock.end();
    });
  });
}

/** Every response in `raw` (there may be several on one connection) is well-formed. */
function checkResponses(raw) {
  let rest = raw;
  let n = 0;
  while (rest.length > 0) {
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/.exec(rest);
    assert.ok(m, `not an HTTP response: ${JSON.stringify(rest.slice(0, 80))}`);
    const headEnd = rest.indexOf('\r\n\r\n');
    assert.ok(headEnd > 0);
    const head = rest.slice(0, headEnd).toLowerCase();
    const status = Number(m[1]);
    const len = /\r\ncontent-length: (\d+)/.exec(head);
    let body;
    if (len) {
      body = rest.slice(headEnd + 4, headEnd + 4 + Number(len[1]));
      rest = rest.slice(headEnd + 4 + Number(len[1]));
    } else {
      body = rest.slice(headEnd + 4);
      rest = '';
    }
    if (status >= 400 && head.includes('application/json') && body.length > 0) {
      const err = JSON.parse(body).error;
      assert.equal(typeof err.message, 'string');
      assert.ok('type' in err && 'param' in err && 'code' in err);
    }
    n++;
  }
  return n;
}

test('thousands of malformed requests: the proxy answers each sanely, keeps serving and gives its memory back', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false', CLIENT_TIMEOUT: '1' });
  try {
    const heap = async () => {
      const text = (await request(`${proxy.url}/metrics`)).body.toString();
      return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)[1]);
    };
    const r = rng(42);
    // warm up so the baseline includes what the first requests allocate once
    for (let i = 0; i < 50; i++) await send(proxy.port, CASES[i % CASES.length](r));
    const before = await heap();
    const TOTAL = 2400;
    const CONCURRENCY = 40;
    let responses = 0;
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        const raw = await send(proxy.port, CASES[i % CASES.length](r));
        responses += checkResponses(raw);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    assert.ok(responses > TOTAL / 2, `${responses} responses`);
    const health = await request(`${proxy.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).in_flight, 0);
    assert.equal((await request(`${proxy.url}/v1/models`)).status, 200);
    const after = await heap();
    console.log(`# heap used before ${(before / 1e6).toFixed(1)} MB, after ${(after / 1e6).toFixed(1)} MB, ${responses} responses`);
    assert.ok(after < before + 30e6, `heap grew from ${before} to ${after}`);
    assert.equal(proxy.proc.exitCode, null, 'still running');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});
