/**
 * control.mjs: the /_fake/ control API, so a separately started fake (the CLI)
 * can be driven over HTTP like the library one.
 *
 *   GET  /_fake/stats   the live counters, as JSON
 *   POST /_fake/fault   queue a fault (JSON body, see faults.mjs); 400 when invalid
 *   POST /_fake/health  what GET /health answers from now on: {"status":503, "message"?: "..."}; 400 when invalid
 *   POST /_fake/reset   clear the fault queue, zero the counters, and make /health answer 200 again
 *
 * Control requests are not counted in stats and never take a fault.
 */
import { HttpError, invalidUrl } from './errors.mjs';
import { MAX_BODY_BYTES, parseJsonBody, readBody } from './request-input.mjs';
import { sendJson, sendNoContent } from './answers.mjs';
import { normalizeFault } from './faults.mjs';
import { normalizeHealth } from './health.mjs';
import { HEALTHY, resetStatsInPlace } from './state.mjs';

/**
 * @param {import('./context.mjs').Ctx} ctx
 */
export async function handleControl(ctx) {
  const { state } = ctx;
  ctx.body = await readBody(ctx.req, MAX_BODY_BYTES);
  const key = `${ctx.method} ${ctx.path}`;
  if (key === 'GET /_fake/stats') return sendJson(ctx, 200, state.stats);
  if (key === 'POST /_fake/reset') {
    state.faults.length = 0;
    resetStatsInPlace(state.stats);
    state.health = HEALTHY;
    return sendNoContent(ctx);
  }
  if (key === 'POST /_fake/fault') {
    state.faults.push(validated(() => normalizeFault(parseJsonBody(ctx.body))));
    return sendNoContent(ctx);
  }
  if (key === 'POST /_fake/health') {
    const body = parseJsonBody(ctx.body);
    state.health = validated(() => normalizeHealth(body.status, body.message));
    return sendNoContent(ctx);
  }
  throw invalidUrl(ctx);
}

/**
 * The value `make` returns, or a 400 carrying its validation message.
 * @template T
 * @param {() => T} make
 * @returns {T}
 */
function validated(make) {
  try {
    return make();
  } catch (err) {
    if (err instanceof TypeError) throw new HttpError(400, err.message);
    throw err;
  }
}
