/**
 * context.mjs: one request's context and lifecycle.
 *
 * The context carries what the request is (method, raw path, headers, body,
 * fault) and how its answer ends: counted once as completed or as a client
 * abort, with every pending sleep woken when the response closes so no chunk
 * timer outlives its client. A fault can also cut the answer on purpose.
 */
import http2 from 'node:http2';
import { headersFromRaw, splitUrl } from './request-input.mjs';

/** The longest delay a header, an option or a fault may ask for. */
export const MAX_DELAY_MS = 600_000;

/**
 * @param {import('./state.mjs').State} state
 * @param {any} req  http.IncomingMessage or http2.Http2ServerRequest
 * @param {any} res  http.ServerResponse or http2.Http2ServerResponse
 */
export function createContext(state, req, res) {
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
    /** @type {Buffer} */
    body: Buffer.alloc(0),
    /** @type {any} */
    json: undefined,
    /** @type {import('./faults.mjs').QueuedFault|null} */
    fault: null,
    /** @type {import('./state.mjs').LastRequest|null} */
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
export function watchLifecycle(ctx) {
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
export function sleep(ctx, ms) {
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
export function canWrite(ctx) {
  return !ctx.closed && !ctx.res.destroyed && !ctx.res.writableEnded;
}

/**
 * Cut the connection (h1) or reset the stream (h2) without a proper end.
 * @param {Ctx} ctx
 */
export function abortConnection(ctx) {
  ctx.serverAborted = true;
  if (ctx.state.h2c) {
    const stream = ctx.res.stream;
    if (stream && !stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    ctx.req.socket?.destroy();
  }
}
