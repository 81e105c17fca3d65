// Graceful shutdown of the real process: SIGTERM drains, /health says so, streams in flight
// finish, SHUTDOWN_TIMEOUT bounds the wait, a second signal does not wait at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, sseEvents, logLines, waitFor } from './helpers.mjs';

const STREAM = JSON.stringify({ model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'hi' }] });

/**
 * Starts a streamed chat completion: `firstByte` resolves when its first bytes arrive,
 * `received()` is what arrived so far, `done` resolves { status, body, complete } when it ends.
 */
function streamRequest(url, chunks, delayMs) {
  let started;
  const firstByte = new Promise((r) => (started = r));
  const parts = [];
  const done = new Promise((resolve) => {
    const req = http.request(`${url}/v1/chat/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-fake-chunks': String(chunks), 'x-fake-chunk-delay-ms': String(delayMs) } }, (res) => {
      res.on('data', (c) => (parts.push(c), started()));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), complete: true }));
      res.on('error', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), complete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), complete: false }));
    req.end(STREAM);
  });
  return { firstByte, done, received: () => Buffer.concat(parts).toString('utf8') };
}

test('a 3 s stream survives a SIGTERM sent mid-stream (at its fifth token, 0.5 s in), complete; then the process exits 0', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, SHUTDOWN_TIMEOUT: '10' });
  try {
    const s = streamRequest(proxy.url, 30, 100);
    await s.firstByte;
    assert.ok(await waitFor(() => s.received().includes('tok4'), 5000), 'five tokens relayed before the signal');
    const t0 = performance.now();
    proxy.proc.kill('SIGTERM');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'draining'), 5000);
    // new connections are refused while the stream goes on
    const refused = await new Promise((resolve) => {
      const sock = net.connect(proxy.port, '127.0.0.1');
      sock.on('connect', () => (sock.destroy(), resolve(false)));
      sock.on('error', () => resolve(true));
    });
    assert.ok(refused, 'the listener is closed once draining began');
    const r = await s.done;
    assert.equal(r.complete, true);
    const events = sseEvents(r.body);
    assert.equal(events.length, 31);
    assert.equal(events.at(-1).data, '[DONE]');
    const { code } = await proxy.exited;
    assert.equal(code, 0);
    assert.ok(performance.now() - t0 >= 2000, 'it waited for the stream');
    const msgs = logLines(proxy.logDir, 'proxy.log').map((l) => l.msg);
    assert.ok(msgs.includes('draining') && msgs.includes('stopped'));
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('with SHUTDOWN_TIMEOUT=1 a 20 s stream does not hold the exit past about a second', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, SHUTDOWN_TIMEOUT: '1' });
  try {
    const s = streamRequest(proxy.url, 200, 100);
    await s.firstByte;
    const t0 = performance.now();
    proxy.proc.kill('SIGTERM');
    const { code } = await proxy.exited;
    const took = performance.now() - t0;
    assert.equal(code, 0);
    assert.ok(took >= 950 && took < 2500, `exited after ${took} ms`);
    const r = await s.done;
    assert.ok(!r.body.toString().includes('[DONE]'), 'the cut stream does not look complete');
    const last = sseEvents(r.body).at(-1);
    assert.equal(JSON.parse(last.data).error.code, 'draining', 'the stream says why it ended');
    const cut = logLines(proxy.logDir, 'proxy.log').find((l) => l.msg.startsWith('shutdown timeout'));
    assert.equal(cut?.in_flight, 1);
    const [rec] = logLines(proxy.logDir, 'requests.log');
    assert.equal(rec.error, 'draining', 'the request log says the proxy ended it, not the client or the upstream');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('while draining, /health on a connection still open answers 503 draining with Connection: close', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, SHUTDOWN_TIMEOUT: '10' });
  try {
    // A 1 s stream on a keep-alive connection; once SIGTERM arrived, a /health request is
    // pipelined behind it on the same (busy, so still open) connection.
    const sock = net.connect(proxy.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    let raw = '';
    sock.setEncoding('latin1').on('data', (d) => (raw += d));
    const closed = new Promise((r) => sock.on('close', r));
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-fake-chunks: 10\r\nx-fake-chunk-delay-ms: 100\r\ncontent-length: ${Buffer.byteLength(STREAM)}\r\n\r\n${STREAM}`);
    await waitFor(() => raw.includes('tok0'), 5000);
    proxy.proc.kill('SIGTERM');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'draining'), 5000);
    sock.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
    await closed;
    const second = raw.slice(raw.lastIndexOf('HTTP/1.1 '));
    assert.match(second, /^HTTP\/1\.1 503 /);
    assert.match(second, /\r\nconnection: close\r\n/i);
    assert.equal(JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4)).status, 'draining');
    assert.equal((await proxy.exited).code, 0);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('a second signal exits at once', async () => {
  const fake = await startFakeUpstream();
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, SHUTDOWN_TIMEOUT: '30' });
  try {
    const s = streamRequest(proxy.url, 200, 100);
    await s.firstByte;
    const t0 = performance.now();
    proxy.proc.kill('SIGTERM');
    // the second signal must come after the first was taken: the proxy said it is draining
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'draining'), 5000), 'draining after SIGTERM');
    proxy.proc.kill('SIGINT');
    const { code } = await proxy.exited;
    assert.notEqual(code, 0, 'a forced exit is not a clean one');
    assert.ok(performance.now() - t0 < 1500);
    await s.done;
  } finally {
    await proxy.stop();
    await fake.close();
  }
});
