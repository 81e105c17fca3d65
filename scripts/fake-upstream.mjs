#!/usr/bin/env node
/**
 * fake-upstream.mjs: a dependency-free, OpenAI-compatible fake LLM server.
 *
 * The demo, the end-to-end tests and the benchmark of the proxy talk to it
 * instead of a real model server. Answers are deterministic, streams are paced
 * by timers, and a FIFO queue of faults (close, status, hang, reset, slow)
 * lets a test script exactly how the next requests fail. Counters in `stats`
 * let tests see what reached the upstream: retries, aborts, connection reuse.
 *
 * It serves HTTP/1.1 (with WebSocket echo on /v1/realtime) or cleartext HTTP/2
 * with prior knowledge (h2c), and only ever listens on 127.0.0.1.
 *
 * Library:  import { startFakeUpstream, wsConnect } from './fake-upstream.mjs'
 * CLI:      node scripts/fake-upstream.mjs [--port N] [--h2c] [--chunks N] [--chunk-delay-ms N]
 * Control:  GET /_fake/stats, POST /_fake/fault (JSON fault), POST /_fake/reset
 */
import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/**
 * @typedef {'close'|'status'|'hang'|'reset'|'slow'} FaultAction
 *
 * @typedef {object} Fault
 * @property {FaultAction} action
 * @property {string} [path]      Exact pathname to match; omitted = any /v1/ path.
 * @property {number} [times]     How many matching requests it applies to (default 1).
 * @property {number} [status]    'status': HTTP status to answer (default 500).
 * @property {number|string} [retryAfter] 'status': value of a Retry-After header.
 * @property {string} [message]   'status': error message (a default names the status).
 * @property {string} [type]      'status': error type (default 'server_error').
 * @property {string|null} [code] 'status': error code (default null).
 * @property {number} [afterChunks] 'reset': chunks sent before the connection is cut (default 3).
 * @property {number} [delayMs]   'slow': delay between chunks, overrides the chunk delay.
 * @property {number} [firstByteDelayMs] 'slow': wait before sending headers (default 0).
 *
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
 * @property {LastRequest|null} lastRequest
 *
 * @typedef {object} FakeUpstreamOptions
 * @property {number} [port]          0 = pick a free port.
 * @property {string} [host]          Must be '127.0.0.1'.
 * @property {boolean} [h2c]          Serve cleartext HTTP/2 instead of HTTP/1.1.
 * @property {number} [chunks]        Default number of streamed chunks (default 5).
 * @property {number} [chunkDelayMs]  Default delay between streamed chunks (default 10).
 * @property {((line: string) => void)|{info?: Function, log?: Function}|null} [logger]
 *
 * @typedef {object} FakeUpstream
 * @property {string} url
 * @property {number} port
 * @property {boolean} h2c
 * @property {Stats} stats
 * @property {(fault: Fault) => void} fault
 * @property {() => void} clearFaults
 * @property {() => void} resetStats
 * @property {() => Promise<void>} close
 */

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

const LOOPBACK = '127.0.0.1';
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const MAX_STORED_FILES = 20;
const MAX_CHUNKS = 100_000;
const MAX_DELAY_MS = 600_000;
const MAX_EMBEDDING_DIMENSIONS = 4096;
const DEFAULT_EMBEDDING_DIMENSIONS = 8;
const MODEL_CREATED = 1700000000;
const MODEL_IDS = ['fake-model', 'fake-model-2', 'fake-embed', 'fake-tts', 'fake-whisper'];
const FAULT_ACTIONS = new Set(['close', 'status', 'hang', 'reset', 'slow']);
const WS_GUID = '258EAFA5-E914-47C7-95CA-C5AB0DC85B11';
const WS_OP = Object.freeze({ CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa });
/** @type {Buffer} */
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

const noop = () => {};

/** An error that becomes an OpenAI-shaped error answer. */
class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {{type?: string, param?: string|null, code?: string|null, headers?: Record<string,string>, closeConnection?: boolean}} [extra]
   */
  constructor(status, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = extra.type ?? 'invalid_request_error';
    this.param = extra.param ?? null;
    this.code = extra.code ?? null;
    this.headers = extra.headers ?? {};
    // Set when the request body was not read to its end: an h1 connection cannot be reused.
    this.closeConnection = extra.closeConnection ?? false;
  }
}

/** The client went away while we were still reading its request. */
class ClientGoneError extends Error {}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/** @param {Buffer|string} data */
function sha256Hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** @param {string} text */
function countWords(text) {
  return text.split(/\s+/).filter(Boolean).length;
}

/**
 * Words in a message `content`: a string, or an array of parts whose text parts count.
 * @param {unknown} content
 */
function countContentWords(content) {
  if (typeof content === 'string') return countWords(content);
  if (!Array.isArray(content)) return 0;
  let words = 0;
  for (const part of content) {
    if (typeof part === 'string') words += countWords(part);
    else if (part && typeof part.text === 'string') words += countWords(part.text);
  }
  return words;
}

/** @param {string} rawUrl */
function splitUrl(rawUrl) {
  // Keep the raw path and query: tests check exactly what the proxy forwarded.
  const q = rawUrl.indexOf('?');
  return q < 0 ? { path: rawUrl, query: '' } : { path: rawUrl.slice(0, q), query: rawUrl.slice(q + 1) };
}

/**
 * Flattened raw headers to a plain object. Repeated headers are joined with ', ' so a
 * duplicated header stays visible; h2 pseudo-headers (':path'...) are dropped.
 * @param {string[]} rawHeaders
 */
function headersFromRaw(rawHeaders) {
  /** @type {Record<string,string>} */
  const out = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name.startsWith(':')) continue;
    const value = String(rawHeaders[i + 1]);
    out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${value}` : value;
  }
  return out;
}

/**
 * A non-negative integer from a header, an option or a fault field, or the fallback.
 * @param {unknown} value
 * @param {number} fallback
 * @param {number} max
 */
function intOr(value, fallback, max) {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, max) : fallback;
}

/** @param {unknown} logger */
function makeLog(logger) {
  if (typeof logger === 'function') return /** @type {(line: string) => void} */ (logger);
  if (logger && typeof logger === 'object') {
    const l = /** @type {any} */ (logger);
    const fn = l.info ?? l.log;
    if (typeof fn === 'function') return (/** @type {string} */ line) => fn.call(logger, line);
  }
  return noop;
}

// ---------------------------------------------------------------------------
// Per-instance state: stats, faults, stored files, id counter
// ---------------------------------------------------------------------------

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
    lastRequest: null,
  };
}

/**
 * Zero the counters in place: callers hold a reference to the live object.
 * @param {Stats} stats
 */
function resetStatsInPlace(stats) {
  const byPath = stats.attemptsByPath;
  for (const key of Object.keys(byPath)) delete byPath[key];
  Object.assign(stats, createStats(), { attemptsByPath: byPath });
}

/**
 * @param {{h2c: boolean, chunks: number, chunkDelayMs: number, log: (line: string) => void}} config
 */
function createState(config) {
  return {
    ...config,
    stats: createStats(),
    /** @type {Array<Fault & {remaining: number}>} */
    faults: [],
    /** @type {Map<string, {meta: object, content: Buffer}>} */
    files: new Map(),
    nextId: 1, // ids of answers: chatcmpl-N, file-N, resp_N...
    requestSeq: 0, // x-request-id of answers under /v1/
  };
}
/** @typedef {ReturnType<typeof createState>} State */

/** @param {State} state */
function nextId(state) {
  return state.nextId++;
}

/**
 * Validate a fault and give it its own copy with a countdown.
 * @param {unknown} input
 * @returns {Fault & {remaining: number}}
 */
function normalizeFault(input) {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw new TypeError('fault must be an object');
  const f = /** @type {Fault} */ ({ ...input });
  if (!FAULT_ACTIONS.has(f.action)) {
    throw new TypeError(`fault.action must be one of ${[...FAULT_ACTIONS].join(', ')}`);
  }
  if (f.path != null && (typeof f.path !== 'string' || !f.path.startsWith('/'))) {
    throw new TypeError('fault.path must be a pathname starting with /');
  }
  const times = f.times == null ? 1 : Number(f.times);
  if (!Number.isInteger(times) || times < 1) throw new TypeError('fault.times must be a positive integer');
  if (f.action === 'status') {
    const status = f.status == null ? 500 : Number(f.status);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new TypeError('fault.status must be 200..599');
    f.status = status;
  }
  return { ...f, times, remaining: times };
}

/**
 * Take the first queued fault matching the path, counting one use of it.
 * @param {State} state
 * @param {string} path
 */
function takeFault(state, path) {
  const i = state.faults.findIndex((f) => f.path == null || f.path === path);
  if (i < 0) return null;
  const fault = state.faults[i];
  fault.remaining -= 1;
  if (fault.remaining <= 0) state.faults.splice(i, 1);
  return fault;
}

/**
 * @param {State} state
 * @param {{method: string, path: string, query: string, headers: Record<string,string>}} r
 */
function recordAttempt(state, r) {
  const { stats } = state;
  stats.attempts += 1;
  stats.attemptsByPath[r.path] = (stats.attemptsByPath[r.path] ?? 0) + 1;
  /** @type {LastRequest} */
  const last = { method: r.method, path: r.path, query: r.query, headers: r.headers, bodyBytes: 0, bodySha256: sha256Hex(EMPTY) };
  stats.lastRequest = last;
  return last;
}

// ---------------------------------------------------------------------------
// Request context: lifecycle, abortable sleeps, safe writes
// ---------------------------------------------------------------------------

/**
 * @param {State} state
 * @param {any} req  http.IncomingMessage or http2.Http2ServerRequest
 * @param {any} res  http.ServerResponse or http2.Http2ServerResponse
 */
function createContext(state, req, res) {
  const { path, query } = splitUrl(req.url ?? '/');
  const isApi = path.startsWith('/v1/');
  return {
    state,
    req,
    res,
    method: /** @type {string} */ (req.method),
    path,
    query,
    headers: headersFromRaw(req.rawHeaders ?? []),
    isApi,
    requestId: isApi ? `req_fake_${++state.requestSeq}` : null,
    body: EMPTY,
    /** @type {any} */
    json: undefined,
    /** @type {(Fault & {remaining: number})|null} */
    fault: null,
    /** @type {LastRequest|null} */
    last: null,
    finished: false, // the whole answer was handed to the transport
    closed: false, // the response is over, finished or not
    serverAborted: false, // we cut it on purpose (fault), so it is not a client abort
    /** @type {Set<() => void>} */
    wakers: new Set(),
  };
}
/** @typedef {ReturnType<typeof createContext>} Ctx */

/**
 * Count completions and client aborts once per request, and wake every pending
 * sleep when the response closes so no chunk timer outlives its client.
 * @param {Ctx} ctx
 */
function watchLifecycle(ctx) {
  const { res, state } = ctx;
  res.on('finish', () => {
    // The h2 compatibility layer also emits 'finish' when the client resets the
    // stream, so only an answer we ended ourselves, on a stream not reset, counts.
    const reset = state.h2c && Boolean(res.stream?.rstCode);
    if (!res.writableEnded || reset || ctx.finished) return;
    ctx.finished = true;
    if (ctx.isApi) state.stats.completed += 1;
  });
  res.on('close', () => {
    if (ctx.closed) return;
    ctx.closed = true;
    for (const wake of ctx.wakers) wake();
    ctx.wakers.clear();
    const aborted = !ctx.finished && !ctx.serverAborted;
    if (aborted && ctx.isApi) state.stats.clientAborts += 1;
    const fault = ctx.fault ? ` [fault ${ctx.fault.action}]` : '';
    const how = ctx.finished ? '' : ctx.serverAborted ? ' (cut)' : ' (client gone)';
    state.log(`${ctx.method} ${ctx.path} -> ${res.statusCode}${how}${fault}`);
  });
}

/**
 * Resolve true after `ms`, or false at once if the client goes away first.
 * @param {Ctx} ctx
 * @param {number} ms
 * @returns {Promise<boolean>}
 */
function sleep(ctx, ms) {
  if (ctx.closed) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      ctx.wakers.delete(wake);
      resolve(!ctx.closed);
    }, ms);
    ctx.wakers.add(wake);
  });
}

/** @param {Ctx} ctx */
function canWrite(ctx) {
  return !ctx.closed && !ctx.res.destroyed && !ctx.res.writableEnded;
}

/**
 * Cut the connection (h1) or reset the stream (h2) without a proper end.
 * @param {Ctx} ctx
 */
function abortConnection(ctx) {
  ctx.serverAborted = true;
  if (ctx.state.h2c) {
    const stream = ctx.res.stream;
    if (stream && !stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    ctx.req.socket?.destroy();
  }
}

// ---------------------------------------------------------------------------
// Body reading and parsing
// ---------------------------------------------------------------------------

/** @param {number} limit */
function tooLarge(limit) {
  return new HttpError(413, `Request body too large: the maximum is ${limit} bytes.`, { closeConnection: true });
}

/**
 * Read the whole request body, refusing more than `limit` bytes.
 * @param {any} req
 * @param {number} limit
 * @returns {Promise<Buffer>}
 */
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      req.resume(); // discard what comes, we answer 413 right away
      reject(tooLarge(limit));
      return;
    }
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    let done = false;
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.off('data', onData);
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.once('close', () => {
      if (done) return;
      done = true;
      reject(new ClientGoneError('client went away while sending its body'));
    });
  });
}

/**
 * Parse a JSON object body the way the OpenAI API does: anything else is a 400.
 * @param {Buffer} body
 */
function parseJsonBody(body) {
  let value;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(
      400,
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
    );
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, 'The request body must be a JSON object.');
  }
  return value;
}

/**
 * @param {string|undefined} contentType
 * @returns {string|null}
 */
function multipartBoundary(contentType) {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : null;
}

/**
 * One parameter of a Content-Disposition value (`name`, `filename`), quoted or not.
 * @param {string} value
 * @param {string} key
 */
function dispositionParam(value, key) {
  // `(?:^|;)\s*name` does not match inside `filename` because a ';' must come first.
  const re = new RegExp(`(?:^|;)\\s*${key}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))`, 'i');
  const m = re.exec(value);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2].trim();
}

/**
 * @typedef {object} MultipartPart
 * @property {string|undefined} name
 * @property {string|undefined} filename
 * @property {string|undefined} contentType
 * @property {Record<string,string>} headers
 * @property {Buffer} content
 */

/**
 * @param {string} headerText
 * @param {Buffer} content
 * @returns {MultipartPart}
 */
function buildPart(headerText, content) {
  /** @type {Record<string,string>} */
  const headers = {};
  for (const line of headerText.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const disposition = headers['content-disposition'] ?? '';
  return {
    name: dispositionParam(disposition, 'name'),
    filename: dispositionParam(disposition, 'filename'),
    contentType: headers['content-type'],
    headers,
    content,
  };
}

/**
 * A small multipart/form-data parser over the complete body (RFC 7578 / 2046):
 * parts are split on "--boundary", part headers end at CRLFCRLF, and a part's
 * content ends right before "CRLF--boundary". Contents stay binary-exact.
 * @param {Buffer} body
 * @param {string|undefined} contentType
 * @returns {MultipartPart[]}
 */
export function parseMultipart(body, contentType) {
  const boundary = multipartBoundary(contentType);
  if (!boundary) throw new HttpError(400, 'Expected a multipart/form-data body with a boundary.');
  const malformed = () => new HttpError(400, 'Malformed multipart/form-data body.');
  const opening = Buffer.from(`--${boundary}`);
  const separator = Buffer.from(`\r\n--${boundary}`);

  // The first delimiter opens the body, or follows a preamble and a CRLF.
  /** @type {number} */
  let pos;
  if (body.subarray(0, opening.length).equals(opening)) pos = opening.length;
  else {
    const at = body.indexOf(separator);
    if (at < 0) throw malformed();
    pos = at + separator.length;
  }

  /** @type {MultipartPart[]} */
  const parts = [];
  for (;;) {
    // "--boundary--" closes the body.
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts;
    // Skip optional transport padding up to the CRLF ending the delimiter line.
    const lineEnd = body.indexOf(CRLF, pos);
    if (lineEnd < 0) throw malformed();
    const headerStart = lineEnd + 2;
    let headerText = '';
    let contentStart;
    if (body[headerStart] === 0x0d && body[headerStart + 1] === 0x0a) {
      contentStart = headerStart + 2; // a part without headers
    } else {
      const headerEnd = body.indexOf(CRLFCRLF, headerStart);
      if (headerEnd < 0) throw malformed();
      headerText = body.toString('utf8', headerStart, headerEnd);
      contentStart = headerEnd + 4;
    }
    const contentEnd = body.indexOf(separator, contentStart);
    if (contentEnd < 0) throw malformed();
    parts.push(buildPart(headerText, body.subarray(contentStart, contentEnd)));
    pos = contentEnd + separator.length;
  }
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/**
 * @param {string} message
 * @param {string} type
 * @param {string|null} [param]
 * @param {string|null} [code]
 */
function errorBody(message, type, param = null, code = null) {
  return { error: { message, type, param, code } };
}

/** @param {Ctx} ctx */
function invalidUrl(ctx) {
  return new HttpError(404, `Invalid URL (${ctx.method} ${ctx.path})`);
}

/**
 * Send a complete body with content-length. Under a 'reset' fault only half of it
 * goes out before the connection is cut, so clients see a truncated answer.
 * @param {Ctx} ctx
 * @param {number} status
 * @param {Record<string,string|number>} headers
 * @param {Buffer} body
 */
function sendBuffer(ctx, status, headers, body) {
  if (!canWrite(ctx)) return;
  /** @type {Record<string,string|number>} */
  const all = { ...headers, 'content-length': body.length };
  if (ctx.requestId) all['x-request-id'] = ctx.requestId;
  ctx.res.writeHead(status, all);
  if (ctx.fault?.action === 'reset') {
    ctx.res.write(body.subarray(0, Math.floor(body.length / 2)), () => abortConnection(ctx));
    return;
  }
  ctx.res.end(body);
}

/**
 * @param {Ctx} ctx
 * @param {number} status
 * @param {unknown} value
 * @param {Record<string,string>} [headers]
 */
function sendJson(ctx, status, value, headers = {}) {
  sendBuffer(ctx, status, { 'content-type': 'application/json', ...headers }, Buffer.from(JSON.stringify(value)));
}

/**
 * @param {Ctx} ctx
 * @param {HttpError} err
 */
function sendError(ctx, err) {
  if (ctx.res.headersSent) {
    // Too late for a clean error answer: cut the response so the client notices.
    abortConnection(ctx);
    return;
  }
  /** @type {Record<string,string>} */
  const headers = { ...err.headers };
  // Connection is hop-by-hop and illegal in h2; in h1 it stops reuse of a half-read connection.
  if (err.closeConnection && !ctx.state.h2c) headers.connection = 'close';
  sendJson(ctx, err.status, errorBody(err.message, err.type, err.param, err.code), headers);
}

/** @param {Ctx} ctx */
function sendNoContent(ctx) {
  if (!canWrite(ctx)) return;
  ctx.res.writeHead(204);
  ctx.res.end();
}

/**
 * Stream pre-serialised server-sent events: `head` at once, then every `body`
 * event in its own write after the chunk delay (so even the first token comes
 * after a delay and headers are visibly flushed before it), then `tail` at once.
 * A 'reset' fault cuts the stream after `afterChunks` body events.
 * @param {Ctx} ctx
 * @param {{head?: string[], body: string[], tail: string[]}} events
 */
async function sendSse(ctx, { head = [], body, tail }) {
  if (!canWrite(ctx)) return;
  ctx.res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...(ctx.requestId ? { 'x-request-id': ctx.requestId } : {}),
  });
  ctx.res.flushHeaders();
  for (const event of head) writeEvent(ctx, event);

  const delayMs = chunkDelayMs(ctx);
  const resetAfter = ctx.fault?.action === 'reset' ? intOr(ctx.fault.afterChunks, 3, MAX_CHUNKS) : Infinity;
  for (let i = 0; i < body.length && i < resetAfter; i++) {
    if (!(await sleep(ctx, delayMs))) return;
    writeEvent(ctx, body[i]);
  }
  if (resetAfter !== Infinity) {
    // Give the last chunk time to reach the client, then cut without a terminator.
    if (await sleep(ctx, delayMs)) abortConnection(ctx);
    return;
  }
  for (const event of tail) writeEvent(ctx, event);
  if (canWrite(ctx)) ctx.res.end();
}

/**
 * @param {Ctx} ctx
 * @param {string} event
 */
function writeEvent(ctx, event) {
  if (canWrite(ctx)) ctx.res.write(event);
}

/** @param {unknown} value */
function sseData(value) {
  return `data: ${JSON.stringify(value)}\n\n`;
}

/** Streamed chunks for this request: header override, else the server default. @param {Ctx} ctx */
function chunkCount(ctx) {
  return intOr(ctx.headers['x-fake-chunks'], ctx.state.chunks, MAX_CHUNKS);
}

/** A 'slow' fault wins over the header, which wins over the server default. @param {Ctx} ctx */
function chunkDelayMs(ctx) {
  const base = intOr(ctx.headers['x-fake-chunk-delay-ms'], ctx.state.chunkDelayMs, MAX_DELAY_MS);
  return ctx.fault?.action === 'slow' ? intOr(ctx.fault.delayMs, base, MAX_DELAY_MS) : base;
}

/** @param {number} n */
function tokenPieces(n) {
  return Array.from({ length: n }, (_, i) => `tok${i} `);
}

/**
 * @param {Record<string, any>} body
 * @returns {string}
 */
function requireModel(body) {
  const model = body.model;
  if (typeof model !== 'string' || model === '') {
    throw new HttpError(400, 'you must provide a model parameter');
  }
  if (!model.startsWith('fake')) {
    throw new HttpError(404, `The model '${model}' does not exist or you do not have access to it.`, {
      code: 'model_not_found',
    });
  }
  return model;
}

/** @param {string} id */
function modelObject(id) {
  return { id, object: 'model', created: MODEL_CREATED, owned_by: 'fake' };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// Endpoint handlers: (ctx, match) => void | Promise<void>
// ---------------------------------------------------------------------------

/** @param {Ctx} ctx */
function listModels(ctx) {
  sendJson(ctx, 200, { object: 'list', data: MODEL_IDS.map(modelObject) });
}

/**
 * @param {Ctx} ctx
 * @param {RegExpExecArray} match
 */
function getModel(ctx, match) {
  let id = match[1];
  try {
    id = decodeURIComponent(id);
  } catch {
    // keep the raw id
  }
  if (!id.startsWith('fake')) {
    throw new HttpError(404, `The model '${id}' does not exist`, { code: 'model_not_found' });
  }
  sendJson(ctx, 200, modelObject(id));
}

/** @param {Ctx} ctx */
function chatCompletions(ctx) {
  const body = ctx.json;
  const model = requireModel(body);
  const pieces = tokenPieces(chunkCount(ctx));
  const promptTokens = Array.isArray(body.messages)
    ? body.messages.reduce((/** @type {number} */ n, /** @type {any} */ m) => n + countContentWords(m?.content), 0)
    : 0;
  const usage = { prompt_tokens: promptTokens, completion_tokens: pieces.length, total_tokens: promptTokens + pieces.length };
  const id = `chatcmpl-${nextId(ctx.state)}`;
  const created = nowSeconds();

  if (body.stream !== true) {
    return sendJson(ctx, 200, {
      id,
      object: 'chat.completion',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: pieces.join(''), refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage,
    });
  }

  const includeUsage = body.stream_options?.include_usage === true;
  /** @param {object[]} choices @param {object} [extra] */
  const chunk = (choices, extra = {}) =>
    sseData({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    });
  const events = pieces.map((content, i) =>
    chunk([
      {
        index: 0,
        delta: i === 0 ? { role: 'assistant', content } : { content },
        logprobs: null,
        finish_reason: i === pieces.length - 1 ? 'stop' : null,
      },
    ]),
  );
  const tail = includeUsage ? [chunk([], { usage })] : [];
  tail.push('data: [DONE]\n\n');
  return sendSse(ctx, { body: events, tail });
}

/** @param {unknown} prompt */
function countPromptTokens(prompt) {
  if (typeof prompt === 'string') return countWords(prompt);
  if (!Array.isArray(prompt)) return 0;
  // A list of prompts, of token ids, or of lists of token ids.
  return prompt.reduce((n, p) => n + (typeof p === 'number' ? 1 : countPromptTokens(p)), 0);
}

/** @param {Ctx} ctx */
function completions(ctx) {
  const body = ctx.json;
  const model = requireModel(body);
  const pieces = tokenPieces(chunkCount(ctx));
  const promptTokens = countPromptTokens(body.prompt);
  const usage = { prompt_tokens: promptTokens, completion_tokens: pieces.length, total_tokens: promptTokens + pieces.length };
  const id = `cmpl-${nextId(ctx.state)}`;
  const created = nowSeconds();

  if (body.stream !== true) {
    return sendJson(ctx, 200, {
      id,
      object: 'text_completion',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices: [{ text: pieces.join(''), index: 0, logprobs: null, finish_reason: 'stop' }],
      usage,
    });
  }

  const includeUsage = body.stream_options?.include_usage === true;
  /** @param {object[]} choices @param {object} [extra] */
  const chunk = (choices, extra = {}) =>
    sseData({
      id,
      object: 'text_completion',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    });
  const events = pieces.map((text, i) =>
    chunk([{ text, index: 0, logprobs: null, finish_reason: i === pieces.length - 1 ? 'stop' : null }]),
  );
  const tail = includeUsage ? [chunk([], { usage })] : [];
  tail.push('data: [DONE]\n\n');
  return sendSse(ctx, { body: events, tail });
}

/**
 * Deterministic pseudo-embedding: sha256 blocks of the text give 16 values each in [-1, 1].
 * Values are float32 so the float and base64 answers describe the same vector.
 * @param {string} text
 * @param {number} dimensions
 */
function fakeEmbedding(text, dimensions) {
  const out = new Float32Array(dimensions);
  for (let block = 0; block * 16 < dimensions; block++) {
    const digest = crypto.createHash('sha256').update(`${block}:`).update(text).digest();
    for (let j = 0; j < 16 && block * 16 + j < dimensions; j++) {
      out[block * 16 + j] = digest.readUInt16LE(j * 2) / 32767.5 - 1;
    }
  }
  return out;
}

/** Little-endian bytes of a Float32Array, whatever the host byte order. @param {Float32Array} vector */
function float32LeBase64(vector) {
  const buf = Buffer.alloc(vector.length * 4);
  vector.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

/**
 * The embedding inputs as texts plus their token counts.
 * @param {unknown} input
 * @returns {{text: string, tokens: number}[]}
 */
function embeddingInputs(input) {
  if (typeof input === 'string') return [{ text: input, tokens: countWords(input) }];
  if (Array.isArray(input) && input.length > 0) {
    // An array of token ids is a single input; otherwise each element is one input.
    if (input.every((x) => typeof x === 'number')) return [{ text: JSON.stringify(input), tokens: input.length }];
    return input.map((x) => {
      if (typeof x === 'string') return { text: x, tokens: countWords(x) };
      if (Array.isArray(x) && x.every((t) => typeof t === 'number')) return { text: JSON.stringify(x), tokens: x.length };
      throw new HttpError(400, "'input' must be a string, an array of strings or an array of token arrays.", { param: 'input' });
    });
  }
  throw new HttpError(400, "'input' is a required property and must not be empty.", { param: 'input' });
}

/** @param {Ctx} ctx */
function embeddings(ctx) {
  const body = ctx.json;
  const model = requireModel(body);
  const inputs = embeddingInputs(body.input);
  const dimensions = body.dimensions == null ? DEFAULT_EMBEDDING_DIMENSIONS : Number(body.dimensions);
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_EMBEDDING_DIMENSIONS) {
    throw new HttpError(400, `'dimensions' must be an integer between 1 and ${MAX_EMBEDDING_DIMENSIONS}.`, { param: 'dimensions' });
  }
  const base64 = body.encoding_format === 'base64';
  const data = inputs.map(({ text }, index) => {
    const vector = fakeEmbedding(text, dimensions);
    return { object: 'embedding', index, embedding: base64 ? float32LeBase64(vector) : Array.from(vector) };
  });
  const tokens = inputs.reduce((n, i) => n + i.tokens, 0);
  sendJson(ctx, 200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

/**
 * Deterministic "audio": each 256-byte block is a permutation of 0..255 (multiply by an
 * odd number, add a seed byte), so every byte value appears and byte-exactness is tested.
 * @param {string} input
 */
function fakeAudio(input) {
  const size = Math.max(1024, input.length * 100);
  const seed = crypto.createHash('sha256').update(input).digest();
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = ((i & 255) * 167 + seed[(i >> 8) % seed.length]) & 255;
  return out;
}

/** @param {Ctx} ctx */
function speech(ctx) {
  const body = ctx.json;
  requireModel(body);
  if (typeof body.input !== 'string') {
    throw new HttpError(400, "'input' is a required property and must be a string.", { param: 'input' });
  }
  sendBuffer(ctx, 200, { 'content-type': 'audio/mpeg' }, fakeAudio(body.input));
}

/**
 * @param {MultipartPart[]} parts
 * @param {string} name
 */
function fieldValue(parts, name) {
  const part = parts.find((p) => p.name === name && p.filename === undefined);
  return part ? part.content.toString('utf8') : undefined;
}

/**
 * @param {MultipartPart[]} parts
 */
function requireFilePart(parts) {
  const file = parts.find((p) => p.name === 'file');
  if (!file) throw new HttpError(400, "'file' is a required property", { param: 'file' });
  return file;
}

/** @param {Ctx} ctx */
function transcriptions(ctx) {
  const parts = parseMultipart(ctx.body, ctx.headers['content-type']);
  const model = fieldValue(parts, 'model');
  if (model !== undefined) requireModel({ model });
  const file = requireFilePart(parts);
  sendJson(ctx, 200, {
    text: 'fake transcript',
    bytes: file.content.length,
    sha256: sha256Hex(file.content),
    body_bytes: ctx.body.length,
    body_sha256: sha256Hex(ctx.body),
  });
}

/** @param {Ctx} ctx */
function uploadFile(ctx) {
  const parts = parseMultipart(ctx.body, ctx.headers['content-type']);
  const purpose = fieldValue(parts, 'purpose');
  if (!purpose) throw new HttpError(400, "'purpose' is a required property", { param: 'purpose' });
  const file = requireFilePart(parts);
  const content = Buffer.from(file.content); // own copy, not a view pinning the whole body
  const meta = {
    id: `file-${nextId(ctx.state)}`,
    object: 'file',
    bytes: content.length,
    created_at: nowSeconds(),
    filename: file.filename ?? 'upload',
    purpose,
    sha256: sha256Hex(content),
  };
  const { files } = ctx.state;
  files.set(meta.id, { meta, content });
  // Memory stays bounded however long a benchmark runs: drop the oldest files.
  while (files.size > MAX_STORED_FILES) files.delete(/** @type {string} */ (files.keys().next().value));
  sendJson(ctx, 200, meta);
}

/**
 * @param {Ctx} ctx
 * @param {string} id
 */
function storedFile(ctx, id) {
  const file = ctx.state.files.get(id);
  if (!file) throw new HttpError(404, `No such File object: ${id}`, { param: 'id' });
  return file;
}

/** @param {Ctx} ctx */
function listFiles(ctx) {
  sendJson(ctx, 200, { object: 'list', data: [...ctx.state.files.values()].map((f) => f.meta) });
}

/** @param {Ctx} ctx @param {RegExpExecArray} match */
function getFile(ctx, match) {
  sendJson(ctx, 200, storedFile(ctx, match[1]).meta);
}

/** @param {Ctx} ctx @param {RegExpExecArray} match */
function deleteFile(ctx, match) {
  storedFile(ctx, match[1]);
  ctx.state.files.delete(match[1]);
  sendJson(ctx, 200, { id: match[1], object: 'file', deleted: true });
}

/** @param {Ctx} ctx @param {RegExpExecArray} match */
function getFileContent(ctx, match) {
  sendBuffer(ctx, 200, { 'content-type': 'application/octet-stream' }, storedFile(ctx, match[1]).content);
}

/** @param {Record<string, any>} body */
function countResponsesInput(body) {
  let words = typeof body.instructions === 'string' ? countWords(body.instructions) : 0;
  if (typeof body.input === 'string') return words + countWords(body.input);
  if (Array.isArray(body.input)) {
    for (const item of body.input) words += countContentWords(item?.content ?? (item?.type === 'input_text' ? item.text : undefined));
  }
  return words;
}

/** @param {Ctx} ctx */
function responses(ctx) {
  const body = ctx.json;
  const model = requireModel(body);
  const pieces = tokenPieces(chunkCount(ctx));
  const text = pieces.join('');
  const n = nextId(ctx.state);
  const id = `resp_${n}`;
  const itemId = `msg_${n}`;
  const createdAt = nowSeconds();
  const inputTokens = countResponsesInput(body);
  const usage = { input_tokens: inputTokens, output_tokens: pieces.length, total_tokens: inputTokens + pieces.length };
  const message = {
    type: 'message',
    id: itemId,
    status: 'completed',
    role: 'assistant',
    content: [{ type: 'output_text', text, annotations: [] }],
  };
  /** @param {string} status @param {object[]} output @param {object|null} u */
  const response = (status, output, u) => ({
    id,
    object: 'response',
    created_at: createdAt,
    status,
    model,
    output,
    output_text: status === 'completed' ? text : '',
    usage: u,
  });

  if (body.stream !== true) return sendJson(ctx, 200, response('completed', [message], usage));

  let sequence = 0;
  /** @param {string} type @param {object} payload */
  const event = (type, payload) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...payload })}\n\n`;
  const where = { item_id: itemId, output_index: 0, content_index: 0 };
  // Built in order so sequence numbers increase along the stream.
  const head = [
    event('response.created', { response: response('in_progress', [], null) }),
    event('response.in_progress', { response: response('in_progress', [], null) }),
  ];
  const deltas = pieces.map((delta) => event('response.output_text.delta', { ...where, delta }));
  const tail = [
    event('response.output_text.done', { ...where, text }),
    event('response.completed', { response: response('completed', [message], usage) }),
  ];
  return sendSse(ctx, { head, body: deltas, tail });
}

/** @param {Ctx} ctx */
function echo(ctx) {
  sendJson(ctx, 200, {
    method: ctx.method,
    path: ctx.path,
    query: ctx.query,
    headers: ctx.headers,
    body_bytes: ctx.body.length,
    body_sha256: sha256Hex(ctx.body),
  });
}

/**
 * @typedef {object} Route
 * @property {string} method  '*' = any method
 * @property {RegExp} pattern matched against the raw pathname
 * @property {(ctx: Ctx, match: RegExpExecArray) => void|Promise<void>} handler
 * @property {boolean} [json] parse the body as a JSON object first
 */

/** @type {Route[]} */
const ROUTES = [
  { method: 'GET', pattern: /^\/v1\/models$/, handler: listModels },
  { method: 'GET', pattern: /^\/v1\/models\/([^/]+)$/, handler: getModel },
  { method: 'POST', pattern: /^\/v1\/chat\/completions$/, handler: chatCompletions, json: true },
  { method: 'POST', pattern: /^\/v1\/completions$/, handler: completions, json: true },
  { method: 'POST', pattern: /^\/v1\/embeddings$/, handler: embeddings, json: true },
  { method: 'POST', pattern: /^\/v1\/audio\/speech$/, handler: speech, json: true },
  { method: 'POST', pattern: /^\/v1\/audio\/transcriptions$/, handler: transcriptions },
  { method: 'GET', pattern: /^\/v1\/files$/, handler: listFiles },
  { method: 'POST', pattern: /^\/v1\/files$/, handler: uploadFile },
  { method: 'GET', pattern: /^\/v1\/files\/([^/]+)$/, handler: getFile },
  { method: 'DELETE', pattern: /^\/v1\/files\/([^/]+)$/, handler: deleteFile },
  { method: 'GET', pattern: /^\/v1\/files\/([^/]+)\/content$/, handler: getFileContent },
  { method: 'POST', pattern: /^\/v1\/responses$/, handler: responses, json: true },
  { method: '*', pattern: /^\/v1\/echo(?:\/.*)?$/, handler: echo },
];

/** @param {Ctx} ctx */
async function route(ctx) {
  for (const r of ROUTES) {
    if (r.method !== '*' && r.method !== ctx.method) continue;
    const match = r.pattern.exec(ctx.path);
    if (!match) continue;
    if (r.json) ctx.json = parseJsonBody(ctx.body);
    await r.handler(ctx, match);
    return;
  }
  throw invalidUrl(ctx);
}

// ---------------------------------------------------------------------------
// Request entry points
// ---------------------------------------------------------------------------

/**
 * Apply the fault chosen for this request before (or instead of) answering.
 * Returns true when the request must not be answered normally.
 * @param {Ctx} ctx
 */
async function applyFault(ctx) {
  const fault = ctx.fault;
  if (!fault) return false;
  switch (fault.action) {
    case 'status': {
      const status = /** @type {number} */ (fault.status);
      /** @type {Record<string,string>} */
      const headers = fault.retryAfter != null ? { 'retry-after': String(fault.retryAfter) } : {};
      const message = fault.message ?? `The fake upstream was told to fail with status ${status}.`;
      const err = new HttpError(status, message, { type: fault.type ?? 'server_error', code: fault.code ?? null, headers });
      sendError(ctx, err);
      return true;
    }
    case 'hang':
      return true; // never answer; the close handler counts the client abort
    case 'slow':
      return !(await sleep(ctx, intOr(fault.firstByteDelayMs, 0, MAX_DELAY_MS)));
    default:
      return false; // 'reset' acts while the answer is written
  }
}

/**
 * @param {State} state
 * @param {any} req
 * @param {any} res
 */
async function handleRequest(state, req, res) {
  const ctx = createContext(state, req, res);
  // A client that goes away must never crash the server.
  req.on('error', noop);
  res.on('error', noop);
  if (state.h2c) res.stream?.on('error', noop);
  watchLifecycle(ctx);

  if (ctx.path.startsWith('/_fake/')) return handleControl(ctx);
  if (ctx.isApi) {
    ctx.last = recordAttempt(state, ctx);
    ctx.fault = takeFault(state, ctx.path);
    if (ctx.fault?.action === 'close') {
      abortConnection(ctx);
      return;
    }
  }
  try {
    ctx.body = await readBody(req, MAX_BODY_BYTES);
    if (ctx.last) {
      ctx.last.bodyBytes = ctx.body.length;
      ctx.last.bodySha256 = sha256Hex(ctx.body);
    }
    if (await applyFault(ctx)) return;
    if (!ctx.isApi) throw invalidUrl(ctx);
    await route(ctx);
  } catch (err) {
    if (err instanceof ClientGoneError || ctx.closed) return;
    if (err instanceof HttpError) return sendError(ctx, err);
    state.log(`fake-upstream: internal error on ${ctx.method} ${ctx.path}: ${/** @type {Error} */ (err).stack}`);
    sendError(ctx, new HttpError(500, 'The fake upstream failed unexpectedly.', { type: 'server_error' }));
  }
}

/**
 * The /_fake/ control API, so a separately started fake can be driven over HTTP.
 * Control requests are not counted in stats.
 * @param {Ctx} ctx
 */
async function handleControl(ctx) {
  const { state } = ctx;
  try {
    ctx.body = await readBody(ctx.req, MAX_BODY_BYTES);
    const key = `${ctx.method} ${ctx.path}`;
    if (key === 'GET /_fake/stats') return sendJson(ctx, 200, state.stats);
    if (key === 'POST /_fake/reset') {
      state.faults.length = 0;
      resetStatsInPlace(state.stats);
      return sendNoContent(ctx);
    }
    if (key === 'POST /_fake/fault') {
      try {
        state.faults.push(normalizeFault(parseJsonBody(ctx.body)));
      } catch (err) {
        if (err instanceof TypeError) throw new HttpError(400, err.message);
        throw err;
      }
      return sendNoContent(ctx);
    }
    throw invalidUrl(ctx);
  } catch (err) {
    if (err instanceof ClientGoneError || ctx.closed) return;
    if (err instanceof HttpError) return sendError(ctx, err);
    throw err;
  }
}

// ---------------------------------------------------------------------------
// WebSocket (RFC 6455): frames, server echo, test client
// ---------------------------------------------------------------------------

/** @param {string} key */
function wsAccept(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/**
 * Encode one frame. Clients must mask, servers must not.
 * @param {number} opcode
 * @param {Buffer} payload
 * @param {{fin?: boolean, mask?: boolean}} [options]
 */
export function encodeFrame(opcode, payload, { fin = true, mask = false } = {}) {
  const len = payload.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, payload]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

/**
 * Decode the frame at the start of `buf`, or say how many bytes are needed first.
 * @param {Buffer} buf
 * @returns {{frame: {fin: boolean, opcode: number, payload: Buffer}, size: number} | {needed: number} | {error: string}}
 */
function decodeFrame(buf) {
  if (buf.length < 2) return { needed: 2 };
  const fin = (buf[0] & 0x80) !== 0;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return { needed: 4 };
    len = buf.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return { needed: 10 };
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(MAX_BODY_BYTES)) return { error: 'frame too large' };
    len = Number(big);
    offset = 10;
  }
  const maskAt = offset;
  if (masked) offset += 4;
  const size = offset + len;
  if (buf.length < size) return { needed: size };
  const payload = Buffer.from(buf.subarray(offset, size)); // a copy, unmasked in place
  if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i & 3)];
  return { frame: { fin, opcode, payload }, size };
}

/**
 * Incremental frame parser: buffers chunks and only joins them once a whole
 * header or frame is there, so big frames are not copied once per TCP chunk.
 * @param {(frame: {fin: boolean, opcode: number, payload: Buffer}) => void} onFrame
 * @param {(message: string) => void} onError
 */
function createFrameParser(onFrame, onError) {
  /** @type {Buffer[]} */
  let chunks = [];
  let length = 0;
  let needed = 2;
  let failed = false;
  return (/** @type {Buffer} */ chunk) => {
    if (failed) return;
    chunks.push(chunk);
    length += chunk.length;
    while (length >= needed) {
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length);
      const result = decodeFrame(buf);
      if ('error' in result) {
        failed = true;
        onError(result.error);
        return;
      }
      if ('needed' in result) {
        chunks = [buf];
        needed = result.needed;
        continue; // loop condition is false now unless more data already arrived
      }
      const rest = buf.subarray(result.size);
      chunks = rest.length ? [rest] : [];
      length = rest.length;
      needed = 2;
      onFrame(result.frame);
    }
  };
}

/**
 * Answer an upgrade request with a plain HTTP error and close.
 * @param {net.Socket} socket
 * @param {number} status
 * @param {object} body
 * @param {Record<string,string>} [headers]
 */
function rejectUpgrade(socket, status, body, headers = {}) {
  const payload = Buffer.from(JSON.stringify(body));
  const lines = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}`,
    'content-type: application/json',
    `content-length: ${payload.length}`,
    'connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), payload]));
}

/**
 * Echo data frames back unmasked, frame by frame (so fragments stay fragments),
 * answer pings, and answer a close frame with a close frame before ending.
 * @param {net.Socket} socket
 * @param {Buffer} head  bytes that arrived with the upgrade request
 */
function runWebSocketEcho(socket, head) {
  let closing = false;
  const parse = createFrameParser(
    (frame) => {
      if (closing) return;
      switch (frame.opcode) {
        case WS_OP.CONT:
        case WS_OP.TEXT:
        case WS_OP.BINARY:
          socket.write(encodeFrame(frame.opcode, frame.payload, { fin: frame.fin }));
          break;
        case WS_OP.PING:
          socket.write(encodeFrame(WS_OP.PONG, frame.payload));
          break;
        case WS_OP.CLOSE:
          closing = true;
          socket.end(encodeFrame(WS_OP.CLOSE, frame.payload.subarray(0, 125)));
          break;
        default:
          break; // pongs and unknown opcodes are ignored
      }
    },
    () => socket.destroy(),
  );
  socket.on('data', parse);
  if (head.length) parse(head);
}

/**
 * The h1 server's 'upgrade' handler: WebSocket on /v1/realtime only.
 * @param {State} state
 * @param {http.IncomingMessage} req
 * @param {net.Socket} socket
 * @param {Buffer} head
 */
function handleUpgrade(state, req, socket, head) {
  socket.on('error', noop);
  const { path, query } = splitUrl(req.url ?? '/');
  const method = req.method ?? 'GET';
  let fault = null;
  if (path.startsWith('/v1/')) {
    recordAttempt(state, { method, path, query, headers: headersFromRaw(req.rawHeaders) });
    fault = takeFault(state, path);
  }
  if (fault?.action === 'close') return void socket.destroy();
  if (fault?.action === 'hang') return; // keep the socket open, never answer
  if (fault?.action === 'status') {
    const status = /** @type {number} */ (fault.status);
    /** @type {Record<string,string>} */
    const headers = fault.retryAfter != null ? { 'retry-after': String(fault.retryAfter) } : {};
    const message = fault.message ?? `The fake upstream was told to fail with status ${status}.`;
    return rejectUpgrade(socket, status, errorBody(message, fault.type ?? 'server_error', null, fault.code ?? null), headers);
  }
  if (path !== '/v1/realtime' || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
    return rejectUpgrade(socket, 404, errorBody(`Invalid URL (${method} ${path})`, 'invalid_request_error'));
  }
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || req.headers['sec-websocket-version'] !== '13') {
    return rejectUpgrade(socket, 400, errorBody('Missing or invalid Sec-WebSocket-Key / Sec-WebSocket-Version.', 'invalid_request_error'));
  }
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${wsAccept(key)}`];
  // Clients such as `ws` fail when they offered subprotocols and none is selected.
  const offered = req.headers['sec-websocket-protocol'];
  if (typeof offered === 'string' && offered.trim()) lines.push(`Sec-WebSocket-Protocol: ${offered.split(',')[0].trim()}`);
  socket.setNoDelay(true);
  socket.write(lines.join('\r\n') + '\r\n\r\n');
  state.stats.wsConnections += 1;
  state.log(`${method} ${path} -> 101 (websocket)`);
  runWebSocketEcho(socket, head);
}

/**
 * Read an HTTP response head from a raw socket (the WebSocket handshake answer).
 * Leaves the socket paused; `rest` holds any bytes after the head.
 * @param {net.Socket} socket
 * @returns {Promise<{status: number, headers: Record<string,string>, rest: Buffer}>}
 */
function readResponseHead(socket) {
  return new Promise((resolve, reject) => {
    let buf = EMPTY;
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) return;
      cleanup();
      socket.pause();
      const [statusLine, ...lines] = buf.toString('latin1', 0, end).split('\r\n');
      const status = Number(/^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(statusLine)?.[1]);
      const rawHeaders = lines.flatMap((line) => {
        const colon = line.indexOf(':');
        return colon > 0 ? [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] : [];
      });
      resolve({ status, headers: headersFromRaw(rawHeaders), rest: buf.subarray(end + 4) });
    };
    const onClose = () => {
      cleanup();
      reject(new Error('websocket handshake failed: connection closed before a response'));
    };
    /** @param {Error} err */
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
  });
}

/**
 * Collect the body of a refused handshake: content-length bytes, or until the
 * peer closes (bounded by a short timeout so a test never hangs on it).
 * @param {net.Socket} socket
 * @param {Buffer} rest
 * @param {Record<string,string>} headers
 */
async function readRefusalBody(socket, rest, headers) {
  const expected = Number(headers['content-length']);
  /** @type {Buffer[]} */
  const chunks = [rest];
  let size = rest.length;
  if (!(size >= expected)) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 1000);
      const finish = () => {
        clearTimeout(timer);
        resolve(undefined);
      };
      socket.on('data', (/** @type {Buffer} */ chunk) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= expected) finish();
      });
      socket.once('close', finish);
      socket.resume();
    });
  }
  socket.destroy();
  return Buffer.concat(chunks, size);
}

/**
 * @typedef {object} WsMessage
 * @property {number} opcode  1 text, 2 binary
 * @property {Buffer} data
 *
 * @typedef {object} WsClient
 * @property {(data: string|Buffer|Uint8Array) => void} send
 * @property {(opcode: number, payload: Buffer|string, options?: {fin?: boolean}) => void} sendFrame
 * @property {(payload?: Buffer|string) => Promise<Buffer>} ping   resolves with the pong payload
 * @property {(timeoutMs?: number) => Promise<WsMessage>} next    next data message (fragments joined)
 * @property {(code?: number) => Promise<void>} close
 * @property {net.Socket} socket
 * @property {{status: number, headers: Record<string,string>}} response
 */

/**
 * A tiny WebSocket client for tests, over net.connect with masked frames.
 * Rejects when the handshake is refused; the error carries `response`
 * ({status, headers, body}) so tests can check how a proxy refused it.
 * @param {string} url  ws://host:port/path?query (http:// accepted too)
 * @param {{headers?: Record<string,string>}} [options]
 * @returns {Promise<WsClient>}
 */
export async function wsConnect(url, { headers = {} } = {}) {
  const target = new URL(url);
  if (target.protocol !== 'ws:' && target.protocol !== 'http:') {
    throw new TypeError(`wsConnect supports ws:// and http:// URLs, not ${target.protocol}`);
  }
  const socket = net.connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port || 80) });
  socket.setNoDelay(true);
  await once(socket, 'connect');

  const key = crypto.randomBytes(16).toString('base64');
  /** @type {Record<string,string>} */
  const requestHeaders = {
    host: target.host,
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': key,
    'sec-websocket-version': '13',
  };
  for (const [name, value] of Object.entries(headers)) requestHeaders[name.toLowerCase()] = String(value);
  const head = [`GET ${target.pathname}${target.search} HTTP/1.1`, ...Object.entries(requestHeaders).map(([k, v]) => `${k}: ${v}`)];
  socket.write(head.join('\r\n') + '\r\n\r\n');

  let answer;
  try {
    answer = await readResponseHead(socket);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const response = { status: answer.status, headers: answer.headers };
  if (answer.status !== 101) {
    const body = await readRefusalBody(socket, answer.rest, answer.headers);
    throw Object.assign(new Error(`websocket handshake refused: HTTP ${answer.status}`), { response: { ...response, body } });
  }
  if (answer.headers['sec-websocket-accept'] !== wsAccept(key)) {
    socket.destroy();
    throw Object.assign(new Error('websocket handshake failed: bad Sec-WebSocket-Accept'), { response });
  }
  return createWsClient(socket, response, answer.rest);
}

/**
 * @param {net.Socket} socket
 * @param {{status: number, headers: Record<string,string>}} response
 * @param {Buffer} initial  frame bytes that arrived with the handshake answer
 * @returns {WsClient}
 */
function createWsClient(socket, response, initial) {
  /** @type {WsMessage[]} */
  const messages = [];
  /** @type {{resolve: (m: WsMessage) => void, reject: (e: Error) => void}[]} */
  const waiters = [];
  /** @type {((payload: Buffer) => void)[]} */
  const pongWaiters = [];
  /** @type {{opcode: number, parts: Buffer[]}|null} */
  let fragments = null;
  let closed = false;
  let sentClose = false;
  const closedPromise = new Promise((resolve) => socket.once('close', resolve));

  /** @param {WsMessage} message */
  const deliver = (message) => {
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(message);
    else messages.push(message);
  };
  /** @param {number} opcode @param {Buffer} payload */
  const write = (opcode, payload, fin = true) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(opcode, payload, { fin, mask: true }));
  };

  const parse = createFrameParser(
    ({ fin, opcode, payload }) => {
      switch (opcode) {
        case WS_OP.TEXT:
        case WS_OP.BINARY:
          if (fin) deliver({ opcode, data: payload });
          else fragments = { opcode, parts: [payload] };
          break;
        case WS_OP.CONT:
          if (!fragments) break;
          fragments.parts.push(payload);
          if (fin) {
            deliver({ opcode: fragments.opcode, data: Buffer.concat(fragments.parts) });
            fragments = null;
          }
          break;
        case WS_OP.PING:
          write(WS_OP.PONG, payload);
          break;
        case WS_OP.PONG:
          pongWaiters.shift()?.(payload);
          break;
        case WS_OP.CLOSE:
          if (!sentClose) {
            sentClose = true;
            write(WS_OP.CLOSE, payload.subarray(0, 2));
          }
          socket.end();
          break;
        default:
          break;
      }
    },
    () => socket.destroy(),
  );

  socket.on('error', noop);
  socket.on('data', parse);
  socket.once('close', () => {
    closed = true;
    for (const waiter of waiters.splice(0)) waiter.reject(new Error('websocket closed'));
  });
  if (initial.length) parse(initial);
  socket.resume();

  return {
    socket,
    response,
    send(data) {
      if (typeof data === 'string') write(WS_OP.TEXT, Buffer.from(data, 'utf8'));
      else write(WS_OP.BINARY, Buffer.from(data));
    },
    sendFrame(opcode, payload, { fin = true } = {}) {
      write(opcode, Buffer.from(payload), fin);
    },
    ping(payload = EMPTY) {
      return new Promise((resolve) => {
        pongWaiters.push(resolve);
        write(WS_OP.PING, Buffer.from(payload));
      });
    },
    next(timeoutMs = 5000) {
      const ready = messages.shift();
      if (ready) return Promise.resolve(ready);
      if (closed) return Promise.reject(new Error('websocket closed'));
      return new Promise((resolve, reject) => {
        /** @type {NodeJS.Timeout|undefined} */
        let timer;
        const waiter = {
          resolve: (/** @type {WsMessage} */ m) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (/** @type {Error} */ e) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        if (timeoutMs > 0) {
          timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`no websocket message within ${timeoutMs} ms`));
          }, timeoutMs);
        }
        waiters.push(waiter);
      });
    },
    async close(code = 1000) {
      if (closed) return;
      if (!sentClose) {
        sentClose = true;
        const payload = Buffer.alloc(2);
        payload.writeUInt16BE(code, 0);
        write(WS_OP.CLOSE, payload);
      }
      // Wait for the peer's close frame and end; never longer than a second.
      const timer = setTimeout(() => socket.destroy(), 1000);
      await closedPromise;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/**
 * @param {FakeUpstreamOptions} opts
 */
function resolveOptions(opts) {
  const host = opts.host ?? LOOPBACK;
  if (host !== LOOPBACK) throw new RangeError(`fake-upstream only listens on ${LOOPBACK}, not ${host}`);
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port: ${port}`);
  const chunks = opts.chunks ?? 5;
  if (!Number.isInteger(chunks) || chunks < 0) throw new RangeError(`invalid chunks: ${chunks}`);
  const chunkDelayMs = opts.chunkDelayMs ?? 10;
  if (!Number.isFinite(chunkDelayMs) || chunkDelayMs < 0) throw new RangeError(`invalid chunkDelayMs: ${chunkDelayMs}`);
  return { host, port, h2c: opts.h2c === true, chunks, chunkDelayMs, log: makeLog(opts.logger) };
}

/** @param {State} state */
function createH1Server(state) {
  const server = http.createServer((req, res) => {
    handleRequest(state, req, res).catch((err) => state.log(`fake-upstream: ${err?.stack ?? err}`));
  });
  server.keepAliveTimeout = 5000;
  server.on('upgrade', (req, socket, head) => handleUpgrade(state, req, /** @type {net.Socket} */ (socket), head));
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
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
  server.on('request', (req, res) => {
    handleRequest(state, req, res).catch((err) => state.log(`fake-upstream: ${err?.stack ?? err}`));
  });
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
 * @param {FakeUpstreamOptions} [opts]
 * @returns {Promise<FakeUpstream>}
 */
export async function startFakeUpstream(opts = {}) {
  const config = resolveOptions(opts);
  const state = createState({ h2c: config.h2c, chunks: config.chunks, chunkDelayMs: config.chunkDelayMs, log: config.log });
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  /** @type {Set<http2.ServerHttp2Session>} */
  const sessions = new Set();
  const server = config.h2c ? createH2Server(state, sessions) : createH1Server(state);

  server.on('connection', (/** @type {net.Socket} */ socket) => {
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
  const port = /** @type {net.AddressInfo} */ (server.address()).port;

  /** @type {Promise<void>|null} */
  let closing = null;
  return {
    url: `http://${LOOPBACK}:${port}`,
    port,
    h2c: config.h2c,
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

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

const USAGE = `usage: node scripts/fake-upstream.mjs [--port N] [--h2c] [--chunks N] [--chunk-delay-ms N] [--verbose]
  env FAKE_UPSTREAM_PORT sets the port when --port is not given (default: a free port)`;

/**
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 * @returns {FakeUpstreamOptions & {verbose?: boolean, help?: boolean}}
 */
function parseCliArgs(argv, env) {
  /** @type {FakeUpstreamOptions & {verbose?: boolean, help?: boolean}} */
  const opts = {};
  if (env.FAKE_UPSTREAM_PORT) opts.port = Number(env.FAKE_UPSTREAM_PORT);
  /** @type {Record<string, 'port'|'chunks'|'chunkDelayMs'>} */
  const numeric = { '--port': 'port', '--chunks': 'chunks', '--chunk-delay-ms': 'chunkDelayMs' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    if (flag === '--h2c') opts.h2c = true;
    else if (flag === '--verbose') opts.verbose = true;
    else if (flag === '--help' || flag === '-h') opts.help = true;
    else if (flag in numeric) {
      const raw = inline ?? argv[++i];
      const value = Number(raw);
      if (raw === undefined || raw === '' || !Number.isFinite(value)) throw new Error(`${flag} needs a number`);
      opts[numeric[flag]] = value;
    } else throw new Error(`unknown argument: ${argv[i]}`);
  }
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseCliArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${/** @type {Error} */ (err).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { verbose, help: _help, ...serverOpts } = opts;
  // stdout carries exactly one line (scripts parse it); request logs go to stderr.
  const logger = verbose ? (/** @type {string} */ line) => process.stderr.write(`${line}\n`) : null;
  const fake = await startFakeUpstream({ ...serverOpts, logger });
  const shutdown = async () => {
    await fake.close();
    process.exit(0);
  };
  // Handlers first: a script may signal us as soon as it reads the line below.
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  process.stdout.write(`fake-upstream listening on ${fake.url} (${fake.h2c ? 'h2c' : 'http/1.1'})\n`);
}

const isMain = (() => {
  try {
    return Boolean(process.argv[1]) && import.meta.url === pathToFileURL(process.argv[1]).href;
  } catch {
    return false;
  }
})();

if (isMain) {
  main().catch((err) => {
    process.stderr.write(`fake-upstream: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
