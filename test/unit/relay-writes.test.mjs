// How the relay writes an SSE answer to the client: one chunk per upstream delivery, straight to
// the socket, with the socket's backpressure reaching the upstream; HTTP/1.0 clients the old way.
// A real node:http server on loopback, a raw client socket, a scripted upstream body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { relayResponse } from '../../dist/upstream/relay.js';
import { BodyChannel } from '../../dist/upstream/body-channel.js';
import { Lifetime } from '../../dist/proxy/lifetime.js';
import { chunkFrame } from '../../dist/http/chunk-frame.js';
import { FakeClock } from './orchestration-fakes.mjs';

/** An upstream answer whose body the test drives; `flow` records pause/resume. */
function fakeUpstream(headers = { 'content-type': 'text/event-stream' }) {
  const flow = { calls: [], pause: () => flow.calls.push('pause'), resume: () => flow.calls.push('resume') };
  const body = new BodyChannel(flow);
  return { up: { status: 200, headers, body, abort: () => body.broken() }, body, flow };
}

/**
 * A server whose one request is relayed from `upstream`; resolves once the relay runs, with the
 * relay's promise and a raw client socket that sent `requestLine`.
 */
async function relayed(upstream, requestLine = 'GET /v1/chat/completions HTTP/1.1') {
  let onRelay;
  const started = new Promise((r) => (onRelay = r));
  const server = http.createServer((req, res) => {
    const clock = new FakeClock();
    const life = new Lifetime(clock);
    life.answerBegan(60_000);
    onRelay({ clock, result: relayResponse(upstream.up, res, { requestId: 'req-1', path: req.url, idleTimeoutMs: 60_000 }, life) });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect(server.address().port, '127.0.0.1');
  client.write(`${requestLine}\r\nhost: x\r\n\r\n`);
  const { clock, result } = await started;
  return { client, clock, result, close: () => (client.destroy(), server.close()) };
}

/** Everything the client receives until the connection closes or `until` matches. */
function received(client, until) {
  return new Promise((resolve) => {
    let all = Buffer.alloc(0);
    const done = () => resolve(all.toString('latin1'));
    client.on('data', (d) => {
      all = Buffer.concat([all, d]);
      if (until?.test(all.toString('latin1'))) done();
    });
    client.on('close', done);
  });
}

const ev = (n) => `data: {"n":${n}}\n\n`;

test('chunkFrame: hex size, CRLF, the data, CRLF; empty data refused (it would end the body)', () => {
  assert.equal(chunkFrame(Buffer.from('hello')).toString(), '5\r\nhello\r\n');
  assert.equal(chunkFrame(Buffer.alloc(300, 'a')).toString(), `12c\r\n${'a'.repeat(300)}\r\n`);
  assert.throws(() => chunkFrame(Buffer.alloc(0)), RangeError);
});

test('events delivered together go to the client as one chunk; each delivery at once; the end as the last chunk', async () => {
  const upstream = fakeUpstream();
  const { client, result, close } = await relayed(upstream);
  try {
    const seen = received(client, /0\r\n\r\n$/);
    upstream.body.data(Buffer.from(ev(1) + ev(2) + ev(3))); // one upstream read, three events
    upstream.body.data(Buffer.from(ev(4)));
    upstream.body.end();
    const wire = await seen;
    const body = wire.slice(wire.indexOf('\r\n\r\n') + 4);
    assert.match(wire, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(wire, /\r\ntransfer-encoding: chunked\r\n/i);
    assert.equal(body, `${(ev(1) + ev(2) + ev(3)).length.toString(16)}\r\n${ev(1)}${ev(2)}${ev(3)}\r\n${ev(4).length.toString(16)}\r\n${ev(4)}\r\n0\r\n\r\n`);
    assert.deepEqual(await result, { outcome: 'complete', bytesOut: (ev(1) + ev(2) + ev(3) + ev(4)).length, sse: true });
  } finally {
    close();
  }
});

test('a broken stream: the whole events so far, the error event, no last chunk', async () => {
  const upstream = fakeUpstream();
  const { client, result, close } = await relayed(upstream);
  try {
    const seen = received(client);
    upstream.body.data(Buffer.from(ev(1) + 'data: {"half'));
    upstream.body.broken();
    const wire = await seen;
    const body = wire.slice(wire.indexOf('\r\n\r\n') + 4);
    assert.ok(body.startsWith(`${ev(1).length.toString(16)}\r\n${ev(1)}\r\n`), body);
    assert.match(body, /"code":"upstream_stream_broken"/);
    assert.doesNotMatch(body, /half|\r\n0\r\n\r\n$/);
    assert.equal((await result).outcome, 'upstream_broken');
  } finally {
    close();
  }
});

test('a client that does not read: the upstream is paused, not buffered without bound; reading resumes it', async () => {
  const upstream = fakeUpstream();
  const { client, result, close } = await relayed(upstream);
  try {
    client.pause();
    const event = Buffer.from(`data: ${'x'.repeat(64 * 1024)}\n\n`);
    let sent = 0;
    while (!upstream.flow.calls.includes('pause')) {
      assert.ok(sent < 256 * 1024 * 1024, 'paused before 256 MiB were pushed');
      upstream.body.data(event); // what a producer that ignored the pause would still push
      sent += event.length;
      if (sent % (4 * 1024 * 1024) === 0) await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(upstream.flow.calls, ['pause']);
    const seen = received(client, /0\r\n\r\n$/);
    client.resume();
    await new Promise((resolve) => {
      const check = () => (upstream.flow.calls.includes('resume') ? resolve() : setTimeout(check, 5));
      check();
    });
    upstream.body.end();
    const wire = await seen;
    const body = wire.slice(wire.indexOf('\r\n\r\n') + 4);
    assert.equal(body.length, sent + (sent / event.length) * (event.length.toString(16).length + 4) + 5, 'every byte framed, none lost');
    assert.equal((await result).outcome, 'complete');
  } finally {
    close();
  }
});

for (const http10 of [false, true]) {
  test(`a client that stops reading past TIMEOUT is dropped as gone (499), not blamed on the upstream, and its connection closed${http10 ? ' (HTTP/1.0, res.write)' : ''}`, async () => {
    const upstream = fakeUpstream();
    const { client, clock, result, close } = await relayed(upstream, http10 ? 'GET /v1/chat/completions HTTP/1.0' : undefined);
    try {
      client.pause();
      const event = Buffer.from(`data: ${'x'.repeat(64 * 1024)}\n\n`);
      // a producer that sends whenever it may, until the client's buffers are full for good (a
      // 'drain' may still come while the kernel takes what was queued: then it sends again)
      const paused = () => upstream.flow.calls.at(-1) === 'pause';
      for (let sent = 0, quiet = 0; quiet < 5; ) {
        if (paused()) {
          await new Promise((r) => setTimeout(r, 10));
          quiet = paused() ? quiet + 1 : 0;
          continue;
        }
        assert.ok(sent < 256 * 1024 * 1024, 'paused before 256 MiB were pushed');
        upstream.body.data(event);
        sent += event.length;
        if (sent % (4 * 1024 * 1024) === 0) await new Promise((r) => setImmediate(r));
      }
      clock.advance(60_000); // TIMEOUT of silence, which is the client's: the upstream waits on it
      const r = await result;
      assert.equal(r.outcome, 'client_gone');
      const wire = await received(client.resume());
      assert.doesNotMatch(wire, /upstream sent nothing/, 'no error event blaming the upstream');
      assert.doesNotMatch(wire, /\r\n0\r\n\r\n$/, 'no clean end either');
    } finally {
      close();
    }
  });
}

test('an upstream silent past TIMEOUT while the client reads: the error event names the upstream', async () => {
  const upstream = fakeUpstream();
  const { client, clock, result, close } = await relayed(upstream);
  try {
    const seen = received(client);
    upstream.body.data(Buffer.from(ev(1)));
    await new Promise((r) => setImmediate(r));
    clock.advance(60_000);
    assert.equal((await result).outcome, 'idle_timeout');
    const wire = await seen;
    assert.match(wire, /upstream sent nothing for 60000 ms/);
    assert.match(wire, /"code":"upstream_timeout"/);
  } finally {
    close();
  }
});

test('an HTTP/1.0 client (no chunked encoding) gets the events through res.write, framed by the close', async () => {
  const upstream = fakeUpstream();
  const { client, result, close } = await relayed(upstream, 'GET /v1/chat/completions HTTP/1.0');
  try {
    const seen = received(client);
    upstream.body.data(Buffer.from(ev(1) + ev(2)));
    upstream.body.end();
    const wire = await seen;
    assert.match(wire, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(wire, /transfer-encoding/i);
    assert.equal(wire.slice(wire.indexOf('\r\n\r\n') + 4), ev(1) + ev(2));
    assert.equal((await result).outcome, 'complete');
  } finally {
    close();
  }
});

test('a JSON answer is written through res.write unchanged', async () => {
  const upstream = fakeUpstream({ 'content-type': 'application/json', 'content-length': '11' });
  const { client, result, close } = await relayed(upstream);
  try {
    const seen = received(client, /\{"ok":true}$/);
    upstream.body.data(Buffer.from('{"ok":true}'));
    upstream.body.end();
    const wire = await seen;
    assert.equal(wire.slice(wire.indexOf('\r\n\r\n') + 4), '{"ok":true}');
    assert.equal((await result).outcome, 'complete');
  } finally {
    close();
  }
});
