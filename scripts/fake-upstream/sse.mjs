/**
 * sse.mjs: paced server-sent event streams.
 *
 * How many chunks a stream has and how far apart they go (server default,
 * then the x-fake-chunks / x-fake-chunk-delay-ms headers, or a token rate from
 * x-fake-tokens-per-second, then a 'slow' fault), and the writer that sends
 * them one by one, stops when the client goes away, and cuts the stream
 * part-way under a 'reset' fault. With x-fake-stamp: 1 each paced event also
 * carries `"ts"`, the wall-clock time of its write in ms (sub-ms), so a client
 * on the same machine can measure what a proxy adds: arrival − ts.
 */
import { performance } from 'node:perf_hooks';
import { intOr } from './request-input.mjs';
import { MAX_DELAY_MS, abortConnection, canWrite, sleep } from './context.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

const MAX_CHUNKS = 100_000;
const MAX_TOKENS_PER_SECOND = 100_000;

/** Streamed chunks for this request: header override, else the server default. @param {Ctx} ctx */
export function chunkCount(ctx) {
  return intOr(ctx.headers['x-fake-chunks'], ctx.state.chunks, MAX_CHUNKS);
}

/** A 'slow' fault wins over the header, which wins over the server default. @param {Ctx} ctx */
function chunkDelayMs(ctx) {
  const base = intOr(ctx.headers['x-fake-chunk-delay-ms'], ctx.state.chunkDelayMs, MAX_DELAY_MS);
  return ctx.fault?.action === 'slow' ? intOr(ctx.fault.delayMs, base, MAX_DELAY_MS) : base;
}

/**
 * x-fake-tokens-per-second (a decimal > 0), or null when absent or not a rate.
 * @param {Ctx} ctx
 */
function tokensPerSecond(ctx) {
  const raw = ctx.headers['x-fake-tokens-per-second'];
  const rate = Number(raw);
  return raw && Number.isFinite(rate) && rate > 0 ? Math.min(rate, MAX_TOKENS_PER_SECOND) : null;
}

/**
 * When body event `i` (from 0) is due, as ms to wait from now. A token rate is a
 * schedule from the stream's start, event i at (i + 1) / rate s: a timer that fires
 * late makes the next wait shorter instead of shifting every later event, so the rate
 * holds over the stream (a chain of fixed delays drifts by each timer's lateness).
 * Waits are whole ms (rounded up): timers of the same length share one list in Node.
 * @param {Ctx} ctx
 */
function pacing(ctx) {
  const rate = ctx.fault?.action === 'slow' ? null : tokensPerSecond(ctx);
  if (rate === null) {
    const delayMs = chunkDelayMs(ctx);
    return (/** @type {number} */ _i) => delayMs;
  }
  const t0 = performance.now();
  return (/** @type {number} */ i) => Math.ceil(t0 + ((i + 1) * 1000) / rate - performance.now());
}

/**
 * The event with `"ts"`, the wall-clock ms of this moment, added as its JSON's last field
 * (events that do not end in a JSON object are left alone).
 * @param {string} event
 */
function stamped(event) {
  if (!event.endsWith('}\n\n')) return event;
  return `${event.slice(0, -3)},"ts":${(performance.timeOrigin + performance.now()).toFixed(3)}}\n\n`;
}

/** One `data:` event carrying a JSON value. @param {unknown} value */
export function sseData(value) {
  return `data: ${JSON.stringify(value)}\n\n`;
}

/**
 * Stream pre-serialised server-sent events: `head` at once, then every `body`
 * event in its own write after the chunk delay (so even the first token comes
 * after a delay and headers are visibly flushed before it), then `tail` at once.
 * A 'reset' fault cuts the stream after `afterChunks` body events.
 * @param {Ctx} ctx
 * @param {{head?: string[], body: string[], tail: string[]}} events
 */
export async function sendSse(ctx, { head = [], body, tail }) {
  if (!canWrite(ctx)) return;
  ctx.res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...(ctx.requestId ? { 'x-request-id': ctx.requestId } : {}),
  });
  ctx.res.flushHeaders();
  for (const event of head) writeEvent(ctx, event);

  const waitMs = pacing(ctx);
  const stamp = ctx.headers['x-fake-stamp'] === '1';
  const resetAfter = ctx.fault?.action === 'reset' ? intOr(ctx.fault.afterChunks, 3, MAX_CHUNKS) : Infinity;
  let i = 0;
  for (; i < body.length && i < resetAfter; i++) {
    if (!(await sleep(ctx, waitMs(i)))) return;
    writeEvent(ctx, stamp ? stamped(body[i]) : body[i]);
  }
  if (resetAfter !== Infinity) {
    // Give the last chunk time to reach the client, then cut without a terminator.
    if (await sleep(ctx, waitMs(i))) abortConnection(ctx);
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
