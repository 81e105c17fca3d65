// Tokens reserved before a request and settled after it, for per-client token limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimateTokens, promptEstimate, settledTokens } from '../../dist/observe/token-estimate.js';
import { SseUsageWatcher, usageFromJson } from '../../dist/observe/usage.js';

const json = (o) => Buffer.from(JSON.stringify(o));

test('the estimate before: ceil(body bytes / 4) plus the requested maximum, else the default', () => {
  assert.equal(estimateTokens(400, 100, 4096), 200);
  assert.equal(estimateTokens(401, 100, 4096), 201, 'a started token counts');
  assert.equal(estimateTokens(401, null, 4096), 101 + 4096, 'no max_tokens in the request: the default');
  assert.equal(estimateTokens(0, null, 1000), 1000);
  assert.equal(promptEstimate(0), 0);
  assert.equal(promptEstimate(-3), 0);
  assert.equal(promptEstimate(1), 1);
});

test('settled to the usage, prompt + completion: cached prompt tokens are not counted twice', () => {
  const chat = usageFromJson(json({ object: 'chat.completion', choices: [], usage: { prompt_tokens: 2006, completion_tokens: 300, total_tokens: 2306, prompt_tokens_details: { cached_tokens: 1920 } } }));
  assert.equal(settledTokens(chat, 0, true, 9000), 2306, 'the usage total: not 2006 + 1920 + 300');
  assert.notEqual(settledTokens(chat, 0, true, 9000), 2006 + 1920 + 300);
  const responses = usageFromJson(json({ object: 'response', usage: { input_tokens: 1200, input_tokens_details: { cached_tokens: 1024 }, output_tokens: 300, output_tokens_details: { reasoning_tokens: 200 }, total_tokens: 1500 } }));
  assert.equal(settledTokens(responses, 0, true, 9000), 1500, 'reasoning tokens are inside output_tokens too');
});

test('the charge is always the whole usage total, never the output alone', () => {
  const bodies = [
    { usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } },
    { usage: { prompt_tokens: 8, total_tokens: 8 } }, // embeddings
    { usage: { input_tokens: 36, output_tokens: 87, total_tokens: 123 } },
    { usage: { prompt_tokens: 100, completion_tokens: 0, total_tokens: 100, prompt_tokens_details: { cached_tokens: 100 } } },
  ];
  for (const body of bodies) assert.equal(settledTokens(usageFromJson(json(body)), 0, true, 1), body.usage.total_tokens, JSON.stringify(body));
  const outputOnly = usageFromJson(json({ usage: { completion_tokens: 50 } }));
  assert.equal(outputOnly, null);
  assert.equal(settledTokens(outputOnly, 0, true, 4000), 0, 'no usage, no text: nothing to charge');
});

test('a stream with its usage chunk settles to that usage, whatever text it counted', () => {
  const w = new SseUsageWatcher();
  w.push(Buffer.from('data: {"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"Hello there, friend"}}]}\n\n'));
  w.push(Buffer.from('data: {"object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":4,"total_tokens":44,"prompt_tokens_details":{"cached_tokens":32}}}\n\n'));
  assert.equal(settledTokens(w.usage(), w.textChars(), true, 400), 44);
});

test('no usage but streamed text: the prompt estimate plus ceil(characters / 4)', () => {
  const w = new SseUsageWatcher();
  for (const t of ['The', ' answer', ' is', ' 42.']) w.push(Buffer.from(`data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${t}"}}]}\n\n`));
  w.push(Buffer.from('data: [DONE]\n\n'));
  assert.equal(w.usage(), null);
  assert.equal(w.textChars(), 17);
  assert.equal(settledTokens(w.usage(), w.textChars(), true, 401), 101 + 5);
  assert.equal(settledTokens(null, 1, true, 0), 1);
});

test('a refund when nothing was produced: no answer, or a stream without text', () => {
  assert.equal(settledTokens(null, 0, false, 4000), 0, 'refused or failed before any answer');
  assert.equal(settledTokens(null, 25, false, 4000), 0, 'no answer: nothing is charged');
  assert.equal(settledTokens(null, 0, true, 4000), 0, 'a stream cut before its first token, or a JSON answer without usage');
  const usage = { promptTokens: 7, completionTokens: 0, cachedTokens: null };
  assert.equal(settledTokens(usage, 0, false, 4000), 7, 'a usage is the server\'s own count: it wins');
});
