/**
 * echo.mjs: any method on /v1/echo and below: answers what arrived.
 *
 * Method, raw path and query, headers and the size and sha256 of the body, so
 * a test sees exactly what the proxy forwarded, whatever the request was.
 */
import { sendJson } from './answers.mjs';
import { sha256Hex } from './request-input.mjs';

/** @param {import('./context.mjs').Ctx} ctx */
export function echo(ctx) {
  sendJson(ctx, 200, {
    method: ctx.method,
    path: ctx.path,
    query: ctx.query,
    headers: ctx.headers,
    body_bytes: ctx.body.length,
    body_sha256: sha256Hex(ctx.body),
  });
}
