/**
 * faults.mjs: the FIFO queue of scripted failures, its validation, and what
 * each fault does to the request it hits.
 *
 * A test (or POST /_fake/fault) queues faults; every request under /v1/ takes
 * the first one whose path matches, using up one of its `times`. 'close',
 * 'status' and 'hang' act before an answer, 'slow' delays the first byte and
 * paces chunks (sse.mjs), 'reset' cuts the answer part-way (answers.mjs, sse.mjs).
 */
import { statusFaultError } from './errors.mjs';
import { intOr } from './request-input.mjs';
import { MAX_DELAY_MS, sleep } from './context.mjs';
import { sendError } from './answers.mjs';

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
 * @typedef {Fault & {remaining: number}} QueuedFault  A fault's own copy, with its countdown.
 */

const FAULT_ACTIONS = new Set(['close', 'status', 'hang', 'reset', 'slow']);

/**
 * Validate a fault and give it its own copy with a countdown.
 * @param {unknown} input
 * @returns {QueuedFault}
 */
export function normalizeFault(input) {
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
 * @param {{faults: QueuedFault[]}} state
 * @param {string} path
 */
export function takeFault(state, path) {
  const i = state.faults.findIndex((f) => f.path == null || f.path === path);
  if (i < 0) return null;
  const fault = state.faults[i];
  fault.remaining -= 1;
  if (fault.remaining <= 0) state.faults.splice(i, 1);
  return fault;
}

/**
 * Apply the fault chosen for this request before (or instead of) answering.
 * Returns true when the request must not be answered normally.
 * @param {import('./context.mjs').Ctx} ctx
 */
export async function applyFault(ctx) {
  const fault = ctx.fault;
  if (!fault) return false;
  switch (fault.action) {
    case 'status':
      sendError(ctx, statusFaultError(fault));
      return true;
    case 'hang':
      return true; // never answer; the close handler counts the client abort
    case 'slow':
      return !(await sleep(ctx, intOr(fault.firstByteDelayMs, 0, MAX_DELAY_MS)));
    default:
      return false; // 'reset' acts while the answer is written; 'close' never gets here
  }
}
