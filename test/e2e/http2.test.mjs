// HTTP/2 to the upstream beyond the happy path: the peer's stream limit opens more
// sessions; a GOAWAY makes the proxy move on to a fresh session, resending only the
// streams the peer never processed, so nothing is lost and nothing is sent twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import http from 'node:http';
import { startProxy, json } from './helpers.mjs';

/**
 * A small h2c upstream. `accept(stream)` says whether this stream is processed (false:
 * refused, as a server does with streams above the last id of its GOAWAY); processed
 * streams are recorded in `seen` (by the request's `n`) and answered after `delayMs`.
 */
async function h2Upstream(settings, delayMs, accept = () => true) {
  const server = http2.createServer({ settings });
  const sessions = new Set();
  const seen = [];
  server.on('session', (s) => sessions.add(s));
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    if (!accept(stream)) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    let body = '';
    stream.on('data', (d) => (body += d));
    stream.on('end', () => {
      seen.push(JSON.parse(body).n);
      answer(stream, delayMs);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    sessions,
    close: () => new Promise((r) => (sessions.forEach((s) => s.destroy()), server.close(r))),
  };
}

const answer = (stream, delayMs = 0) =>
  setTimeout(() => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end('{"ok":true}');
  }, delayMs);

test("more sessions open when every session is at the peer's stream limit", async () => {
  const up = await h2Upstream({ maxConcurrentStreams: 4 }, 150);
  const proxy = await startProxy({ UPSTREAM_URL: up.url, UPSTREAM_HTTP2: 'true', RATE_LIMIT_ENABLED: 'false' });
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const all = await Promise.all(Array.from({ length: 20 }, (_, n) => json(`${proxy.url}/v1/chat/completions`, { n }, { agent })));
    agent.destroy();
    assert.deepEqual(all.map((r) => r.status), Array(20).fill(200));
    assert.equal(up.seen.length, 20);
    assert.ok(up.sessions.size >= 3 && up.sessions.size <= 6, `${up.sessions.size} sessions for 20 streams at 4 per session`);
  } finally {
    await proxy.stop();
    await up.close();
  }
});

test('after a GOAWAY, streams the peer never processed are resent once on a new session; none twice', async () => {
  // The first session answers its first stream, then sends GOAWAY naming that stream as
  // the last one it will process (as a server going down gracefully does): the streams
  // opened after it on that session were never seen.
  let first = null;
  let lastId = 0;
  const up = await h2Upstream({}, 20, (stream) => {
    if (first === null) {
      first = stream.session;
      lastId = stream.id;
      first.goaway(http2.constants.NGHTTP2_NO_ERROR, lastId);
      return true;
    }
    return stream.session !== first || stream.id <= lastId;
  });
  const proxy = await startProxy({ UPSTREAM_URL: up.url, UPSTREAM_HTTP2: 'true', RATE_LIMIT_ENABLED: 'false', MAX_RETRIES: '0' });
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    for (let round = 0; round < 3; round++) {
      const all = await Promise.all(Array.from({ length: 10 }, (_, i) => json(`${proxy.url}/v1/chat/completions`, { n: round * 10 + i }, { agent })));
        assert.deepEqual(all.map((r) => r.status + ' ' + (r.status === 200 ? '' : r.body)), Array(10).fill('200 '), `round ${round}`);
    }
    agent.destroy();
    const sorted = [...up.seen].sort((a, b) => a - b);
    assert.deepEqual(sorted, Array.from({ length: 30 }, (_, i) => i), 'each request reached the upstream exactly once');
    assert.ok(up.sessions.size >= 2);
  } finally {
    await proxy.stop();
    await up.close();
  }
});
