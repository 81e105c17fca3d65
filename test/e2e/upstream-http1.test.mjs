// The proxy's own HTTP/1.1 client against a raw upstream that answers byte by byte as told:
// framing both ways, interim answers, connection reuse rules, malformed answers.
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import { startProxy, request, waitFor } from './helpers.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

/**
 * A raw upstream: parses each request (Content-Length or chunked body) and hands it to the
 * current `answer(sock, req)`, which writes whatever bytes the test wants.
 */
function rawUpstream() {
  const state = { accepted: 0, requests: [], answer: null, sockets: new Set() };
  const server = net.createServer((sock) => {
    state.accepted++;
    state.sockets.add(sock);
    sock.on('close', () => state.sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const parsed = parseRequest(buf);
        if (parsed === null) return;
        buf = buf.subarray(parsed.used);
        state.requests.push(parsed.req);
        state.answer(sock, parsed.req);
      }
    });
  });
  return { state, server };
}

function parseRequest(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const [method, path] = lines[0].split(' ');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let at = end + 4;
  let body;
  if (headers['transfer-encoding'] === 'chunked') {
    const parts = [];
    for (;;) {
      const nl = buf.indexOf('\r\n', at);
      if (nl < 0) return null;
      const size = parseInt(buf.subarray(at, nl).toString('latin1'), 16);
      if (buf.length < nl + 2 + size + 2) return null;
      if (size === 0) {
        at = nl + 4;
        break;
      }
      parts.push(buf.subarray(nl + 2, nl + 2 + size));
      at = nl + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else {
    const n = Number(headers['content-length'] ?? 0);
    if (buf.length < at + n) return null;
    body = buf.subarray(at, at + n);
    at += n;
  }
  return { used: at, req: { method, path, headers, body } };
}

const ok = (body, extra = '') => `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

describe('the HTTP/1.1 client against a raw upstream', () => {
  let up;
  let proxy;
  before(async () => {
    up = rawUpstream();
    await new Promise((r) => up.server.listen(0, '127.0.0.1', r));
    proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${up.server.address().port}`, MAX_RETRIES: '0', RATE_LIMIT_ENABLED: 'false', CIRCUIT_BREAKER_ENABLED: 'false', MAX_REPLAY_BODY: '4KiB' });
  });
  after(async () => {
    // the upstream goes even when the proxy never started, or this file would never exit
    for (const s of up.state.sockets) s.destroy();
    up.server.close();
    await proxy?.stop();
  });
  beforeEach(() => {
    // every test starts on fresh connections
    for (const s of up.state.sockets) s.destroy();
    up.state.accepted = 0;
    up.state.requests = [];
  });

  test('keep-alive answers share one connection; a small body goes out with an exact Content-Length', async () => {
    up.state.answer = (sock, req) => sock.write(ok(JSON.stringify({ got: req.body.length })));
    for (let i = 0; i < 5; i++) {
      const r = await request(`${proxy.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: '{"input":"hi"}' });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { got: 14 });
    }
    assert.equal(up.state.accepted, 1);
    const seen = up.state.requests[0];
    assert.equal(seen.headers['content-length'], '14', 'a buffered body is re-framed with its length');
    assert.equal(seen.headers['transfer-encoding'], undefined);
    assert.equal(seen.headers.host, `127.0.0.1:${up.server.address().port}`);
  });

  test('`Connection: close` and a Keep-Alive timeout of 1 s each keep the connection from being reused', async () => {
    for (const extra of ['connection: close\r\n', 'keep-alive: timeout=1\r\n']) {
      for (const s of up.state.sockets) s.destroy();
      up.state.accepted = 0;
      up.state.answer = (sock) => sock.write(ok('{"ok":true}', extra));
      for (let i = 0; i < 3; i++) assert.equal((await request(`${proxy.url}/v1/models`)).status, 200, extra);
      assert.equal(up.state.accepted, 3, extra);
    }
  });

  test('interim 100 and 103 answers are skipped; the client gets only the real one', async () => {
    up.state.answer = (sock) => sock.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n' + ok('{"real":1}'));
    const r = await request(`${proxy.url}/v1/models`);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { real: 1 });
    assert.equal(r.headers.link, undefined);
  });

  test('a chunked answer with trailers, split across many writes, arrives byte-exact', async () => {
    const data = randomBytes(20_000);
    up.state.answer = (sock) => {
      const parts = [Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n')];
      for (let i = 0; i < data.length; i += 3000) {
        const piece = data.subarray(i, i + 3000);
        parts.push(Buffer.from(`${piece.length.toString(16)};ext=1\r\n`), piece, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\nx-checksum: abc\r\n\r\n'));
      const all = Buffer.concat(parts);
      // dribble it out in odd-sized writes so every boundary lands mid-token somewhere
      let at = 0;
      const next = () => {
        if (at >= all.length) return;
        sock.write(all.subarray(at, at + 777));
        at += 777;
        setImmediate(next);
      };
      next();
    };
    const r = await request(`${proxy.url}/v1/files/file-1/content`);
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), sha256(data));
    assert.equal((await request(`${proxy.url}/v1/files/file-1/content`)).status, 200);
    assert.equal(up.state.accepted, 1, 'the connection was reused after the chunked answer');
  });

  test('an answer framed by the close arrives whole and its connection is not reused', async () => {
    up.state.answer = (sock) => sock.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it until the close');
    for (let i = 0; i < 2; i++) {
      const r = await request(`${proxy.url}/v1/models`);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'all of it until the close');
    }
    assert.equal(up.state.accepted, 2);
  });

  test('HEAD: the answer has a length but no body, and the connection carries on', async () => {
    up.state.answer = (sock, req) => sock.write(req.method === 'HEAD' ? 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1234\r\n\r\n' : ok('{"after":"head"}'));
    const head = await request(`${proxy.url}/v1/models`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const r = await request(`${proxy.url}/v1/models`);
    assert.deepEqual(JSON.parse(r.body), { after: 'head' });
    assert.equal(up.state.accepted, 1);
  });

  test('a body over the replay limit without a length goes upstream chunked, byte-exact', async () => {
    up.state.answer = (sock, req) => sock.write(ok(JSON.stringify({ sha: sha256(req.body), te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null })));
    const data = randomBytes(50_000); // over MAX_REPLAY_BODY (4 KiB)
    const r = await new Promise((resolve, reject) => {
      const req = http.request(`${proxy.url}/v1/files`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      for (let i = 0; i < data.length; i += 10_000) req.write(data.subarray(i, i + 10_000)); // chunked: no length
      req.end();
    });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { sha: sha256(data), te: 'chunked', cl: null });
  });

  test('a streamed body with a length keeps it', async () => {
    up.state.answer = (sock, req) => sock.write(ok(JSON.stringify({ sha: sha256(req.body), te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null })));
    const data = randomBytes(30_000);
    const r = await request(`${proxy.url}/v1/files`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) }, body: data });
    assert.deepEqual(JSON.parse(r.body), { sha: sha256(data), te: null, cl: '30000' });
  });

  for (const [what, bytes] of [
    ['a status out of range', 'HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n'],
    ['conflicting lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello'],
    ['a header without a colon', 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n'],
    ['an unasked protocol switch', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n'],
  ]) {
    test(`a malformed answer (${what}) gives 502 upstream_protocol_error and the proxy carries on`, async () => {
      up.state.answer = (sock) => sock.write(bytes);
      const r = await request(`${proxy.url}/v1/models`);
      assert.equal(r.status, 502);
      assert.equal(JSON.parse(r.body).error.code, 'upstream_protocol_error');
      up.state.answer = (sock) => sock.write(ok('{"fine":true}'));
      assert.equal((await request(`${proxy.url}/v1/models`)).status, 200);
    });
  }

  test('a chunked answer cut in the middle reaches the client incomplete, not as a clean end', async () => {
    up.state.answer = (sock) => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
      setTimeout(() => sock.destroy(), 20);
    };
    const r = await request(`${proxy.url}/v1/files/file-1/content`);
    assert.equal(r.status, 200);
    assert.equal(r.complete, false);
    assert.equal(r.body.toString(), 'hello');
  });
});

describe('POOL_SIZE caps the connections to the upstream', () => {
  test('requests beyond the cap wait for a free connection, and one that waits past TIMEOUT gets 504', async () => {
    const up = rawUpstream();
    await new Promise((r) => up.server.listen(0, '127.0.0.1', r));
    // the first request is answered after 1.2 s; later ones at once
    let n = 0;
    up.state.answer = (sock) => {
      if (++n === 1) setTimeout(() => sock.write(ok('{"n":1}')), 1200);
      else sock.write(ok(`{"n":${n}}`));
    };
    const proxy = await startProxy({ UPSTREAM_URL: `http://127.0.0.1:${up.server.address().port}`, POOL_SIZE: '1', TIMEOUT: '2', MAX_RETRIES: '0', RATE_LIMIT_ENABLED: 'false', CIRCUIT_BREAKER_ENABLED: 'false' });
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
      const slow = request(`${proxy.url}/v1/models`, { agent });
      assert.ok(await waitFor(() => up.state.requests.length === 1), 'the slow request holds the only connection');
      const queued = request(`${proxy.url}/v1/models`, { agent }); // waits behind the slow one
      const [a, b] = await Promise.all([slow, queued]);
      assert.deepEqual([a.status, JSON.parse(a.body).n], [200, 1]);
      assert.deepEqual([b.status, JSON.parse(b.body).n], [200, 2], 'served on the same connection once it was free');
      assert.equal(up.state.accepted, 1, 'never more than POOL_SIZE connections');

      // now a long answer holds the only connection (its head came at once, so TIMEOUT no
      // longer applies to it) while another request waits longer than TIMEOUT for it
      up.state.answer = (sock) => {
        // gaps well under TIMEOUT (the relay's idle limit), 3 s in all
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\nl');
        setTimeout(() => sock.write('o'), 1000);
        setTimeout(() => sock.write('n'), 2000);
        setTimeout(() => sock.write('g'), 3000);
      };
      const before = up.state.requests.length;
      const long = request(`${proxy.url}/v1/models`, { agent });
      assert.ok(await waitFor(() => up.state.requests.length === before + 1), 'the long answer holds the only connection');
      const starved = await request(`${proxy.url}/v1/models`, { agent });
      assert.equal(starved.status, 504);
      assert.equal(JSON.parse(starved.body).error.code, 'upstream_timeout');
      const longDone = await long;
      assert.deepEqual([longDone.status, longDone.body.toString()], [200, 'long']);
      // the pool is not left holding a dead waiter: the next request is served
      up.state.answer = (sock) => sock.write(ok('{"after":true}'));
      const after = await request(`${proxy.url}/v1/models`, { agent });
      assert.equal(after.status, 200);
      agent.destroy();
    } finally {
      for (const s of up.state.sockets) s.destroy();
      up.server.close();
      await proxy.stop();
    }
  });
});
