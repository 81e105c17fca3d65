// The HTTP/1.1 keep-alive pool and its connections, against a hand-written server on loopback.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Http1Pool } from '../../dist/upstream/http1-pool.js';
import { PeerClosed } from '../../dist/upstream/http1-connection.js';
import { UpstreamFailure } from '../../dist/upstream/transport.js';
import { deadPort } from '../e2e/helpers.mjs';

/** Everything a test opened, closed after it even when it failed midway. */
const cleanups = new Set();
afterEach(async () => {
  for (const close of [...cleanups]) await close();
  cleanups.clear();
});

/** The answer a server gives by default: the connection and request numbers as the body. */
function okResponse(body, extra = '') {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

/**
 * A server answering requests (heads only, no bodies) by hand. `handler(socket, request, info)`
 * answers one request; by default it writes okResponse('c<connection>r<request>').
 */
async function startServer(handler = (socket, _req, info) => socket.write(okResponse(`c${info.connection}r${info.request}`))) {
  const sockets = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    const info = { connection: sockets.length, request: 0 };
    let buf = '';
    socket.on('error', () => {});
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
        const req = buf.slice(0, i);
        buf = buf.slice(i + 4);
        info.request++;
        handler(socket, req, info);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let closing = null;
  const close = () => {
    closing ??= (async () => {
      cleanups.delete(close);
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    })();
    return closing;
  };
  cleanups.add(close);
  return {
    port: server.address().port,
    sockets,
    get connections() {
      return sockets.length;
    },
    close,
  };
}

/**
 * A pool on `port` whose clock is `clock.t`, moved by hand, and whose timers (connect
 * timeouts, the idle sweep) are recorded in `timers` ({ ms, fire(), cancelled }) and fire
 * only when a test says so.
 */
function makePool(port, opts = {}) {
  const clock = { t: 1000 };
  const timers = [];
  const pool = new Http1Pool({
    origin: new URL(`http://127.0.0.1:${port}`),
    maxConnections: 4,
    connectTimeoutMs: 2000,
    now: () => clock.t,
    timer: (ms, fn) => {
      const t = { ms, cancelled: false, fire: () => t.cancelled || fn() };
      timers.push(t);
      return () => (t.cancelled = true);
    },
    ...opts,
  });
  cleanups.add(async () => pool.close());
  return { pool, clock, timers };
}

/** A waiter whose connection is a promise; `given` tells whether it got one yet. */
function waiter({ fresh = false } = {}) {
  let resolve;
  const w = {
    fresh,
    closedOn: 0,
    onPoolClosed() {
      w.closedOn++;
    },
    given: null,
    connection: new Promise((r) => (resolve = r)),
    onConnection(conn) {
      assert.equal(w.given, null, 'a waiter is given one connection');
      w.given = conn;
      resolve(conn);
    },
  };
  return w;
}

/**
 * Sends one GET on `conn` and settles with what its owner heard: { head, body, clean } once
 * complete (after `onComplete(conn, clean, head)`, by default a release for reuse), or
 * { broken } when the connection failed.
 */
function exchange(conn, { path = '/', onComplete } = {}) {
  return new Promise((resolve) => {
    let head = null;
    const chunks = [];
    const owner = {
      onHead: (h) => (head = h),
      onBody: (c) => chunks.push(Buffer.from(c)),
      onComplete: (clean) => {
        onComplete?.(conn, clean, head);
        resolve({ head, body: Buffer.concat(chunks).toString(), clean });
      },
      onBroken: (err) => resolve({ broken: err, head }),
    };
    conn.begin(owner, false);
    conn.socket.write(`GET ${path} HTTP/1.1\r\nhost: upstream\r\n\r\n`);
  });
}

/** Acquires a connection, runs one exchange on it and releases it for reuse. */
async function roundTrip(pool, opts = {}) {
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  const result = await exchange(conn, { onComplete: (c) => pool.release(c, true, null), ...opts });
  return { conn, ...result };
}

/** Resolves once the connection's socket has closed. */
async function closed(conn) {
  if (!conn.closed) await once(conn.socket, 'close');
  // the pool hears of it from the same event; let its listener run
  await new Promise((r) => setImmediate(r));
}

/** `first`'s connection closes and leaves the pool empty; the next round trip opens a new one. */
async function expectReplaced(pool, first) {
  await closed(first.conn);
  assert.equal(pool.idleCount, 0);
  assert.equal(pool.size, 0);
  const second = await roundTrip(pool);
  assert.notEqual(second.conn, first.conn);
  assert.equal(second.body, 'c2r1');
}

test('sequential requests reuse one connection', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const a = await roundTrip(pool);
  assert.equal(a.head.status, 200);
  assert.equal(a.body, 'c1r1');
  assert.equal(a.clean, true);
  assert.equal(pool.idleCount, 1);
  const b = await roundTrip(pool);
  const c = await roundTrip(pool);
  assert.equal(b.conn, a.conn);
  assert.equal(c.conn, a.conn);
  assert.equal(c.body, 'c1r3'); // the server saw all three on its first connection
  assert.equal(server.connections, 1);
  assert.equal(pool.opened, 1);
  assert.equal(pool.size, 1);
  assert.equal(pool.idleCount, 1);
  assert.equal(a.conn.uses, 3);
  assert.equal(a.conn.connected, true);
});

test('the most recently released idle connection is reused first', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const w1 = waiter();
  const w2 = waiter();
  pool.acquire(w1);
  pool.acquire(w2);
  const [c1, c2] = await Promise.all([w1.connection, w2.connection]);
  assert.notEqual(c1, c2);
  await exchange(c1, { onComplete: (c) => pool.release(c, true, null) });
  await exchange(c2, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(pool.idleCount, 2);
  const next = await roundTrip(pool);
  assert.equal(next.conn, c2);
  assert.equal(server.connections, 2);
});

test('an idle connection past idleTimeoutMs is not reused', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool, clock } = makePool(server.port, { idleTimeoutMs: 4000 });
  const first = await roundTrip(pool);
  clock.t += 3999;
  const second = await roundTrip(pool);
  assert.equal(second.conn, first.conn, 'still within its idle time');
  clock.t += 4000;
  const third = await roundTrip(pool);
  assert.notEqual(third.conn, first.conn);
  assert.equal(third.body, 'c2r1');
  assert.equal(server.connections, 2);
  assert.equal(pool.opened, 2);
  assert.equal(first.conn.socket.destroyed, true, 'the stale one is closed');
  await closed(first.conn);
  assert.equal(pool.size, 1);
  assert.equal(pool.idleCount, 1);
});

test('the idle sweep runs on the injected timer: it closes what outlived its idle time and stops when nothing is idle', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool, clock, timers } = makePool(server.port, { idleTimeoutMs: 4000, connectTimeoutMs: 1500 });
  const first = await roundTrip(pool);
  const sweeps = () => timers.filter((t) => t.ms === 2000 && !t.cancelled);
  assert.equal(sweeps().length, 1, 'one sweep armed once a connection is idle');
  clock.t += 2000;
  sweeps()[0].fire();
  assert.equal(first.conn.socket.destroyed, false, 'still within its idle time');
  assert.equal(sweeps().length, 2, 'armed again while something is idle');
  clock.t += 2000;
  sweeps()[1].fire();
  assert.equal(first.conn.socket.destroyed, true, 'closed once its 4 s are up');
  assert.equal(pool.idleCount, 0);
  assert.equal(timers.filter((t) => t.ms === 2000).length, 2, 'nothing idle: no further sweep');
});

test('an expired idle connection under a cap of one makes way for a new one', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool, clock } = makePool(server.port, { maxConnections: 1, idleTimeoutMs: 1000 });
  const first = await roundTrip(pool);
  clock.t += 5000;
  const second = await roundTrip(pool);
  assert.notEqual(second.conn, first.conn);
  assert.equal(first.conn.closed, true);
  assert.equal(server.connections, 2);
  assert.equal(pool.size, 1);
});

test('a server Keep-Alive timeout shortens the idle limit to a second less', { timeout: 5000 }, async () => {
  const server = await startServer((socket, _req, info) => socket.write(okResponse(`c${info.connection}`, 'keep-alive: timeout=3\r\n')));
  const { pool, clock } = makePool(server.port, { idleTimeoutMs: 60_000 });
  // the owner passes on the hint the parser read
  const release = (c, _clean, head) => pool.release(c, true, head.keepAliveTimeoutMs);
  const first = await roundTrip(pool, { onComplete: release });
  assert.equal(first.head.keepAliveTimeoutMs, 3000);
  clock.t += 1999;
  const second = await roundTrip(pool, { onComplete: release });
  assert.equal(second.conn, first.conn, 'reused at 1999 ms');
  clock.t += 2001;
  const third = await roundTrip(pool, { onComplete: release });
  assert.notEqual(third.conn, first.conn, 'not reused at 2001 ms');
  assert.equal(server.connections, 2);
});

test('release(conn, true, 3000) keeps a connection for 2000 ms of the pool clock', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool, clock } = makePool(server.port);
  const { conn } = await roundTrip(pool, { onComplete: (c) => pool.release(c, true, 3000) });
  assert.equal(conn.idleLimitMs, 2000);
  assert.equal(conn.idleSince, clock.t);
  clock.t += 2001;
  const next = await roundTrip(pool);
  assert.notEqual(next.conn, conn);
  assert.equal(server.connections, 2);
});

test('release(conn, false, ...) closes the connection', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const first = await roundTrip(pool, { onComplete: (c) => pool.release(c, false, null) });
  assert.equal(first.body, 'c1r1');
  assert.equal(pool.idleCount, 0);
  await expectReplaced(pool, first);
  assert.equal(pool.opened, 2);
});

test('maxConnections caps concurrency: a second request waits for the first connection', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const w1 = waiter();
  const w2 = waiter();
  pool.acquire(w1);
  pool.acquire(w2);
  const c1 = await w1.connection;
  assert.equal(w2.given, null, 'the second waits');
  const r1 = await exchange(c1, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(r1.body, 'c1r1');
  // handed over at release, without going idle
  assert.equal(w2.given, c1);
  assert.equal(pool.idleCount, 0);
  const r2 = await exchange(c1, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(r2.body, 'c1r2');
  assert.equal(server.connections, 1);
  assert.equal(pool.opened, 1);
});

test('queued waiters are served in order', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const ws = [waiter(), waiter(), waiter()];
  for (const w of ws) pool.acquire(w);
  const order = [];
  for (const [i, w] of ws.entries()) {
    const conn = await w.connection;
    order.push(i);
    for (const later of ws.slice(i + 1)) assert.equal(later.given, null);
    await exchange(conn, { onComplete: (c) => pool.release(c, true, null) });
  }
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(server.connections, 1);
});

test('pool.cancel(waiter) takes a queued waiter out of the queue', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const w1 = waiter();
  const w2 = waiter();
  const w3 = waiter();
  pool.acquire(w1);
  pool.acquire(w2);
  pool.acquire(w3);
  const c1 = await w1.connection;
  pool.cancel(w2);
  await exchange(c1, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(w2.given, null, 'the cancelled waiter gets nothing');
  assert.equal(w3.given, c1, 'the one behind it does');
  await exchange(c1, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(w2.given, null);
  assert.equal(pool.idleCount, 1, 'with nobody waiting the connection goes idle');
  pool.cancel(w2); // cancelling twice, or a waiter not queued, is harmless
  pool.cancel(waiter());
});

test('when a busy connection closes, a queued waiter gets a freshly opened one', { timeout: 5000 }, async () => {
  // the first connection is closed by the server without an answer; later ones are answered
  const server = await startServer((socket, _req, info) => {
    if (info.connection === 1) socket.end();
    else socket.write(okResponse(`c${info.connection}r${info.request}`));
  });
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const w1 = waiter();
  const w2 = waiter();
  pool.acquire(w1);
  pool.acquire(w2);
  const c1 = await w1.connection;
  const r1 = await exchange(c1);
  assert.ok(r1.broken instanceof PeerClosed);
  const c2 = await w2.connection;
  assert.notEqual(c2, c1);
  assert.equal(c1.closed, true);
  const r2 = await exchange(c2, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(r2.body, 'c2r1');
  assert.equal(pool.opened, 2);
  assert.equal(pool.size, 1);
});

test('a connect to a closed port reports the error to the owner', { timeout: 5000 }, async () => {
  const { pool } = makePool(await deadPort());
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  const r = await exchange(conn);
  assert.ok(r.broken instanceof Error);
  assert.equal(r.broken.code, 'ECONNREFUSED');
  assert.equal(r.head, null);
  assert.equal(conn.connected, false);
  await closed(conn);
  assert.equal(pool.size, 0, 'the failed connection frees its slot');
  pool.close();
});

test('a connect that does not finish in connectTimeoutMs reports connect_error', { timeout: 5000 }, async () => {
  // TCP connects, but the TLS handshake the pool waits for never gets an answer
  const server = await startServer();
  const { pool, timers } = makePool(server.port, { origin: new URL(`https://127.0.0.1:${server.port}`), maxConnections: 1, connectTimeoutMs: 50 });
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  const broken = exchange(conn);
  assert.deepEqual(timers.map((t) => [t.ms, t.cancelled]), [[50, false]]);
  timers[0].fire(); // the handshake never finishes: the 50 ms are up
  const r = await broken;
  // only the pool's connect timer makes this failure (a socket error arrives as itself)
  assert.ok(r.broken instanceof UpstreamFailure, String(r.broken));
  assert.match(r.broken.message, /connect timeout after 50 ms/);
  assert.equal(r.broken.outcome, 'connect_error');
  assert.equal(r.broken.details.neverSent, true);
  assert.equal(conn.connected, false);
  assert.equal(conn.socket.destroyed, true);
  await closed(conn);
  assert.equal(pool.size, 0);
});

test('a connection that connected in time outlives its connect timeout', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool, timers } = makePool(server.port, { connectTimeoutMs: 150 });
  const first = await roundTrip(pool);
  assert.equal(first.conn.connected, true, first.broken?.message);
  const connects = timers.filter((t) => t.ms === 150);
  assert.deepEqual(connects.map((t) => [t.ms, t.cancelled]), [[150, true]], 'the connect cancelled its timer');
  connects[0].fire(); // had it not been cancelled, this would kill the connection
  assert.equal(first.conn.socket.destroyed, false);
  const second = await roundTrip(pool);
  assert.equal(second.conn, first.conn);
  assert.equal(second.body, 'c1r2');
});

test('whenConnected runs once the connection is up, or at once when it is', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  assert.equal(conn.connected, false);
  const ran = [];
  await new Promise((resolve) => conn.whenConnected(() => resolve(ran.push('later'))));
  assert.equal(conn.connected, true);
  conn.whenConnected(() => ran.push('now'));
  assert.deepEqual(ran, ['later', 'now']);
  pool.close();
  conn.destroy();
  await server.close();
});

test('pool.close() destroys idle connections, and a later release closes instead of keeping', { timeout: 5000 }, async () => {
  const server = await startServer((socket, req, info) => {
    if (req.startsWith('GET /slow')) server.slow = () => socket.write(okResponse('slow'));
    else socket.write(okResponse(`c${info.connection}r${info.request}`));
  });
  const { pool } = makePool(server.port);
  const wIdle = waiter();
  const wBusy = waiter();
  pool.acquire(wIdle);
  pool.acquire(wBusy);
  const idle = await wIdle.connection;
  const busy = await wBusy.connection;
  await exchange(idle, { onComplete: (c) => pool.release(c, true, null) });
  const slowDone = exchange(busy, { path: '/slow', onComplete: (c) => pool.release(c, true, null) });
  assert.equal(pool.idleCount, 1);
  pool.close();
  assert.equal(pool.idleCount, 0);
  assert.equal(idle.socket.destroyed, true);
  await closed(idle);
  // the busy one finishes its exchange, then is closed on release
  while (server.slow === undefined) await new Promise((r) => setImmediate(r));
  server.slow();
  const r = await slowDone;
  assert.equal(r.body, 'slow');
  assert.equal(pool.idleCount, 0);
  await closed(busy);
  assert.equal(pool.size, 0);
  await server.close();
});

test('bytes arriving on an idle connection destroy it, and it is not reused', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const first = await roundTrip(pool);
  assert.equal(pool.idleCount, 1);
  server.sockets[0].write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
  await expectReplaced(pool, first);
  assert.equal(server.connections, 2);
});

test('an idle connection the server closes leaves the pool', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const first = await roundTrip(pool);
  server.sockets[0].end();
  await expectReplaced(pool, first);
});

test('a peer that closes before answering reports PeerClosed (ECONNRESET)', { timeout: 5000 }, async () => {
  const server = await startServer((socket) => socket.end());
  const { pool } = makePool(server.port);
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  const r = await exchange(conn);
  assert.ok(r.broken instanceof PeerClosed);
  assert.equal(r.broken.code, 'ECONNRESET');
  assert.match(r.broken.message, /before answering/);
  assert.equal(r.head, null);
  assert.equal(conn.connected, true);
  assert.equal(conn.parser.started, false);
  await closed(conn);
  assert.equal(pool.size, 0);
});

test('a peer that closes in the middle of a response reports PeerClosed after the head', { timeout: 5000 }, async () => {
  const server = await startServer((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
  const { pool } = makePool(server.port);
  const w = waiter();
  pool.acquire(w);
  const r = await exchange(await w.connection);
  assert.ok(r.broken instanceof PeerClosed);
  assert.equal(r.broken.code, 'ECONNRESET');
  assert.match(r.broken.message, /middle of its response/);
  assert.equal(r.head.status, 200);
});

test('a body read until close completes when the server closes', { timeout: 5000 }, async () => {
  const server = await startServer((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it'));
  const { pool } = makePool(server.port);
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  const r = await exchange(conn, { onComplete: (c, clean, head) => pool.release(c, clean && head.keepAlive, head.keepAliveTimeoutMs) });
  assert.equal(r.body, 'all of it');
  assert.equal(r.clean, true);
  assert.equal(r.head.keepAlive, false);
  await closed(conn);
  assert.equal(pool.idleCount, 0);
  assert.equal(pool.size, 0);
});

test('a malformed response reaches the owner as the parse error, and the connection closes', { timeout: 5000 }, async () => {
  const server = await startServer((socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n'));
  const { pool } = makePool(server.port);
  const w = waiter();
  pool.acquire(w);
  const conn = await w.connection;
  const r = await exchange(conn);
  assert.equal(r.broken.name, 'HttpParseError');
  assert.equal(r.broken.code, 'HPE_INVALID_CONTENT_LENGTH');
  await closed(conn);
  assert.equal(pool.size, 0);
});

test('a response with bytes after it completes unclean, and the owner can drop the connection', { timeout: 5000 }, async () => {
  const server = await startServer((socket) => socket.write(okResponse('one') + okResponse('two')));
  const { pool } = makePool(server.port);
  const first = await roundTrip(pool, { onComplete: (c, clean) => pool.release(c, clean, null) });
  assert.equal(first.body, 'one');
  assert.equal(first.clean, false);
  await closed(first.conn);
  assert.equal(pool.idleCount, 0);
});

test('a waiter that wants a fresh connection never gets an idle one', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const first = await roundTrip(pool);
  assert.equal(pool.idleCount, 1);
  const w = waiter({ fresh: true });
  pool.acquire(w);
  const conn = await w.connection;
  assert.notEqual(conn, first.conn);
  assert.equal(pool.idleCount, 1, 'the warm one stays for others');
  assert.equal(pool.size, 2);
  const r = await exchange(conn, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(r.body, 'c2r1');
});

test('at the cap, a fresh waiter takes over the slot of the coldest idle connection', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const first = await roundTrip(pool);
  const w = waiter({ fresh: true });
  pool.acquire(w);
  const conn = await w.connection;
  assert.notEqual(conn, first.conn);
  assert.equal(first.conn.usable, false, 'the idle one was closed for it');
  assert.equal(pool.size, 1);
  assert.equal(pool.idleCount, 0);
  await closed(first.conn);
  assert.equal(pool.size, 1, 'its late close frees no second slot');
});

test('a connection released while a fresh waiter queues is replaced by a new one for it', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const busy = waiter();
  pool.acquire(busy);
  const conn = await busy.connection;
  const fresh = waiter({ fresh: true });
  pool.acquire(fresh);
  assert.equal(fresh.given, null, 'queued behind the busy connection');
  await exchange(conn, { onComplete: (c) => pool.release(c, true, null) });
  const next = await fresh.connection;
  assert.notEqual(next, conn);
  assert.equal(conn.usable, false);
  assert.equal(pool.size, 1);
  const r = await exchange(next, { onComplete: (c) => pool.release(c, true, null) });
  assert.equal(r.body, 'c2r1');
});

test('close() tells queued waiters, and later ones, that no connection will come', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port, { maxConnections: 1 });
  const busy = waiter();
  pool.acquire(busy);
  await busy.connection;
  const queued = waiter();
  pool.acquire(queued);
  pool.close();
  assert.equal(queued.closedOn, 1);
  assert.equal(queued.given, null);
  const late = waiter();
  pool.acquire(late);
  assert.equal(late.closedOn, 1);
  assert.equal(late.given, null);
  assert.equal(pool.opened, 1, 'nothing opened after close');
});

test('a connection destroyed while idle is never handed out, even before its close event', { timeout: 5000 }, async () => {
  const server = await startServer();
  const { pool } = makePool(server.port);
  const first = await roundTrip(pool);
  first.conn.destroy(); // as on bytes while idle, or the peer's FIN: 'close' comes later
  const second = await roundTrip(pool);
  assert.notEqual(second.conn, first.conn);
  assert.equal(second.body, 'c2r1');
});
