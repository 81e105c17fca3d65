/**
 * responses.mjs: POST /v1/responses, whole or as the Responses API event stream.
 *
 * The stream is OpenAI's order: `response.created`, `response.in_progress`,
 * `response.output_item.added`, `response.content_part.added`, one
 * `response.output_text.delta` per piece, then `response.output_text.done`,
 * `response.content_part.done`, `response.output_item.done` and
 * `response.completed`, each event named and numbered in order. (Clients that
 * assemble the answer from the item events, such as the Vercel AI SDK, need them.)
 */
import { sendJson } from './answers.mjs';
import { requireModel } from './models.mjs';
import { chunkCount, sendSse } from './sse.mjs';
import { nextId, nowSeconds } from './state.mjs';
import { countContentWords, countWords, tokenPieces } from './tokens.mjs';

/**
 * Input tokens: the instructions plus the input, a string or a list of items.
 * @param {Record<string, any>} body
 */
function countResponsesInput(body) {
  let words = typeof body.instructions === 'string' ? countWords(body.instructions) : 0;
  if (typeof body.input === 'string') return words + countWords(body.input);
  if (Array.isArray(body.input)) {
    for (const item of body.input) words += countContentWords(item?.content ?? (item?.type === 'input_text' ? item.text : undefined));
  }
  return words;
}

/** @param {import('./context.mjs').Ctx} ctx */
export function responses(ctx) {
  const body = ctx.json;
  const model = requireModel(ctx.state, body);
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
  const part = (/** @type {string} */ t) => ({ type: 'output_text', text: t, annotations: [] });
  // Built in order so sequence numbers increase along the stream.
  const head = [
    event('response.created', { response: response('in_progress', [], null) }),
    event('response.in_progress', { response: response('in_progress', [], null) }),
    event('response.output_item.added', { output_index: 0, item: { ...message, status: 'in_progress', content: [] } }),
    event('response.content_part.added', { ...where, part: part('') }),
  ];
  const deltas = pieces.map((delta) => event('response.output_text.delta', { ...where, delta }));
  const tail = [
    event('response.output_text.done', { ...where, text }),
    event('response.content_part.done', { ...where, part: part(text) }),
    event('response.output_item.done', { output_index: 0, item: message }),
    event('response.completed', { response: response('completed', [message], usage) }),
  ];
  return sendSse(ctx, { head, body: deltas, tail });
}
