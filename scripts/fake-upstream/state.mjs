/**
 * state.mjs: one fake's options and its per-instance state.
 *
 * Every `startFakeUpstream` call gets its own state (counters, fault queue,
 * stored files, id counters, health), so parallel tests never share anything.
 * The `stats` object is handed out live: it is reset in place, never replaced.
 * A `name` and a `models` list let several fakes play a fleet of upstreams.
 */
import { sha256Hex } from './request-input.mjs';

export const LOOPBACK = '127.0.0.1';
/** The response header naming the fake that answered (its `name` option), on every answer. */
export const FAKE_UPSTREAM_HEADER = 'x-fake-upstream';
/** The IPv6 loopback, for tests of an upstream written as an IPv6 literal (`http://[::1]:port`). */
export const LOOPBACK6 = '::1';

/**
 * @typedef {object} LastRequest
 * @property {string} method
 * @property {string} path
 * @property {string} query        Raw query string without '?'.
 * @property {Record<string,string>} headers  Lower-case names, repeated values joined with ', '.
 * @property {number} bodyBytes
 * @property {string} bodySha256
 *
 * @typedef {object} Stats
 * @property {number} attempts         Requests under /v1/ (counted when their headers arrive).
 * @property {Record<string,number>} attemptsByPath
 * @property {number} connections      TCP connections accepted (h1 and h2c).
 * @property {number} h2Sessions
 * @property {number} clientAborts     /v1/ requests whose client went away before the answer finished.
 * @property {number} completed        /v1/ responses fully written.
 * @property {number} wsConnections    Successful WebSocket handshakes.
 * @property {number} healthChecks     GET or HEAD /health, whatever it answered (not counted in `attempts`).
 * @property {number} modelListings    GET /v1/models (counted when their headers arrive, also in `attempts`).
 * @property {LastRequest|null} lastRequest
 *
 * @typedef {object} FakeUpstreamOptions
 * @property {number} [port]          0 = pick a free port.
 * @property {string} [host]          '127.0.0.1' (default) or '::1': loopback only.
 * @property {boolean} [h2c]          Serve cleartext HTTP/2 instead of HTTP/1.1.
 * @property {number} [chunks]        Default number of streamed chunks (default 5).
 * @property {number} [chunkDelayMs]  Default delay between streamed chunks (default 10).
 * @property {string} [name]          Stamped on every answer (`x-fake-upstream` header, `system_fingerprint`
 *                                    "fake-<name>"), so a test can tell which of several fakes answered
 *                                    (default 'fake'; printable ASCII without spaces, at most 100 characters).
 * @property {string[]} [models]      The only model ids this fake serves: listed by GET /v1/models, known to
 *                                    GET /v1/models/{id}, accepted by generating requests (others: 404
 *                                    model_not_found). Omitted: every id starting with 'fake' exists.
 * @property {((line: string) => void)|{info?: Function, log?: Function}|null} [logger]
 */

/**
 * Check the options and fill in the defaults; the caller's object is not touched.
 * @param {FakeUpstreamOptions} opts
 */
export function resolveOptions(opts) {
  const host = opts.host ?? LOOPBACK;
  if (host !== LOOPBACK && host !== LOOPBACK6) throw new RangeError(`fake-upstream only listens on ${LOOPBACK} or ${LOOPBACK6}, not ${host}`);
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port: ${port}`);
  const chunks = opts.chunks ?? 5;
  if (!Number.isInteger(chunks) || chunks < 0) throw new RangeError(`invalid chunks: ${chunks}`);
  const chunkDelayMs = opts.chunkDelayMs ?? 10;
  if (!Number.isFinite(chunkDelayMs) || chunkDelayMs < 0) throw new RangeError(`invalid chunkDelayMs: ${chunkDelayMs}`);
  const name = opts.name ?? 'fake';
  // It goes into a header value as it is, so only visible ASCII.
  if (typeof name !== 'string' || !/^[\x21-\x7e]{1,100}$/.test(name)) throw new RangeError(`invalid name: ${JSON.stringify(name)}`);
  return { host, port, h2c: opts.h2c === true, chunks, chunkDelayMs, name, models: resolveModels(opts.models), log: makeLog(opts.logger) };
}

/**
 * The `models` option as a frozen copy, or null for "every id starting with 'fake'".
 * @param {unknown} models
 * @returns {readonly string[]|null}
 */
function resolveModels(models) {
  if (models == null) return null;
  if (!Array.isArray(models)) throw new RangeError('models must be an array of model ids');
  for (const id of models) {
    if (typeof id !== 'string' || id === '') throw new RangeError(`invalid model id: ${JSON.stringify(id)}`);
  }
  if (new Set(models).size !== models.length) throw new RangeError(`duplicate model id in ${JSON.stringify(models)}`);
  return Object.freeze([...models]);
}

/**
 * A logger option (a function, or an object with `info` or `log`) as a line sink.
 * @param {unknown} logger
 * @returns {(line: string) => void}
 */
function makeLog(logger) {
  if (typeof logger === 'function') return /** @type {(line: string) => void} */ (logger);
  if (logger && typeof logger === 'object') {
    const l = /** @type {any} */ (logger);
    const fn = l.info ?? l.log;
    if (typeof fn === 'function') return (/** @type {string} */ line) => fn.call(logger, line);
  }
  return () => {};
}

/** @returns {Stats} */
function createStats() {
  return {
    attempts: 0,
    attemptsByPath: {},
    connections: 0,
    h2Sessions: 0,
    clientAborts: 0,
    completed: 0,
    wsConnections: 0,
    healthChecks: 0,
    modelListings: 0,
    lastRequest: null,
  };
}

/**
 * Zero the counters in place: callers hold a reference to the live object.
 * @param {Stats} stats
 */
export function resetStatsInPlace(stats) {
  const byPath = stats.attemptsByPath;
  for (const key of Object.keys(byPath)) delete byPath[key];
  Object.assign(stats, createStats(), { attemptsByPath: byPath });
}

/** What GET /health answers: 200 `{"status":"ok"}` until told otherwise (health.mjs). */
export const HEALTHY = Object.freeze({ status: 200, message: '' });

/**
 * @param {{h2c: boolean, chunks: number, chunkDelayMs: number, name: string, models: readonly string[]|null, log: (line: string) => void}} config
 */
export function createState(config) {
  return {
    ...config,
    stats: createStats(),
    /** @type {{status: number, message: string}} */
    health: HEALTHY,
    /** @type {Array<import('./faults.mjs').QueuedFault>} */
    faults: [],
    /** @type {Map<string, {meta: object, content: Buffer}>} */
    files: new Map(),
    nextId: 1, // ids of answers: chatcmpl-N, file-N, resp_N...
    requestSeq: 0, // x-request-id of answers under /v1/
  };
}
/** @typedef {ReturnType<typeof createState>} State */

/**
 * The number in the next answer id (chatcmpl-N, file-N, resp_N...).
 * @param {State} state
 */
export function nextId(state) {
  return state.nextId++;
}

/**
 * The `system_fingerprint` of this fake's answers: "fake-<name>".
 * @param {{name: string}} state
 */
export function fingerprint(state) {
  return `fake-${state.name}`;
}

/** The `created` timestamp of answers, in seconds like OpenAI's. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Count a request under /v1/ and make it the last request seen (its body is
 * filled in once it has been read).
 * @param {State} state
 * @param {{method: string, path: string, query: string, headers: Record<string,string>}} r
 */
export function recordAttempt(state, r) {
  const { stats } = state;
  stats.attempts += 1;
  stats.attemptsByPath[r.path] = (stats.attemptsByPath[r.path] ?? 0) + 1;
  if (r.method === 'GET' && r.path === '/v1/models') stats.modelListings += 1;
  /** @type {LastRequest} */
  const last = { method: r.method, path: r.path, query: r.query, headers: r.headers, bodyBytes: 0, bodySha256: sha256Hex('') };
  stats.lastRequest = last;
  return last;
}
