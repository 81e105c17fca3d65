// The characters of text a stream generated, counted by the SSE watcher for streams without usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseUsageWatcher } from '../../dist/observe/usage.js';
import { usageMeter } from '../../dist/proxy/usage-meter.js';

/** Code points, what the counter counts: `[...s].length`. */
const chars = (...texts) => texts.reduce((n, t) => n + [...t].length, 0);

/** Python's json.dumps default (ensure_ascii): every non-ASCII character as \uXXXX, astral ones as a surrogate pair. */
const asciiJson = (v) => JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** A vLLM chat chunk (compact, one event per chunk), its delta given as JSON text. */
const chatChunk = (deltaJson, extra = '') =>
  `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":${deltaJson},"logprobs":null,"finish_reason":null}]${extra}}\n\n`;
const content = (text) => chatChunk(JSON.stringify({ content: text }));

function watch(...chunks) {
  const w = new SseUsageWatcher();
  for (const c of chunks) w.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return w;
}

const TOKENS = ['Hello', ',', ' world', '!\n\n', ' "quoted"', ' café', ' 日本語', ' 🙂', '\\', '\t', ' </think>'];
const CHAT = [chatChunk('{"role":"assistant","content":""}'), ...TOKENS.map(content), chatChunk('{"content":""}').replace('"finish_reason":null', '"finish_reason":"stop"'), 'data: [DONE]\n\n'].join('');

test('a chat stream without usage: the characters of its content deltas', () => {
  const w = watch(CHAT);
  assert.equal(w.usage(), null);
  assert.equal(w.textChars(), chars(...TOKENS));
});

test('the same count whatever byte the stream is split at (every split point), and byte by byte', () => {
  const bytes = Buffer.from(CHAT);
  for (let at = 0; at <= bytes.length; at++) {
    assert.equal(watch(bytes.subarray(0, at), bytes.subarray(at)).textChars(), chars(...TOKENS), `split at ${at}`);
  }
  const w = new SseUsageWatcher();
  for (let i = 0; i < bytes.length; i++) w.push(bytes.subarray(i, i + 1));
  assert.equal(w.textChars(), chars(...TOKENS));
});

test('escapes count as the one character they stand for; UTF-8 sequences as one; an escaped emoji (surrogate pair) as one', () => {
  const text = 'naïve "q" \\ \n\t café 日本 🙂 😀 end';
  const ascii = chatChunk(`{"content":${asciiJson(text)}}`);
  assert.match(ascii, /\\u00ef.*\\ud83d\\ude42/, 'the fixture really is escaped');
  assert.equal(watch(ascii).textChars(), chars(text));
  assert.equal(watch(content(text)).textChars(), chars(text));
  assert.equal(watch(chatChunk('{"content":"\\u00E9\\uD83D\\uDE00\\/"}')).textChars(), 3, 'upper-case hex, \\/');
});

test('reasoning models: reasoning or reasoning_content counted; the same text under both names once', () => {
  const r = (o) => chatChunk(JSON.stringify(o));
  assert.equal(watch(r({ reasoning: 'Let me think' }), content('Yes')).textChars(), chars('Let me think', 'Yes'));
  assert.equal(watch(r({ reasoning_content: 'Hmm, ' }), r({ reasoning_content: 'ok' })).textChars(), chars('Hmm, ok'));
  assert.equal(watch(r({ reasoning: 'twice', reasoning_content: 'twice' })).textChars(), 5, 'one text, two names');
  assert.equal(watch(r({ reasoning_content: 'longer one', reasoning: 'short' })).textChars(), 10, 'different: the longer');
  assert.equal(watch(r({ content: 'a', reasoning: 'bc' })).textChars(), 3, 'content and reasoning both');
});

test('tool calls: the arguments count, names and ids do not', () => {
  const call = (fn) => chatChunk(JSON.stringify({ tool_calls: [{ index: 0, ...fn }] }));
  const w = watch(
    chatChunk('{"role":"assistant","content":null}'),
    call({ id: 'chatcmpl-tool-abc', type: 'function', function: { name: 'get_weather', arguments: '' } }),
    call({ function: { arguments: '{"city": ' } }),
    call({ function: { arguments: '"Paris"}' } }),
    chatChunk(JSON.stringify({ tool_calls: [{ index: 1, id: 'x', type: 'function', function: { name: 'two', arguments: '{}' } }, { index: 2, function: { arguments: '[1]' } }] })),
    chatChunk(JSON.stringify({ function_call: { name: 'legacy', arguments: '{"a":1}' } })),
  );
  assert.equal(w.textChars(), chars('{"city": ', '"Paris"}', '{}', '[1]', '{"a":1}'));
});

test('tool calls and text in one chunk (events of one upstream read): each event read as its own', () => {
  const call = (args) => chatChunk(JSON.stringify({ tool_calls: [{ index: 0, function: { arguments: args } }] }));
  const events = [content('Let me check.'), call('{"city": '), content(' (one moment)'), call('"Paris"}'), content('Done')];
  const expected = chars('Let me check.', '{"city": ', ' (one moment)', '"Paris"}', 'Done');
  assert.equal(watch(...events).textChars(), expected, 'one event per chunk');
  assert.equal(watch(events.join('')).textChars(), expected, 'all in one chunk');
  const later = 'data: {"id":"x","arguments":"not a tool call"}\n\n';
  assert.equal(watch(call('{}') + later).textChars(), 2, 'an "arguments" key on a later line is not one of the tool call');
});

test('deltas with nulls (SGLang), OpenAI first chunks and refusals', () => {
  const w = watch(
    chatChunk('{"role":"assistant","content":"","refusal":null}'),
    chatChunk('{"role":null,"content":"Hi","reasoning_content":null,"tool_calls":null}'),
    chatChunk('{"refusal":"I can\'t help with that."}'),
    chatChunk('{"content":" there","audio":null,"n":1,"ok":true}'),
  );
  assert.equal(w.textChars(), chars('Hi', "I can't help with that.", ' there'));
});

test('text that looks like keys, logprobs and other keys are not counted', () => {
  const tricky = 'the "content":"x" and "delta":{"content":"y"} and "usage":{"prompt_tokens":1}';
  const withLogprobs = chatChunk(JSON.stringify({ content: 'Hi' }), '').replace('"logprobs":null', '"logprobs":{"content":[{"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[{"token":"Hello","logprob":-2}]}],"refusal":null}');
  const w = watch(content(tricky), withLogprobs, 'data: {"id":"x","content":"not in a delta"}\n\n');
  assert.equal(w.usage(), null);
  assert.equal(w.textChars(), chars(tricky, 'Hi'));
});

test('spaces around colons (Python json.dumps), CRLF lines, several events in one chunk', () => {
  const spaced = 'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi there"}}]}\n\n';
  assert.equal(watch(spaced).textChars(), 8);
  assert.equal(watch(CHAT.replaceAll('\n', '\r\n')).textChars(), chars(...TOKENS));
  assert.equal(watch(content('a') + content('bc') + content('def')).textChars(), 6, 'coalesced writes');
});

test('a stream with usage: the usage and the characters both, and cached tokens read', () => {
  const usage = ',"usage":{"prompt_tokens":2006,"completion_tokens":3,"total_tokens":2009,"prompt_tokens_details":{"cached_tokens":1920}}';
  const w = watch(content('abc'), `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[]${usage}}\n\n`, 'data: [DONE]\n\n');
  assert.deepEqual(w.usage(), { promptTokens: 2006, completionTokens: 3, cachedTokens: 1920 });
  assert.equal(w.textChars(), 3);
  const continuous = watch(chatChunk('{"content":"ab"}', ',"usage":{"prompt_tokens":5,"completion_tokens":1}'), chatChunk('{"content":"c"}', ',"usage":{"prompt_tokens":5,"completion_tokens":2}'));
  assert.deepEqual(continuous.usage(), { promptTokens: 5, completionTokens: 2, cachedTokens: null }, 'vLLM continuous_usage_stats: usage after the delta on one line');
  assert.equal(continuous.textChars(), 3);
});

test('a legacy completions stream: choices[].text', () => {
  const chunk = (text) => `data: ${JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ index: 0, text, logprobs: null, finish_reason: null, stop_reason: null }], usage: null })}\n\n`;
  const texts = [' The', ' capital', ' of', ' France', ' is', ' Paris', '.\n'];
  assert.equal(watch(...texts.map(chunk), 'data: [DONE]\n\n').textChars(), chars(...texts));
  const withLogprobs = `data: {"object":"text_completion","choices":[{"index":0,"text":"Hi","logprobs":{"tokens":["Hi"],"token_logprobs":[-0.1],"top_logprobs":[{"text":-1.5}],"text_offset":[0]}}]}\n\n`;
  assert.equal(watch(withLogprobs).textChars(), 2, 'a top logprob for the token "text" is a number, not text');
});

/** A Responses API stream as vLLM writes it (fields in alphabetical order, `type` last) or as OpenAI does (`type` first). */
function responsesEvent(type, fields, openaiOrder) {
  const data = openaiOrder ? { type, sequence_number: 1, ...fields } : { ...fields, sequence_number: 1, type };
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

test('a Responses stream: the string delta of text, reasoning, refusal and argument events; not the done events', () => {
  for (const openaiOrder of [false, true]) {
    const e = (type, fields) => responsesEvent(type, fields, openaiOrder);
    const stream = [
      e('response.created', { response: { id: 'resp_1', object: 'response', model: 'm', output: [], text: { format: { type: 'text' } }, usage: null } }),
      e('response.reasoning_text.delta', { item_id: 'rs_1', output_index: 0, content_index: 0, delta: 'Think.' }),
      e('response.content_part.added', { item_id: 'msg_1', output_index: 1, content_index: 0, part: { type: 'output_text', annotations: [], text: '' } }),
      e('response.output_text.delta', { item_id: 'msg_1', output_index: 1, content_index: 0, delta: 'Hello', logprobs: [] }),
      e('response.output_text.delta', { item_id: 'msg_1', output_index: 1, content_index: 0, delta: ' wörld', logprobs: [] }),
      e('response.output_text.done', { item_id: 'msg_1', output_index: 1, content_index: 0, text: 'Hello wörld' }),
      e('response.refusal.delta', { item_id: 'msg_1', output_index: 1, content_index: 0, delta: 'No.' }),
      e('response.function_call_arguments.delta', { item_id: 'fc_1', output_index: 2, delta: '{"x":1}' }),
      e('response.function_call_arguments.done', { item_id: 'fc_1', output_index: 2, arguments: '{"x":1}' }),
      e('response.output_item.done', { output_index: 2, item: { type: 'function_call', name: 'f', arguments: '{"x":1}' } }),
    ].join('');
    const expected = chars('Think.', 'Hello', ' wörld', 'No.', '{"x":1}');
    const bytes = Buffer.from(stream);
    for (let at = 0; at <= bytes.length; at += 7) {
      assert.equal(watch(bytes.subarray(0, at), bytes.subarray(at)).textChars(), expected, `${openaiOrder ? 'OpenAI' : 'vLLM'} order, split at ${at}`);
    }
  }
});

test('a Responses audio delta (base64) is not text, by its event line or, without one, its type', () => {
  const audio = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAAZGF0YQAAAAA='.repeat(4);
  for (const openaiOrder of [false, true]) {
    const ev = responsesEvent('response.audio.delta', { response_id: 'resp_1', delta: audio }, openaiOrder);
    const transcript = responsesEvent('response.audio.transcript.delta', { response_id: 'resp_1', delta: 'Hi there' }, openaiOrder);
    assert.equal(watch(ev, transcript).textChars(), 8, 'the transcript is text');
    assert.equal(watch(ev.slice(ev.indexOf('data:'))).textChars(), 0, 'no event line: the type says audio');
    assert.equal(watch(ev.slice(0, ev.indexOf('data:')), ev.slice(ev.indexOf('data:'))).textChars(), 0, 'event line in the chunk before');
  }
  const long = responsesEvent('response.output_text.delta', { delta: 'a long delta of text, forty characters.' }, false);
  assert.equal(watch(long).textChars(), 39, 'a long text delta is checked and counted');
});

test('a transcription stream: transcript.text.delta counts', () => {
  const w = watch('data: {"type":"transcript.text.delta","delta":"Hello"}\n\n', 'data: {"type":"transcript.text.delta","delta":" there."}\n\n', 'data: {"type":"transcript.text.done","text":"Hello there."}\n\n');
  assert.equal(w.textChars(), 12);
});

test('a line over 1 MiB is dropped, its text with it, and counting resumes after it', () => {
  const w = new SseUsageWatcher();
  w.push(Buffer.from(chatChunk('{"content":"ab"}').trimEnd().slice(0, -3)));
  for (let i = 0; i < 8; i++) w.push(Buffer.alloc(256 * 1024, 0x61));
  w.push(Buffer.from('"}]}\n\n'));
  w.push(Buffer.from(content('cd')));
  assert.equal(w.textChars(), 2);
});

test('the meter: textChars from an SSE answer, 0 from a JSON one (only its usage is read)', () => {
  const sse = usageMeter(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  sse.push(Buffer.from(CHAT));
  assert.equal(sse.textChars(), chars(...TOKENS));
  const json = usageMeter(200, { 'content-type': 'application/json' });
  json.push(Buffer.from(JSON.stringify({ choices: [{ message: { content: 'Hello there' } }], usage: { prompt_tokens: 3, completion_tokens: 2 } })));
  assert.equal(json.textChars(), 0);
  assert.deepEqual(json.usage(), { promptTokens: 3, completionTokens: 2, cachedTokens: null });
  assert.equal(usageMeter(500, { 'content-type': 'text/event-stream' }), null);
});
