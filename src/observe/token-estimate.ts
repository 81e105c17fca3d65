/**
 * Tokens a request is reserved before it is sent, and what it is settled to once answered,
 * for per-client token limits (issue 14). Pure arithmetic on what the proxy measured: the
 * request body's size, its `max_tokens` (request-facts.ts), the answer's usage (usage.ts)
 * or the characters of text it streamed (text-chars.ts).
 *
 * Four characters (or bytes) to a token is OpenAI's rule of thumb for English text. It is an
 * approximation both ways: a JSON body holds keys, quotes and escapes as well as the prompt
 * (the estimate runs high), and for Chinese, Japanese or Korean a token is one or two
 * characters (a count of characters runs low, by up to four times). Real usage, when the
 * answer reports it, always wins.
 */
import type { Usage } from './usage.js';

const CHARS_PER_TOKEN = 4;

/** The prompt's tokens as the body's size gives them: ceil(bytes / 4); 0 for no body. */
export function promptEstimate(bodyBytes: number): number {
  return bodyBytes > 0 ? Math.ceil(bodyBytes / CHARS_PER_TOKEN) : 0;
}

/**
 * Tokens to reserve before sending: the prompt estimate plus the most the answer may hold,
 * the request's own maximum (`max_completion_tokens`, `max_tokens`, `max_output_tokens`)
 * else `defaultMax` (MAX_TOKENS_ESTIMATE).
 */
export function estimateTokens(bodyBytes: number, maxTokens: number | null, defaultMax: number): number {
  return promptEstimate(bodyBytes) + (maxTokens ?? defaultMax);
}

/**
 * Tokens a finished request is charged, to settle its reservation:
 * 1. usage reported (JSON answer, a stream's usage chunk or `response.completed`):
 *    `promptTokens + completionTokens`, exactly the usage's total. Cached prompt tokens are
 *    part of the prompt count and reasoning tokens part of the completion count, so neither
 *    is added again; `cachedTokens` is for the log only. The usage wins whatever `produced`
 *    says: it is the server's own count of work done.
 * 2. no usage, and no answer produced (refused, failed before any answer, a non-2xx answer):
 *    0, the whole reservation refunded.
 * 3. no usage, but text streamed (vLLM without `stream_options.include_usage`, or a stream
 *    cut before its usage chunk): the prompt estimate (the server read the whole prompt
 *    before the first token, and OpenAI bills it) plus ceil(textChars / 4).
 * 4. no usage and no text (a stream that ended or was cut before its first token, a JSON
 *    answer without usage): 0. The prompt may have been read, but there is no evidence of
 *    it, and the answers without usage from OpenAI-compatible servers are the ones that cost
 *    no tokens (model lists, files, deletions).
 */
export function settledTokens(usage: Usage | null, textChars: number, produced: boolean, bodyBytes: number): number {
  if (usage !== null) return usage.promptTokens + usage.completionTokens;
  if (!produced || !(textChars > 0)) return 0;
  return promptEstimate(bodyBytes) + Math.ceil(textChars / CHARS_PER_TOKEN);
}
