/**
 * sse.mjs: paced server-sent event streams.
 *
 * How many chunks a stream has and how far apart they go (server default,
 * then the x-fake-chunks / x-fake-chunk-delay-ms headers, then a 'slow'
 * fault), and the writer that sends them one by one, stops when the client
 * goes away, and cuts the stream part-way under a 'reset' fault.
 */
import { intOr } from './request-input.mjs';
import { MAX_DELAY_MS, abortConnection, canWrite, sleep } from './context.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

const MAX_CHUNKS = 100_000;

/** Streamed chunks for this request: header override, else the server default. @param {Ctx} ctx */
export function chunkCount(ctx) {
  return intOr(ctx.headers['x-fake-chunks'], ctx.state.chunks, MAX_CHUNKS);
}

/** A 'slow' fault wins over the header, which wins over the server default. @param {Ctx} ctx */
function chunkDelayMs(ctx) {
  const base = intOr(ctx.headers['x-fake-chunk-delay-ms'], ctx.state.chunkDelayMs, MAX_DELAY_MS);
  return ctx.fault?.action === 'slow' ? intOr(ctx.fault.delayMs, base, MAX_DELAY_MS) : base;
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
