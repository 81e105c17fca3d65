// An https upstream: HTTP/1.1 over TLS by default, HTTP/2 negotiated by ALPN with
// UPSTREAM_HTTP2=true. The certificate is made for 127.0.0.1 by openssl and trusted
// through NODE_EXTRA_CA_CERTS, as an operator would for a private CA.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http2 from 'node:http2';
import { startProxy, json } from './helpers.mjs';

let dir;
let server;
let url;
const hasOpenssl = !spawnSync('openssl', ['version']).error;

before(async () => {
  if (!hasOpenssl) return;
  dir = mkdtempSync(join(tmpdir(), 'tls-'));
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  assert.equal(r.status, 0, r.stderr.toString());
  server = http2.createSecureServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), allowHTTP1: true }, (req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      // `close` in the body: the connection ends with this answer, so the next one reconnects
      const got = JSON.parse(body);
      res.writeHead(200, { 'content-type': 'application/json', ...(got.close ? { connection: 'close' } : {}) });
      res.end(JSON.stringify({ httpVersion: req.httpVersion, alpn: req.socket.alpnProtocol ?? null, resumed: req.socket.isSessionReused(), got }));
    });
  });
  await new Promise((r2) => server.listen(0, '127.0.0.1', r2));
  url = `https://127.0.0.1:${server.address().port}`;
});
after(() => server?.close());

for (const h2 of [false, true]) {
  test(`an https upstream over ${h2 ? 'HTTP/2 (ALPN h2)' : 'HTTP/1.1'}`, async (t) => {
    if (!hasOpenssl) return t.skip('openssl not installed: cannot make a test certificate');
    const proxy = await startProxy({ UPSTREAM_URL: url, UPSTREAM_HTTP2: String(h2), NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') });
    try {
      const r = await json(`${proxy.url}/v1/chat/completions`, { model: 'm', n: 7 });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body);
      assert.equal(seen.httpVersion, h2 ? '2.0' : '1.1');
      assert.equal(seen.got.n, 7);
    } finally {
      await proxy.stop();
    }
  });
}

test('a reconnect to an https upstream resumes the TLS session instead of a full handshake', async (t) => {
  if (!hasOpenssl) return t.skip('openssl not installed: cannot make a test certificate');
  const proxy = await startProxy({ UPSTREAM_URL: url, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') });
  try {
    const first = JSON.parse((await json(`${proxy.url}/v1/chat/completions`, { model: 'm', close: true })).body);
    const second = JSON.parse((await json(`${proxy.url}/v1/chat/completions`, { model: 'm', close: true })).body);
    assert.equal(first.resumed, false);
    assert.equal(second.resumed, true);
  } finally {
    await proxy.stop();
  }
});

test('an upstream certificate nobody trusts is a connection failure (503), not a silent downgrade', async (t) => {
  if (!hasOpenssl) return t.skip('openssl not installed: cannot make a test certificate');
  const proxy = await startProxy({ UPSTREAM_URL: url, MAX_RETRIES: '0', CIRCUIT_BREAKER_ENABLED: 'false' });
  try {
    const r = await json(`${proxy.url}/v1/chat/completions`, { model: 'm' });
    assert.equal(r.status, 503);
    const err = JSON.parse(r.body).error;
    assert.equal(err.code, 'upstream_unreachable');
    assert.match(err.message, /certificate/i, 'the operator can tell why');
  } finally {
    await proxy.stop();
  }
});
