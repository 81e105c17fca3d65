/**
 * request-handler.mjs: one HTTP request (h1 or h2c), from its headers to its answer.
 *
 * Every answer carries `x-fake-upstream: <name>`. A request under /v1/ is
 * counted and takes its fault when its headers arrive; then its body is read,
 * the fault applied, and the route answers. /health and /_fake/ are answered
 * apart, never faulted. Every error ends as an OpenAI error answer (or a cut,
 * once headers went out); a client that goes away never crashes the server.
 */
import { ClientGoneError, HttpError, invalidUrl } from './errors.mjs';
import { MAX_BODY_BYTES, readBody, sha256Hex } from './request-input.mjs';
import { abortConnection, createContext, watchLifecycle } from './context.mjs';
import { sendError } from './answers.mjs';
import { applyFault, takeFault } from './faults.mjs';
import { FAKE_UPSTREAM_HEADER, recordAttempt } from './state.mjs';
import { handleControl } from './control.mjs';
import { HEALTH_PATH, answerHealth } from './health.mjs';
import { route } from './routes.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

const noop = () => {};

/**
 * @param {import('./state.mjs').State} state
 * @param {any} req  http.IncomingMessage or http2.Http2ServerRequest
 * @param {any} res  http.ServerResponse or http2.Http2ServerResponse
 */
export async function handleRequest(state, req, res) {
  const ctx = createContext(state, req, res);
  // A client that goes away must never crash the server.
  req.on('error', noop);
  res.on('error', noop);
  if (state.h2c) res.stream?.on('error', noop);
  watchLifecycle(ctx);
  // Set before any writeHead, which merges it in: every answer says which fake gave it.
  res.setHeader(FAKE_UPSTREAM_HEADER, state.name);

  if (ctx.isApi) {
    ctx.last = recordAttempt(state, ctx);
    ctx.fault = takeFault(state, ctx.path);
    if (ctx.fault?.action === 'close') {
      abortConnection(ctx);
      return;
    }
  }
  try {
    if (ctx.path.startsWith('/_fake/')) await handleControl(ctx);
    else if (ctx.path === HEALTH_PATH) await answerHealth(ctx);
    else await answer(ctx);
  } catch (err) {
    if (err instanceof ClientGoneError || ctx.closed) return;
    if (err instanceof HttpError) return sendError(ctx, err);
    state.log(`fake-upstream: internal error on ${ctx.method} ${ctx.path}: ${/** @type {Error} */ (err).stack}`);
    sendError(ctx, new HttpError(500, 'The fake upstream failed unexpectedly.', { type: 'server_error' }));
  }
}

/**
 * Read the body (recording its size and hash), apply the fault, then route.
 * @param {Ctx} ctx
 */
async function answer(ctx) {
  ctx.body = await readBody(ctx.req, MAX_BODY_BYTES);
  if (ctx.last) {
    ctx.last.bodyBytes = ctx.body.length;
    ctx.last.bodySha256 = sha256Hex(ctx.body);
  }
  if (await applyFault(ctx)) return;
  if (!ctx.isApi) throw invalidUrl(ctx);
  await route(ctx);
}
