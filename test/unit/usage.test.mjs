// Token usage from upstream answers: whole JSON bodies, and SSE streams watched chunk by chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usageFromJson, SseUsageWatcher } from '../../dist/observe/usage.js';

const chunk = (delta, extra = {}) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', system_fingerprint: 'fp_1', choices: [{ index: 0, delta, logprobs: null, finish_reason: null }], usage: null, ...extra })}\n\n`;

/** A chat stream with `stream_options.include_usage`, as api.openai.com sends it. */
const CHAT = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ content: 'The "usage": {' }), // model text that looks like the key, escaped in JSON
  chunk({ content: ' is fine.' }),
  chunk({}, { choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }),
  `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini-2024-07-18', choices: [], usage: { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 } })}\n\n`,
  'data: [DONE]\n\n',
].join('');

const RESPONSES = [
  'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","instructions":"say \\"model\\": x","model":"gpt-4.1","usage":null}}\n\n',
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,"delta":"Hi"}\n\n',
  'event: response.completed\ndata: {"type":"response.completed","sequence_number":2,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-4.1-2025-04-14","output":[],"usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"total_tokens":35}}}\n\n',
].join('');

function watch(...chunks) {
  const w = new SseUsageWatcher();
  for (const c of chunks) w.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return w;
}

test('a chat stream with include_usage yields the last chunk usage and the model', () => {
  const w = watch(CHAT);
  assert.deepEqual(w.usage(), { promptTokens: 12, completionTokens: 7, cachedTokens: null });
  assert.equal(w.model(), 'gpt-4o-mini-2024-07-18', 'the usage event names the model exactly');
});

test('the same usage whatever byte the stream is split at (every split point)', () => {
  const bytes = Buffer.from(CHAT);
  for (let at = 0; at <= bytes.length; at++) {
    const w = watch(bytes.subarray(0, at), bytes.subarray(at));
    assert.deepEqual(w.usage(), { promptTokens: 12, completionTokens: 7, cachedTokens: null }, `split at ${at}`);
    assert.equal(w.model(), 'gpt-4o-mini-2024-07-18', `split at ${at}`);
  }
});

test('the same usage when the stream arrives one byte at a time, or in three pieces', () => {
  const bytes = Buffer.from(CHAT);
  const w = new SseUsageWatcher();
  for (let i = 0; i < bytes.length; i++) w.push(bytes.subarray(i, i + 1));
  assert.deepEqual(w.usage(), { promptTokens: 12, completionTokens: 7, cachedTokens: null });
  for (let a = 0; a < bytes.length; a += 37) {
    const b = Math.min(bytes.length, a + 211);
    const w3 = watch(bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b));
    assert.deepEqual(w3.usage(), { promptTokens: 12, completionTokens: 7, cachedTokens: null }, `split at ${a}, ${b}`);
  }
});

test('the watcher does not alter the chunks it sees', () => {
  const bytes = Buffer.from(CHAT);
  const copy = Buffer.from(bytes);
  watch(bytes.subarray(0, 100), bytes.subarray(100));
  assert.deepEqual(bytes, copy);
});

test('the watcher keeps no reference to a chunk: the caller may reuse its memory at once', () => {
  const bytes = Buffer.from(CHAT);
  const at = CHAT.indexOf('"usage":{') + 3;
  const reused = Buffer.alloc(bytes.length);
  const w = new SseUsageWatcher();
  bytes.copy(reused, 0, 0, at);
  w.push(reused.subarray(0, at));
  reused.fill(0x78); // e.g. a pooled buffer handed to the next read
  w.push(bytes.subarray(at));
  assert.deepEqual(w.usage(), { promptTokens: 12, completionTokens: 7, cachedTokens: null });
});

test('a responses stream yields response.completed usage, split anywhere', () => {
  const bytes = Buffer.from(RESPONSES);
  for (let at = 0; at <= bytes.length; at++) {
    const w = watch(bytes.subarray(0, at), bytes.subarray(at));
    assert.deepEqual(w.usage(), { promptTokens: 30, completionTokens: 5, cachedTokens: 0 }, `split at ${at}`);
    assert.equal(w.model(), 'gpt-4.1-2025-04-14', `split at ${at}`);
  }
});

test('a stream without usage gives null usage but the model of the first chunk', () => {
  const w = watch(CHAT.split('\n\n').slice(0, 4).join('\n\n') + '\n\ndata: [DONE]\n\n');
  assert.equal(w.usage(), null);
  assert.equal(w.model(), 'gpt-4o-mini');
  const r = watch(RESPONSES.split('event: response.completed')[0]);
  assert.equal(r.usage(), null);
  assert.equal(r.model(), 'gpt-4.1', 'from response.created, before any nested object');
});

test('CRLF line endings work', () => {
  const w = watch(CHAT.replaceAll('\n', '\r\n'));
  assert.deepEqual(w.usage(), { promptTokens: 12, completionTokens: 7, cachedTokens: null });
  assert.equal(w.model(), 'gpt-4o-mini-2024-07-18');
});

test('spaces around the colon (Python json.dumps) are tolerated', () => {
  const w = watch('data: {"model": "m-1", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n');
  assert.deepEqual(w.usage(), { promptTokens: 3, completionTokens: 4, cachedTokens: null });
  assert.equal(w.model(), 'm-1');
});

test('with usage on every chunk (vLLM continuous_usage_stats) the last one wins', () => {
  const w = watch(
    'data: {"model":"a","usage":{"prompt_tokens":5,"completion_tokens":1}}\n\n',
    'data: {"model":"a","usage":{"prompt_tokens":5,"completion_tokens":2}}\n\ndata: {"model":"a","usage":{"prompt_tokens":5,"completion_tokens":3}}\n\n',
  );
  assert.deepEqual(w.usage(), { promptTokens: 5, completionTokens: 3, cachedTokens: null });
});

test('a giant unfinished line is dropped at 1 MiB and watching resumes after it', () => {
  const w = new SseUsageWatcher();
  w.push(Buffer.from('data: {"usage":{"prompt_tokens":1,"completion_tokens":1},"pad":"'));
  const filler = Buffer.alloc(256 * 1024, 0x61);
  for (let i = 0; i < 8; i++) w.push(filler); // 2 MiB without a newline: not held
  w.push(Buffer.from('"}\n\n'));
  assert.equal(w.usage(), null, 'the oversized line was not parsed');
  w.push(Buffer.from('data: {"usage":{"prompt_tokens":2,"completion_tokens":9}}\n\n'));
  assert.deepEqual(w.usage(), { promptTokens: 2, completionTokens: 9, cachedTokens: null });
});

test('on one line the last "usage" object counts; a usage object is read from a data line only', () => {
  const w = watch('data: {"response":{"output":[{"usage":{"prompt_tokens":1}}],"usage":{"input_tokens":7,"output_tokens":8},"metadata":{"usage":"x"}}}\n');
  assert.deepEqual(w.usage(), { promptTokens: 7, completionTokens: 8, cachedTokens: null });
  assert.equal(watch('id: 1\n: {"usage":{"prompt_tokens":1}}\n').usage(), null);
});

test('lines that are not data, not JSON, or carry no counts are ignored', () => {
  const w = watch(
    ': keep-alive "usage":{ comment\n',
    'event: x\n',
    'data: {"usage":{ broken\n',
    'data: {"usage":{"prompt_tokens":"12"}}\n',
    'data: {"usage":{"total_tokens":3}}\n',
    'data: {"model":"x\\"y","usage":null}\n',
    'data: {"model":"","usage":null}\n',
  );
  assert.equal(w.usage(), null);
  assert.equal(w.model(), null);
});

test('the model is looked for in the first chunks only, and only on data lines', () => {
  const w = new SseUsageWatcher();
  w.push(Buffer.from(': "model":"comment"\n'));
  for (let i = 0; i < 10; i++) w.push(Buffer.from('data: {"x":1}\n'));
  w.push(Buffer.from('data: {"model":"late"}\n'));
  assert.equal(w.model(), null);
  const long = watch(`data: {"model":"${'m'.repeat(900)}"}\n`);
  assert.equal(long.model(), null, 'an over-long value is not read');
  const capped = watch(`data: {"model":"${'m'.repeat(300)}","usage":{"prompt_tokens":1}}\n`);
  assert.equal(capped.model().length, 200);
  assert.deepEqual(capped.usage(), { promptTokens: 1, completionTokens: 0, cachedTokens: null });
});

test('usageFromJson reads chat, completions, embeddings, responses and transcription bodies', () => {
  const j = (o) => Buffer.from(JSON.stringify(o));
  assert.deepEqual(usageFromJson(j({ object: 'chat.completion', choices: [], usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } })), { promptTokens: 9, completionTokens: 12, cachedTokens: null });
  assert.deepEqual(usageFromJson(j({ object: 'list', data: [], usage: { prompt_tokens: 8, total_tokens: 8 } })), { promptTokens: 8, completionTokens: 0, cachedTokens: null });
  assert.deepEqual(usageFromJson(j({ object: 'response', usage: { input_tokens: 36, output_tokens: 87, total_tokens: 123 } })), { promptTokens: 36, completionTokens: 87, cachedTokens: null });
  assert.deepEqual(usageFromJson(j({ text: 'hi', usage: { type: 'tokens', input_tokens: 14, output_tokens: 45 } })), { promptTokens: 14, completionTokens: 45, cachedTokens: null });
  const nested = { prompt_tokens: 1, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 0, note: 'a "}" in a string' } };
  assert.deepEqual(usageFromJson(j({ usage: nested })), { promptTokens: 1, completionTokens: 2, cachedTokens: 0 });
});

test('usageFromJson reads pretty-printed bodies and skips a later non-object "usage" key', () => {
  assert.deepEqual(usageFromJson(Buffer.from(JSON.stringify({ object: 'response', usage: { input_tokens: 2, output_tokens: 3 }, metadata: { usage: 'x' } }, null, 2))), { promptTokens: 2, completionTokens: 3, cachedTokens: null });
});

test('usageFromJson parses only the usage object, so a huge embeddings answer costs no more', () => {
  const one = JSON.stringify({ object: 'embedding', index: 0, embedding: Array.from({ length: 1536 }, (_, i) => Math.sin(i)) });
  const body = Buffer.from(`{"object":"list","data":[${Array(300).fill(one).join(',')}],"model":"text-embedding-3-small","usage":{"prompt_tokens":4096,"total_tokens":4096}}`);
  assert.ok(body.length > 8 * 1024 * 1024);
  const t = process.hrtime.bigint();
  for (let i = 0; i < 100; i++) assert.deepEqual(usageFromJson(body), { promptTokens: 4096, completionTokens: 0, cachedTokens: null });
  const msPerCall = Number(process.hrtime.bigint() - t) / 1e6 / 100;
  assert.ok(msPerCall < 5, `${msPerCall} ms per call: the body was parsed whole (JSON.parse takes ~50 ms)`);
});

test('usageFromJson answers null for garbage, no usage, or counts that are not counts', () => {
  for (const body of ['', 'not json', '[1,2]', 'null', '{"usage":null}', '{"id":1}', '{"usage":{"type":"duration","seconds":3}}', '{"usage":{"prompt_tokens":-1}}', '{"usage":{"prompt_tokens":1,"completion_tokens":"2"}}', '{"usage":[1]}', '{"usage":{"prompt_tokens":1', `{"usage":{"prompt_tokens":1,"pad":"${'p'.repeat(5000)}"}}`, '{"usage" {"prompt_tokens":1}}', '{"usage":{"prompt_tokens":1,}}']) {
    assert.equal(usageFromJson(Buffer.from(body)), null, body);
  }
});

test('cached prompt tokens are read as the part of the prompt they are, from the details of their own shape', () => {
  const j = (usage) => usageFromJson(Buffer.from(JSON.stringify({ object: 'x', usage })));
  // OpenAI / vLLM chat: prompt_tokens includes prompt_tokens_details.cached_tokens
  assert.deepEqual(j({ prompt_tokens: 2006, completion_tokens: 300, total_tokens: 2306, prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 128 } }), { promptTokens: 2006, completionTokens: 300, cachedTokens: 1920 });
  // Responses: input_tokens includes input_tokens_details.cached_tokens; output_tokens includes reasoning
  assert.deepEqual(j({ input_tokens: 1200, input_tokens_details: { cached_tokens: 1024 }, output_tokens: 300, output_tokens_details: { reasoning_tokens: 200 }, total_tokens: 1500 }), { promptTokens: 1200, completionTokens: 300, cachedTokens: 1024 });
  assert.deepEqual(j({ prompt_tokens: 10, completion_tokens: 1, input_tokens_details: { cached_tokens: 5 } }), { promptTokens: 10, completionTokens: 1, cachedTokens: null }, 'details of the other shape are not this one\'s');
  for (const details of [null, 'x', { cached_tokens: -1 }, { cached_tokens: '5' }, {}]) {
    assert.equal(j({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: details }).cachedTokens, null, JSON.stringify(details));
  }
});

test('a usage reporting only output tokens is no usage: a charge cannot be output-only', () => {
  for (const usage of [{ completion_tokens: 50 }, { output_tokens: 50 }, { completion_tokens: 50, total_tokens: 50 }, { prompt_tokens: null, output_tokens: 5 }]) {
    assert.equal(usageFromJson(Buffer.from(JSON.stringify({ usage }))), null, JSON.stringify(usage));
  }
});
