/**
 * chat.mjs: POST /v1/chat/completions and the legacy POST /v1/completions.
 *
 * Both answer the same generated text, whole or streamed as SSE chunks ending
 * in `data: [DONE]`, with a usage chunk first when `stream_options.include_usage`
 * asks for it. They differ only in ids, object names, the shape of a choice and
 * how the prompt is counted: one `CompletionKind` each. A chat request with
 * `tools` gets a tool call instead of text (tools.mjs).
 */
import { sendJson } from './answers.mjs';
import { requireModel } from './models.mjs';
import { chunkCount, sendSse, sseData } from './sse.mjs';
import { fingerprint, nextId, nowSeconds } from './state.mjs';
import { intOr } from './request-input.mjs';
import { countContentWords, countPromptTokens, tokenPieces } from './tokens.mjs';
import { chosenTool, fragments, toolCall, toolCallChoice, toolCallChunkChoices } from './tools.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

/**
 * @typedef {object} CompletionKind
 * @property {string} idPrefix      'chatcmpl' → ids chatcmpl-N
 * @property {string} object        `object` of the whole answer
 * @property {string} chunkObject   `object` of each streamed chunk
 * @property {(body: Record<string, any>) => number} promptTokens
 * @property {(text: string) => object} choice  the single choice of the whole answer
 * @property {(piece: string, first: boolean, last: boolean) => object} chunkChoice  the choice of one chunk
 */

/** @type {CompletionKind} */
const CHAT = {
  idPrefix: 'chatcmpl',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  promptTokens: (body) =>
    Array.isArray(body.messages)
      ? body.messages.reduce((/** @type {number} */ n, /** @type {any} */ m) => n + countContentWords(m?.content), 0)
      : 0,
  choice: (content) => ({
    index: 0,
    message: { role: 'assistant', content, refusal: null },
    logprobs: null,
    finish_reason: 'stop',
  }),
  chunkChoice: (content, first, last) => ({
    index: 0,
    delta: first ? { role: 'assistant', content } : { content },
    logprobs: null,
    finish_reason: last ? 'stop' : null,
  }),
};

/** @type {CompletionKind} */
const LEGACY = {
  idPrefix: 'cmpl',
  object: 'text_completion',
  chunkObject: 'text_completion',
  promptTokens: (body) => countPromptTokens(body.prompt),
  choice: (text) => ({ text, index: 0, logprobs: null, finish_reason: 'stop' }),
  chunkChoice: (text, _first, last) => ({ text, index: 0, logprobs: null, finish_reason: last ? 'stop' : null }),
};

/**
 * `prompt_tokens_details.cached_tokens` when the request's `x-fake-cached-tokens` asks for
 * it, as vLLM reports a prefix-cache hit: part of `prompt_tokens`, not added to it.
 * @param {Ctx} ctx @param {number} promptTokens
 */
function cachedDetails(ctx, promptTokens) {
  const cached = intOr(ctx.headers['x-fake-cached-tokens'], -1, promptTokens);
  return cached < 0 ? {} : { prompt_tokens_details: { cached_tokens: cached } };
}

/**
 * @param {Ctx} ctx
 * @param {CompletionKind} kind
 */
function complete(ctx, kind) {
  const body = ctx.json;
  const model = requireModel(ctx.state, body);
  const tool = kind === CHAT ? chosenTool(body) : null;
  const n = nextId(ctx.state);
  const call = tool ? toolCall(tool, n) : null;
  const pieces = call ? fragments(call.arguments, chunkCount(ctx)) : tokenPieces(chunkCount(ctx));
  const promptTokens = kind.promptTokens(body);
  const usage = { prompt_tokens: promptTokens, completion_tokens: pieces.length, total_tokens: promptTokens + pieces.length, ...cachedDetails(ctx, promptTokens) };
  const id = `${kind.idPrefix}-${n}`;
  const created = nowSeconds();
  /** @param {string} object */
  // The fake's name in every answer and chunk, where OpenAI puts its backend's fingerprint,
  // so a client reading only bodies can tell which of several fakes answered.
  const envelope = (object) => ({ id, object, created, model, system_fingerprint: fingerprint(ctx.state) });

  if (body.stream !== true) {
    const choice = call ? toolCallChoice(call) : kind.choice(pieces.join(''));
    return sendJson(ctx, 200, { ...envelope(kind.object), choices: [choice], usage });
  }

  const includeUsage = body.stream_options?.include_usage === true;
  /** @param {object[]} choices @param {object} [extra] */
  const chunk = (choices, extra = {}) =>
    sseData({ ...envelope(kind.chunkObject), choices, ...(includeUsage ? { usage: null } : {}), ...extra });
  const usageTail = includeUsage ? [chunk([], { usage })] : [];
  if (call) {
    // role and the opened call at once, each argument fragment paced like a token, then the finish
    const [role, opened, ...rest] = toolCallChunkChoices(call, pieces).map((c) => chunk([c]));
    const finish = /** @type {string} */ (rest.pop());
    return sendSse(ctx, { head: [role, opened], body: rest, tail: [finish, ...usageTail, 'data: [DONE]\n\n'] });
  }
  const events = pieces.map((piece, i) => chunk([kind.chunkChoice(piece, i === 0, i === pieces.length - 1)]));
  return sendSse(ctx, { body: events, tail: [...usageTail, 'data: [DONE]\n\n'] });
}

/** @param {Ctx} ctx */
export function chatCompletions(ctx) {
  return complete(ctx, CHAT);
}

/** @param {Ctx} ctx */
export function completions(ctx) {
  return complete(ctx, LEGACY);
}
