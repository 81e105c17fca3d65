/**
 * server.mjs: `startFakeUpstream`: the HTTP/1.1 or h2c server on 127.0.0.1,
 * connection tracking, and a close that ends everything at once.
 *
 * HTTP/1.1 also carries WebSocket upgrades; h2c is cleartext HTTP/2 with prior
 * knowledge. Both hand each request to request-handler.mjs with this
 * instance's state, and count accepted connections (and h2 sessions).
 *
 * A fleet is several fakes, each with its own `name` (and `models`). A replica
 * that dies is `await fake.close()`: its port refuses connections from then on.
 * One that comes back is a new fake on the same port,
 * `await startFakeUpstream({ port: old.port, name: old.name })`, with fresh state;
 * the port can be listened on again as soon as `close()` has resolved.
 */
import http from 'node:http';
import http2 from 'node:http2';
import { FAKE_UPSTREAM_HEADER, createState, resetStatsInPlace, resolveOptions } from './state.mjs';
import { normalizeFault } from './faults.mjs';
import { normalizeHealth } from './health.mjs';
import { handleRequest } from './request-handler.mjs';
import { handleUpgrade } from './ws-echo-server.mjs';

/** @typedef {import('./state.mjs').State} State */
/** @typedef {import('node:net').Socket} Socket */

/**
 * @typedef {object} FakeUpstream
 * @property {string} url
 * @property {number} port
 * @property {boolean} h2c
 * @property {string} name             The `x-fake-upstream` header of every answer.
 * @property {readonly string[]|null} models  The `models` option, or null (every 'fake*' id).
 * @property {import('./state.mjs').Stats} stats
 * @property {(fault: import('./faults.mjs').Fault) => void} fault
 * @property {() => void} clearFaults
 * @property {() => void} resetStats
 * @property {(status: number, message?: string) => void} setHealth  What GET /health answers from now on
 *   (200 = healthy; 503 = llama.cpp loading a model). Throws a TypeError outside 200..599.
 * @property {() => Promise<void>} close  Ends every connection at once and stops listening.
 */

const noop = () => {};

/**
 * The 'request' listener of both servers.
 * @param {State} state
 * @returns {(req: any, res: any) => void}
 */
function requestListener(state) {
  return (req, res) => {
    handleRequest(state, req, res).catch((err) => state.log(`fake-upstream: ${err?.stack ?? err}`));
  };
}

/** @param {State} state */
function createH1Server(state) {
  const server = http.createServer(requestListener(state));
  server.keepAliveTimeout = 5000;
  server.on('upgrade', (req, socket, head) => handleUpgrade(state, req, /** @type {Socket} */ (socket), head));
  const badRequest = `HTTP/1.1 400 Bad Request\r\n${FAKE_UPSTREAM_HEADER}: ${state.name}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end(badRequest);
    else socket.destroy();
  });
  return server;
}

/**
 * @param {State} state
 * @param {Set<http2.ServerHttp2Session>} sessions
 */
function createH2Server(state, sessions) {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 100 }, peerMaxConcurrentStreams: 100 });
  server.on('request', requestListener(state));
  server.on('session', (session) => {
    state.stats.h2Sessions += 1;
    sessions.add(session);
    session.on('error', noop);
    session.once('close', () => sessions.delete(session));
  });
  server.on('sessionError', noop);
  return server;
}

/**
 * Start a fake OpenAI-compatible upstream on 127.0.0.1. Every call has its own
 * state (stats, faults, files), so parallel tests never share anything.
 * @param {import('./state.mjs').FakeUpstreamOptions} [opts]
 * @returns {Promise<FakeUpstream>}
 */
export async function startFakeUpstream(opts = {}) {
  const config = resolveOptions(opts);
  const { h2c, chunks, chunkDelayMs, name, models, log } = config;
  const state = createState({ h2c, chunks, chunkDelayMs, name, models, log });
  /** @type {Set<Socket>} */
  const sockets = new Set();
  /** @type {Set<http2.ServerHttp2Session>} */
  const sessions = new Set();
  const server = config.h2c ? createH2Server(state, sessions) : createH1Server(state);

  server.on('connection', (/** @type {Socket} */ socket) => {
    state.stats.connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve(undefined);
    });
  });
  const port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;

  /** @type {Promise<void>|null} */
  let closing = null;
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    port,
    h2c: config.h2c,
    name,
    models,
    stats: state.stats,
    fault(f) {
      state.faults.push(normalizeFault(f));
    },
    clearFaults() {
      state.faults.length = 0;
    },
    resetStats() {
      resetStatsInPlace(state.stats);
    },
    setHealth(status, message) {
      state.health = normalizeHealth(status, message);
    },
    close() {
      // Destroy everything at once: tests must not wait for keep-alive or hung streams.
      closing ??= new Promise((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
