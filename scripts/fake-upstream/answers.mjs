/**
 * answers.mjs: writing complete answers: a body with content-length, JSON,
 * an OpenAI error, or 204.
 *
 * Every answer under /v1/ carries the request's x-request-id. A 'reset' fault
 * lets only half of a body out before the connection is cut; an error that
 * comes after the headers went out can only cut the response.
 */
import { errorBody } from './errors.mjs';
import { abortConnection, canWrite } from './context.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

/**
 * Send a complete body with content-length. Under a 'reset' fault only half of it
 * goes out before the connection is cut, so clients see a truncated answer.
 * @param {Ctx} ctx
 * @param {number} status
 * @param {Record<string,string|number>} headers
 * @param {Buffer} body
 */
export function sendBuffer(ctx, status, headers, body) {
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
export function sendJson(ctx, status, value, headers = {}) {
  sendBuffer(ctx, status, { 'content-type': 'application/json', ...headers }, Buffer.from(JSON.stringify(value)));
}

/**
 * @param {Ctx} ctx
 * @param {import('./errors.mjs').HttpError} err
 */
export function sendError(ctx, err) {
  if (ctx.res.headersSent) {
    // Too late for a clean error answer: cut the response so the client notices.
    abortConnection(ctx);
    return;
  }
  /** @type {Record<string,string>} */
  const headers = { ...err.headers };
  // Connection is hop-by-hop and illegal in h2; in h1 it stops reuse of a half-read connection.
  if (err.closeConnection && !ctx.state.h2c) headers.connection = 'close';
  sendJson(ctx, err.status, errorBody(err), headers);
}

/** @param {Ctx} ctx */
export function sendNoContent(ctx) {
  if (!canWrite(ctx)) return;
  ctx.res.writeHead(204);
  ctx.res.end();
}
