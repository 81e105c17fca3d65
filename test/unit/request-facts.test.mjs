// The model, stream flag and max tokens of a request body, read only as far as it is cheap to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestFacts } from '../../dist/observe/request-facts.js';

const JSON_CT = 'application/json';
const json = (o) => Buffer.from(JSON.stringify(o));
const NONE = { model: null, stream: false, maxTokens: null };

test('a small JSON body: top-level model and stream === true', () => {
  const messages = [{ role: 'user', content: 'hi' }];
  assert.deepEqual(requestFacts(json({ model: 'gpt-4o-mini', messages, stream: true, maxTokens: null }), JSON_CT), { model: 'gpt-4o-mini', stream: true, maxTokens: null });
  assert.deepEqual(requestFacts(json({ model: 'gpt-4o-mini', messages, stream: false, maxTokens: null }), JSON_CT), { model: 'gpt-4o-mini', stream: false, maxTokens: null });
  assert.deepEqual(requestFacts(json({ model: 'gpt-4o-mini', messages }), JSON_CT), { model: 'gpt-4o-mini', stream: false, maxTokens: null });
  assert.deepEqual(requestFacts(json({ model: 'm', stream: 'true' }), JSON_CT), { model: 'm', stream: false, maxTokens: null }, 'only the boolean counts');
});

test('content types: charset and +json suffixes accepted, case-insensitive', () => {
  const body = json({ model: 'm', stream: true, maxTokens: null });
  for (const ct of ['application/json; charset=utf-8', 'Application/JSON', 'application/vnd.api+json']) {
    assert.deepEqual(requestFacts(body, ct), { model: 'm', stream: true, maxTokens: null }, ct);
  }
});

test('a model that is missing, not a string, empty or huge', () => {
  assert.deepEqual(requestFacts(json({ input: 'x' }), JSON_CT), NONE);
  assert.deepEqual(requestFacts(json({ model: 42 }), JSON_CT), NONE);
  assert.deepEqual(requestFacts(json({ model: '' }), JSON_CT), NONE);
  assert.equal(requestFacts(json({ model: 'x'.repeat(5000) }), JSON_CT).model, 'x'.repeat(200));
});

test('a nested model or stream is not the request one', () => {
  assert.deepEqual(requestFacts(json({ metadata: { model: 'no', stream: true, maxTokens: null } }), JSON_CT), NONE);
});

test('a body up to 128 KiB is parsed exactly: the top-level model wins wherever it is', () => {
  const pad = 'D'.repeat(128 * 1024 - 100);
  const body = Buffer.from(`{"metadata":{"model":"nested"},"messages":"${pad}","model":"top","stream":true}`);
  assert.ok(body.length <= 128 * 1024);
  assert.deepEqual(requestFacts(body, JSON_CT), { model: 'top', stream: true, maxTokens: null });
});

test('a body over 128 KiB is scanned, not parsed: its first 64 KiB are enough', () => {
  const body = Buffer.from(`{"model":"gpt-4o","messages":"${'E'.repeat(200 * 1024)}"}`);
  assert.deepEqual(requestFacts(body, JSON_CT), { model: 'gpt-4o', stream: false, maxTokens: null });
});

test('a JSON body over 1 MiB: model and stream found near the start without parsing', () => {
  const big = 'A'.repeat(2 * 1024 * 1024);
  const body = Buffer.from(`{"model" : "gpt-4o","stream": true,"messages":[{"role":"user","content":"${big}"}]}`);
  assert.deepEqual(requestFacts(body, JSON_CT), { model: 'gpt-4o', stream: true, maxTokens: null });
  const broken = Buffer.from(`{"model":"meta-llama\\/Llama-3","messages":[{"content":"${big}`); // cut short: still read
  assert.deepEqual(requestFacts(broken, JSON_CT), { model: 'meta-llama/Llama-3', stream: false, maxTokens: null });
  const badEscape = Buffer.from(`{"model":"bad\\x","messages":"${big}"}`);
  assert.deepEqual(requestFacts(badEscape, JSON_CT), NONE, 'an undecodable value is no model');
});

test('a JSON body over 1 MiB written messages-first (openai-python): model read from the tail', () => {
  const big = 'B'.repeat(1536 * 1024);
  const body = Buffer.from(`{"messages": [{"role": "user", "content": "${big}"}], "model": "gpt-4o", "stream": true}`);
  assert.deepEqual(requestFacts(body, JSON_CT), { model: 'gpt-4o', stream: true, maxTokens: null });
});

test('a large JSON body with the model only in the middle is not read (bounded cost)', () => {
  const half = 'C'.repeat(512 * 1024);
  const body = Buffer.from(`{"a":"${half}","model":"hidden","b":"${half}"}`);
  assert.deepEqual(requestFacts(body, JSON_CT), NONE);
});

test('invalid JSON, a non-object, an empty body, non-JSON types', () => {
  assert.deepEqual(requestFacts(Buffer.from('{"model":"x",'), JSON_CT), NONE);
  assert.deepEqual(requestFacts(Buffer.from('["model"]'), JSON_CT), NONE);
  assert.deepEqual(requestFacts(Buffer.from('null'), JSON_CT), NONE);
  assert.deepEqual(requestFacts(Buffer.alloc(0), JSON_CT), NONE);
  const body = json({ model: 'm', stream: true, maxTokens: null });
  assert.deepEqual(requestFacts(body, 'text/plain'), NONE);
  assert.deepEqual(requestFacts(body, 'application/x-www-form-urlencoded'), NONE);
  assert.deepEqual(requestFacts(body, 'application/jsonp'), NONE);
  assert.deepEqual(requestFacts(body, undefined), NONE);
});

function multipart(boundary, fields) {
  const parts = fields.map(([name, value, filename]) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"\r\nContent-Type: audio/mpeg` : ''}\r\n\r\n${value}\r\n`,
  );
  return Buffer.from(parts.join('') + `--${boundary}--\r\n`, 'latin1');
}

test('multipart: the model form field, before or after a large file', () => {
  const audio = 'I'.repeat(3 * 1024 * 1024);
  const ct = 'multipart/form-data; boundary=----b0undary';
  const fieldsFirst = multipart('----b0undary', [['model', 'whisper-1'], ['file', audio, 'a.mp3']]);
  assert.deepEqual(requestFacts(fieldsFirst, ct), { model: 'whisper-1', stream: false, maxTokens: null });
  const fileFirst = multipart('----b0undary', [['file', audio, 'model'], ['model', 'gpt-4o-transcribe'], ['stream', 'true']]);
  assert.deepEqual(requestFacts(fileFirst, ct), { model: 'gpt-4o-transcribe', stream: false, maxTokens: null });
  const quoted = multipart('x y', [['model', '  dall-e-2 ']]);
  assert.deepEqual(requestFacts(quoted, 'multipart/form-data; boundary="x y"'), { model: 'dall-e-2', stream: false, maxTokens: null });
});

test('multipart without a model field, without a boundary, or cut short', () => {
  const ct = 'multipart/form-data; boundary=zz';
  assert.deepEqual(requestFacts(multipart('zz', [['prompt', 'a cat'], ['n', '2']]), ct), NONE);
  assert.deepEqual(requestFacts(multipart('zz', [['model', '']]), ct), NONE);
  assert.deepEqual(requestFacts(multipart('zz', [['model', 'x']]), 'multipart/form-data'), NONE);
  assert.deepEqual(requestFacts(Buffer.from('--zz\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper'), ct), NONE);
  assert.deepEqual(requestFacts(Buffer.from('--zz\r\nContent-Disposition: form-data; name="model"'), ct), NONE);
  const middle = multipart('zz', [['file', 'J'.repeat(100 * 1024)], ['model', 'lost'], ['file2', 'K'.repeat(100 * 1024)]]);
  assert.deepEqual(requestFacts(middle, ct), NONE, 'a field outside both 64 KiB windows is not looked for');
});

test('never throws, whatever it is given', () => {
  assert.deepEqual(requestFacts('not a buffer', JSON_CT), NONE);
  assert.deepEqual(requestFacts(null, JSON_CT), NONE);
  assert.deepEqual(requestFacts(undefined, 'multipart/form-data; boundary=a'), NONE);
  assert.deepEqual(requestFacts(Buffer.from('{"model":"\\ud800"}'), JSON_CT), { model: '\ud800', stream: false, maxTokens: null });
});

test('maxTokens: max_completion_tokens, else max_tokens, else max_output_tokens, top-level', () => {
  const facts = (o) => requestFacts(json({ model: 'm', ...o }), JSON_CT).maxTokens;
  assert.equal(facts({ max_tokens: 256 }), 256, 'chat and completions');
  assert.equal(facts({ max_completion_tokens: 1024 }), 1024, 'chat, newer name');
  assert.equal(facts({ max_output_tokens: 4096 }), 4096, 'responses');
  assert.equal(facts({ max_tokens: 256, max_completion_tokens: 1024 }), 1024, 'the newer chat name wins, wherever it is');
  assert.equal(facts({ max_output_tokens: 9, max_tokens: 256 }), 256);
  assert.equal(facts({}), null, 'none given: the caller uses its default');
  assert.equal(facts({ metadata: { max_tokens: 5 } }), null, 'a nested key is not the request one');
  assert.deepEqual(requestFacts(json({ model: 'gpt-4o', stream: true, max_tokens: 50 }), JSON_CT), { model: 'gpt-4o', stream: true, maxTokens: 50 });
});

test('maxTokens: only a positive integer counts; 0 or null falls through as vLLM reads them; huge values are capped', () => {
  const facts = (o) => requestFacts(json({ model: 'm', ...o }), JSON_CT).maxTokens;
  for (const bad of [0, -5, 1.5, '100', true, null, [100], { n: 1 }, Number.NaN]) {
    assert.equal(facts({ max_tokens: bad }), null, JSON.stringify(bad));
  }
  assert.equal(facts({ max_completion_tokens: 0, max_tokens: 300 }), 300);
  assert.equal(facts({ max_completion_tokens: null, max_tokens: 300 }), 300);
  assert.equal(facts({ max_completion_tokens: 'lots', max_output_tokens: 7 }), 7);
  assert.equal(facts({ max_tokens: 1e300 }), 2 ** 24, 'bounded: more than any context window, still an exact integer');
  assert.equal(facts({ max_tokens: 2 ** 24 + 1 }), 2 ** 24);
  assert.equal(facts({ max_tokens: 2 ** 24 }), 2 ** 24);
  assert.equal(requestFacts(Buffer.from('{"model":"m","max_tokens":100.0}'), JSON_CT).maxTokens, 100, 'a JSON number that is an integer');
});

test('maxTokens in a body over 128 KiB: scanned in the head and the tail, like the model', () => {
  const big = 'M'.repeat(300 * 1024);
  const scanned = (text) => requestFacts(Buffer.from(text), JSON_CT).maxTokens;
  assert.equal(scanned(`{"model":"gpt-4o","max_tokens": 512,"messages":[{"role":"user","content":"${big}"}]}`), 512, 'head (openai-node, caller order)');
  assert.equal(scanned(`{"messages": [{"role": "user", "content": "${big}"}], "model": "gpt-4o", "max_completion_tokens": 2048}`), 2048, 'tail (openai-python)');
  assert.equal(scanned(`{"max_tokens":10,"messages":"${big}","max_completion_tokens":20}`), 20, 'the preferred key wins even from the tail');
  assert.equal(scanned(`{"max_output_tokens":0,"input":"${big}","max_output_tokens":30}`), 30, 'a 0 is no count: the next one is read');
  assert.equal(scanned(`{"max_tokens":99999999999999999999999,"messages":"${big}"}`), 2 ** 24, 'capped, as when parsed');
  for (const bad of ['1.5', '1e3', '-4', '"100"', 'null']) {
    assert.equal(scanned(`{"max_tokens":${bad},"messages":"${big}"}`), null, bad);
  }
  assert.equal(scanned(`{"a":"${big}","max_tokens":64,"b":"${big}"}`), null, 'in the middle of a big body: not read (bounded cost)');
  assert.equal(scanned(`{"tools":[{"type":"function","function":{"parameters":{"properties":{"max_tokens":{"type":"integer"}}}}}],"messages":"${big}"}`), null, 'a schema property named max_tokens holds no count');
});

test('maxTokens: no value from multipart bodies or non-JSON types', () => {
  const ct = 'multipart/form-data; boundary=zz';
  assert.equal(requestFacts(multipart('zz', [['model', 'whisper-1'], ['max_tokens', '100']]), ct).maxTokens, null);
  assert.equal(requestFacts(json({ model: 'm', max_tokens: 5 }), 'text/plain').maxTokens, null);
});
