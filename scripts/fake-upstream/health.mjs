/**
 * health.mjs: GET /health, the probe a balancer sends to each upstream's origin.
 *
 * Real servers answer it like this: llama.cpp 200 `{"status":"ok"}`, and 503
 * `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`
 * while it loads a model; vLLM 200, and 503 once its engine died. The fake
 * answers 200 `{"status":"ok"}` until a test sets another status
 * (`fake.setHealth(503)`, `POST /_fake/health {"status":503}`); then it
 * answers that status with llama.cpp's error body. It is outside /v1/, so
 * faults never apply and `stats.attempts` never counts it; `stats.healthChecks` does.
 */
import { invalidUrl } from './errors.mjs';
import { MAX_BODY_BYTES, readBody } from './request-input.mjs';
import { sendJson } from './answers.mjs';

export const HEALTH_PATH = '/health';

/** Statuses that carry no body (RFC 9110 §15.3.5, §15.3.6, §15.4.5). */
const NO_BODY = new Set([204, 205, 304]);

/**
 * Validate what /health should answer from now on; the caller's object is not touched.
 * @param {unknown} status   200..599
 * @param {unknown} [message]  the error message of a non-2xx answer (default: llama.cpp's 'Loading model' for 503)
 * @returns {{status: number, message: string}}
 */
export function normalizeHealth(status, message) {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw new TypeError('health status must be an integer 200..599');
  }
  if (message != null && typeof message !== 'string') throw new TypeError('health message must be a string');
  const fallback = status === 503 ? 'Loading model' : `The fake upstream was told to answer /health with status ${status}.`;
  return { status, message: message ?? fallback };
}

/**
 * Answer GET or HEAD /health with the current health; other methods get OpenAI's 404.
 * @param {import('./context.mjs').Ctx} ctx
 */
export async function answerHealth(ctx) {
  ctx.body = await readBody(ctx.req, MAX_BODY_BYTES); // drained so the connection stays reusable
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw invalidUrl(ctx);
  const { state } = ctx;
  state.stats.healthChecks += 1;
  const { status, message } = state.health;
  if (NO_BODY.has(status)) {
    ctx.res.writeHead(status);
    ctx.res.end();
  } else if (status < 300) sendJson(ctx, status, { status: 'ok' });
  else sendJson(ctx, status, { error: { code: status, message, type: 'unavailable_error' } });
}
