// Checks the fake OpenAI upstream used by the demo, the e2e tests and the benchmark,
// talking to it directly with node:http / node:http2 / its own WebSocket client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { startFakeUpstream, wsConnect } from '../../scripts/fake-upstream.mjs';

const SCRIPT = fileURLToPath(new URL('../../scripts/fake-upstream.mjs', import.meta.url));
const sha256 = (/** @type {Buffer} */ b) => createHash('sha256').update(b).digest('hex');

/**
 * One HTTP/1.1 request on a fresh connection.
 * @param {string} url
 * @param {{method?: string, headers?: Record<string,string>, body?: string|Buffer}} [opts]
 * @returns {Promise<{status: number, headers: http.IncomingHttpHeaders, body: Buffer}>}
 */
function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** @param {string} url @param {object} value @param {Record<string,string>} [headers] */
const postJson = (url, value, headers = {}) =>
  request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) });

/** @param {Buffer} body */
const sseData = (body) =>
  body
    .toString('utf8')
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));

/**
 * One HTTP/2 request on an existing session.
 * @param {http2.ClientHttp2Session} session
 * @param {Record<string,string>} headers
 * @param {string|Buffer} [body]
 */
function h2Request(session, headers, body) {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    const chunks = [];
    let responseHeaders = {};
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => resolve({ status: responseHeaders[':status'], headers: responseHeaders, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    stream.end(body);
  });
}

/** A multipart body with a file whose bytes include every value and CRLF/-- sequences. */
function multipartBody(boundary, fields, file) {
  const parts = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${file.name}"\r\ncontent-type: application/octet-stream\r\n\r\n`),
    file.content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return Buffer.concat(parts);
}

test('h1: models list, model lookup and unknown model 404 shape', async (t) => {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  assert.match(fake.url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const list = await request(`${fake.url}/v1/models`);
  assert.equal(list.status, 200);
  assert.equal(list.headers['content-type'], 'application/json');
  const ids = JSON.parse(list.body.toString()).data.map((/** @type {any} */ m) => m.id);
  assert.deepEqual(ids, ['fake-model', 'fake-model-2', 'fake-embed', 'fake-tts', 'fake-whisper']);

  const one = await request(`${fake.url}/v1/models/fake-model-2`);
  assert.deepEqual(JSON.parse(one.body.toString()), { id: 'fake-model-2', object: 'model', created: 1700000000, owned_by: 'fake' });

  const missing = await postJson(`${fake.url}/v1/chat/completions`, { model: 'gpt-4', messages: [] });
  assert.equal(missing.status, 404);
  const { error } = JSON.parse(missing.body.toString());
  assert.equal(error.type, 'invalid_request_error');
  assert.equal(error.code, 'model_not_found');
  assert.equal(error.param, null);
  assert.match(error.message, /The model 'gpt-4' does not exist/);

  const unknownUrl = await request(`${fake.url}/v1/nope`);
  assert.equal(unknownUrl.status, 404);
  assert.equal(JSON.parse(unknownUrl.body.toString()).error.message, 'Invalid URL (GET /v1/nope)');

  const badJson = await request(`${fake.url}/v1/chat/completions`, { method: 'POST', body: '{nope' });
  assert.equal(badJson.status, 400);
  assert.equal(JSON.parse(badJson.body.toString()).error.type, 'invalid_request_error');
});

test('h1: chat stream of N chunks with usage, then [DONE]; non-stream usage', async (t) => {
  const fake = await startFakeUpstream({ chunkDelayMs: 1 });
  t.after(() => fake.close());
  const messages = [{ role: 'user', content: 'one two three' }, { role: 'user', content: [{ type: 'text', text: 'four five' }] }];

  const res = await postJson(
    `${fake.url}/v1/chat/completions`,
    { model: 'fake-model', stream: true, stream_options: { include_usage: true }, messages },
    { 'x-fake-chunks': '4' },
  );
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream');
  assert.equal(res.headers['cache-control'], 'no-cache');
  const events = sseData(res.body);
  assert.equal(events.length, 6);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.deepEqual(chunks.slice(0, 4).map((c) => c.choices[0].delta.content), ['tok0 ', 'tok1 ', 'tok2 ', 'tok3 ']);
  assert.equal(chunks[3].choices[0].finish_reason, 'stop');
  assert.ok(chunks.slice(0, 4).every((c) => c.usage === null && c.object === 'chat.completion.chunk'));
  assert.deepEqual(chunks[4].choices, []);
  assert.deepEqual(chunks[4].usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });

  const plain = await postJson(`${fake.url}/v1/chat/completions`, { model: 'fake-model', messages }, { 'x-fake-chunks': '3' });
  const completion = JSON.parse(plain.body.toString());
  assert.equal(completion.object, 'chat.completion');
  assert.match(completion.id, /^chatcmpl-\d+$/);
  assert.equal(completion.choices[0].message.content, 'tok0 tok1 tok2 ');
  assert.deepEqual(completion.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });

  assert.equal(fake.stats.attempts, 2);
  assert.equal(fake.stats.attemptsByPath['/v1/chat/completions'], 2);
  assert.equal(fake.stats.completed, 2);
  assert.equal(fake.stats.lastRequest?.method, 'POST');
  assert.equal(fake.stats.lastRequest?.bodySha256, sha256(Buffer.from(JSON.stringify({ model: 'fake-model', messages }))));
});

test('h1: x-fake-tokens-per-second paces a stream on a schedule; x-fake-stamp: 1 stamps each token with its write time', async (t) => {
  // a chunk delay of 1 s: a stream that ignored the rate would take 40 s, one paced at 400/s
  // takes 0.1 s, so however loaded the machine, the bound of 20 s tells them apart
  const fake = await startFakeUpstream({ chunkDelayMs: 1000 });
  t.after(() => fake.close());
  const fast = await startFakeUpstream({ chunkDelayMs: 50 });
  t.after(() => fast.close());
  const chat = { model: 'fake-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] };

  const sent = performance.timeOrigin + performance.now();
  const res = await postJson(`${fake.url}/v1/chat/completions`, chat, { 'x-fake-chunks': '40', 'x-fake-tokens-per-second': '400', 'x-fake-stamp': '1' });
  const took = performance.timeOrigin + performance.now() - sent;
  const events = sseData(res.body);
  assert.equal(events.length, 42);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, 40).map((e) => JSON.parse(e));
  assert.deepEqual(chunks.map((c) => c.choices[0].delta.content), Array.from({ length: 40 }, (_, i) => `tok${i} `));
  assert.equal(chunks[39].choices[0].finish_reason, 'stop');
  const ts = chunks.map((c) => c.ts);
  assert.ok(ts.every((v, i) => typeof v === 'number' && v >= sent - 1 && (i === 0 || v >= ts[i - 1])), `stamps in write order: ${ts}`);
  // 40 tokens at 400/s on a schedule from the stream's start: the last is due 97.5 ms after it,
  // never sooner (1 ms for a timer's rounding). Not first-to-last: a late first token is
  // followed by the rest catching up with the schedule, which is what the schedule is for
  assert.ok(ts[39] - sent >= 39 * 2.5 - 1, `request to last token ${ts[39] - sent} ms`);
  assert.ok(took < 20_000, `the rate, not the 1 s chunk delay, paced it: ${took} ms`);
  assert.equal(JSON.parse(events[40]).ts, undefined, 'the usage chunk is not a paced token');

  const plain = sseData((await postJson(`${fast.url}/v1/chat/completions`, chat, { 'x-fake-chunks': '2', 'x-fake-tokens-per-second': '1000' })).body);
  assert.ok(plain.slice(0, 2).every((e) => !('ts' in JSON.parse(e))), 'no stamp unless asked');

  const t0 = performance.now();
  await postJson(`${fast.url}/v1/chat/completions`, chat, { 'x-fake-chunks': '2', 'x-fake-tokens-per-second': '0' });
  assert.ok(performance.now() - t0 >= 2 * 50 - 2, 'a rate that is not > 0 leaves the chunk delay in charge');
});

test('h1: a chat request with tools gets a tool call, whole and streamed as vLLM streams it', async (t) => {
  const fake = await startFakeUpstream({ chunkDelayMs: 1 });
  t.after(() => fake.close());
  const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer' }, hourly: { type: 'boolean' }, tags: { type: 'array', items: { type: 'string' } }, at: { anyOf: [{ type: 'number' }, { type: 'null' }] }, where: { type: 'object', properties: { lat: { type: 'number' } } } }, required: ['city'] } } };
  const time = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { const: 'UTC' } } } } };
  const messages = [{ role: 'user', content: 'weather in Paris' }];
  const args = { city: 'fake', unit: 'celsius', days: 1, hourly: true, tags: [], at: 1, where: { lat: 1 } };

  const whole = JSON.parse((await postJson(`${fake.url}/v1/chat/completions`, { model: 'fake-model', tools: [weather, time], messages })).body.toString());
  const choice = whole.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  const call = choice.message.tool_calls[0];
  assert.match(call.id, /^chatcmpl-tool-\d+$/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather', 'the first tool when none is named');
  assert.deepEqual(JSON.parse(call.function.arguments), args, 'arguments fit the schema');

  const named = JSON.parse((await postJson(`${fake.url}/v1/chat/completions`, { model: 'fake-model', tools: [weather, time], tool_choice: { type: 'function', function: { name: 'get_time' } }, messages })).body.toString());
  assert.equal(named.choices[0].message.tool_calls[0].function.name, 'get_time');
  assert.deepEqual(JSON.parse(named.choices[0].message.tool_calls[0].function.arguments), { zone: 'UTC' });

  const none = JSON.parse((await postJson(`${fake.url}/v1/chat/completions`, { model: 'fake-model', tools: [weather], tool_choice: 'none', messages }, { 'x-fake-chunks': '2' })).body.toString());
  assert.equal(none.choices[0].message.content, 'tok0 tok1 ');
  assert.equal(none.choices[0].finish_reason, 'stop');

  const res = await postJson(`${fake.url}/v1/chat/completions`, { model: 'fake-model', stream: true, stream_options: { include_usage: true }, tools: [weather], tool_choice: 'auto', messages }, { 'x-fake-chunks': '4' });
  const events = sseData(res.body);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const deltas = chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0]);
  assert.deepEqual(deltas[0].delta, { role: 'assistant', content: '' });
  const opened = deltas[1].delta.tool_calls[0];
  assert.deepEqual({ ...opened, id: 'X' }, { index: 0, id: 'X', type: 'function', function: { name: 'get_weather', arguments: '' } });
  const fragments = deltas.slice(2, -1).map((d) => d.delta.tool_calls[0]);
  assert.equal(fragments.length, 4, 'one fragment per chunk');
  assert.ok(fragments.every((f) => f.index === 0 && !('id' in f) && !('name' in f.function)));
  assert.deepEqual(JSON.parse(fragments.map((f) => f.function.arguments).join('')), args);
  assert.deepEqual(deltas.at(-1), { index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' });
  assert.ok(deltas.slice(0, -1).every((d) => d.finish_reason === null));
  assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
});

test('h1: a responses stream follows OpenAI\'s event order, numbered from 0, and ends in response.completed', async (t) => {
  const fake = await startFakeUpstream({ chunkDelayMs: 1 });
  t.after(() => fake.close());
  const res = await postJson(`${fake.url}/v1/responses`, { model: 'fake-model', input: 'one two', stream: true }, { 'x-fake-chunks': '2' });
  const events = res.body.toString().split('\n\n').filter(Boolean).map((e) => {
    const [name, data] = e.split('\n');
    return { name: name.slice('event: '.length), data: JSON.parse(data.slice('data: '.length)) };
  });
  assert.deepEqual(events.map((e) => e.name), [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
  ]);
  assert.ok(events.every((e, i) => e.data.type === e.name && e.data.sequence_number === i));
  assert.equal(events[2].data.item.status, 'in_progress');
  assert.equal(events[8].data.item.content[0].text, 'tok0 tok1 ');
  assert.deepEqual(events.at(-1).data.response.usage, { input_tokens: 2, output_tokens: 2, total_tokens: 4 });
});

test('h1: multipart file upload then byte-exact download; transcription hashes', async (t) => {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  const content = Buffer.concat([
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from('\r\n--not-the-boundary\r\n\r\n'),
    Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)),
  ]);
  const boundary = '----fake-test-boundary-7MA4YWxk';
  const body = multipartBody(boundary, { purpose: 'batch' }, { name: 'data.bin', content });
  const headers = { 'content-type': `multipart/form-data; boundary=${boundary}` };

  const up = await request(`${fake.url}/v1/files`, { method: 'POST', headers, body });
  assert.equal(up.status, 200);
  const meta = JSON.parse(up.body.toString());
  assert.equal(meta.object, 'file');
  assert.equal(meta.bytes, content.length);
  assert.equal(meta.filename, 'data.bin');
  assert.equal(meta.purpose, 'batch');
  assert.equal(meta.sha256, sha256(content));

  const down = await request(`${fake.url}/v1/files/${meta.id}/content`);
  assert.equal(down.status, 200);
  assert.equal(down.headers['content-type'], 'application/octet-stream');
  assert.equal(Number(down.headers['content-length']), content.length);
  assert.ok(down.body.equals(content));
  assert.deepEqual(JSON.parse((await request(`${fake.url}/v1/files/${meta.id}`)).body.toString()), meta);
  assert.equal((await request(`${fake.url}/v1/files/file-404/content`)).status, 404);

  const transcript = await request(`${fake.url}/v1/audio/transcriptions`, {
    method: 'POST',
    headers,
    body: multipartBody(boundary, { model: 'fake-whisper' }, { name: 'a.mp3', content }),
  });
  const t1 = JSON.parse(transcript.body.toString());
  assert.equal(t1.text, 'fake transcript');
  assert.equal(t1.sha256, sha256(content));
  assert.equal(t1.bytes, content.length);
  assert.equal(t1.body_sha256, fake.stats.lastRequest?.bodySha256);
});

test('h1: speech bytes and base64 embeddings are deterministic', async (t) => {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  const speech = await postJson(`${fake.url}/v1/audio/speech`, { model: 'fake-tts', input: 'hello', voice: 'alloy' });
  assert.equal(speech.headers['content-type'], 'audio/mpeg');
  assert.equal(speech.body.length, 1024);
  assert.equal(new Set(speech.body).size, 256);

  const floats = JSON.parse((await postJson(`${fake.url}/v1/embeddings`, { model: 'fake-embed', input: ['a b', 'c'] })).body.toString());
  assert.equal(floats.data.length, 2);
  assert.equal(floats.data[0].embedding.length, 8);
  assert.deepEqual(floats.usage, { prompt_tokens: 3, total_tokens: 3 });
  const b64 = JSON.parse(
    (await postJson(`${fake.url}/v1/embeddings`, { model: 'fake-embed', input: 'a b', encoding_format: 'base64' })).body.toString(),
  );
  const bytes = Buffer.from(b64.data[0].embedding, 'base64');
  const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
  assert.deepEqual(decoded, floats.data[0].embedding);
});

test('h1: faults (status with retry-after, close, reset) and the HTTP control API', async (t) => {
  const fake = await startFakeUpstream({ chunkDelayMs: 1 });
  t.after(() => fake.close());
  const chat = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }], stream: true };

  fake.fault({ path: '/v1/chat/completions', action: 'status', status: 503, retryAfter: 2, times: 2 });
  assert.equal((await request(`${fake.url}/v1/models`)).status, 200); // other path: not consumed
  for (let i = 0; i < 2; i++) {
    const res = await postJson(`${fake.url}/v1/chat/completions`, chat);
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '2');
    assert.equal(JSON.parse(res.body.toString()).error.type, 'server_error');
  }
  assert.equal((await postJson(`${fake.url}/v1/chat/completions`, chat)).status, 200);

  fake.fault({ action: 'close' });
  await assert.rejects(request(`${fake.url}/v1/models`), { code: 'ECONNRESET' });

  // Over HTTP: a reset after 2 chunks cuts the stream without [DONE].
  const queued = await request(`${fake.url}/_fake/fault`, { method: 'POST', body: JSON.stringify({ action: 'reset', afterChunks: 2 }) });
  assert.equal(queued.status, 204);
  const received = await new Promise((resolve) => {
    const req = http.request(`${fake.url}/v1/chat/completions`, { method: 'POST', agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('error', () => resolve(text));
      res.on('end', () => resolve(text));
    });
    req.on('error', () => resolve(''));
    req.end(JSON.stringify(chat));
  });
  assert.equal(sseData(Buffer.from(/** @type {string} */ (received))).length, 2);

  const bad = await request(`${fake.url}/_fake/fault`, { method: 'POST', body: '{"action":"explode"}' });
  assert.equal(bad.status, 400);

  const stats = JSON.parse((await request(`${fake.url}/_fake/stats`)).body.toString());
  assert.equal(stats.attempts, 6); // control requests are not counted
  assert.equal(stats.attemptsByPath['/v1/chat/completions'], 4);
  assert.equal(stats.clientAborts, 0); // cuts made by faults are not client aborts
  assert.equal(stats.connections, 9);

  assert.equal((await request(`${fake.url}/_fake/reset`, { method: 'POST' })).status, 204);
  assert.equal(fake.stats.attempts, 0);
  assert.deepEqual(fake.stats.attemptsByPath, {});
});

test('h1: a client leaving mid-stream counts one clientAbort and stops the timers', async (t) => {
  const fake = await startFakeUpstream({ chunks: 50, chunkDelayMs: 5 });
  t.after(() => fake.close());
  await new Promise((resolve) => {
    const req = http.request(`${fake.url}/v1/completions`, { method: 'POST', agent: false }, (res) => {
      res.once('data', (chunk) => {
        assert.match(chunk.toString(), /"text":"tok0 "/);
        req.destroy();
        resolve(undefined);
      });
    });
    req.on('error', () => {});
    req.end(JSON.stringify({ model: 'fake-model', prompt: 'x', stream: true }));
  });
  const deadline = Date.now() + 1000;
  while (fake.stats.clientAborts === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(fake.stats.clientAborts, 1);
  assert.equal(fake.stats.completed, 0);
});

test('h1: echo shows method, raw query and repeated headers', async (t) => {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  const res = await new Promise((resolve, reject) => {
    const req = http.request(`${fake.url}/v1/echo/x/y?a=1&b=%20`, { method: 'PUT', agent: false }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
    req.on('error', reject);
    req.setHeader('x-dup', ['one', 'two']);
    req.end('body!');
  });
  assert.equal(res.method, 'PUT');
  assert.equal(res.path, '/v1/echo/x/y');
  assert.equal(res.query, 'a=1&b=%20');
  assert.equal(res.headers['x-dup'], 'one, two');
  assert.equal(res.body_bytes, 5);
  assert.equal(res.body_sha256, sha256(Buffer.from('body!')));
});

test('h1: websocket echo (7/16/64-bit lengths, fragments, ping, close)', async (t) => {
  const fake = await startFakeUpstream();
  t.after(() => fake.close());
  const ws = await wsConnect(`${fake.url.replace('http', 'ws')}/v1/realtime?model=fake-model`);
  assert.equal(ws.response.status, 101);

  ws.send('hello');
  assert.deepEqual(await ws.next(), { opcode: 1, data: Buffer.from('hello') });
  for (const size of [300, 70_000]) {
    const payload = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7) & 255));
    ws.send(payload);
    const msg = await ws.next();
    assert.equal(msg.opcode, 2);
    assert.ok(msg.data.equals(payload));
  }
  ws.sendFrame(1, 'frag-', { fin: false });
  ws.sendFrame(0, 'ment', { fin: true });
  assert.equal((await ws.next()).data.toString(), 'frag-ment');
  assert.equal((await ws.ping('p')).toString(), 'p');
  await ws.close();
  assert.equal(fake.stats.wsConnections, 1);
  assert.equal(fake.stats.attemptsByPath['/v1/realtime'], 1);

  await assert.rejects(wsConnect(`${fake.url}/v1/other`), (/** @type {any} */ err) => err.response.status === 404);
});

test('h2c: models, stream, echo without pseudo-headers, session stats, client abort', async (t) => {
  const fake = await startFakeUpstream({ h2c: true, chunkDelayMs: 1 });
  t.after(() => fake.close());
  assert.equal(fake.h2c, true);
  const session = http2.connect(fake.url);
  t.after(() => session.destroy());

  const models = await h2Request(session, { ':path': '/v1/models' });
  assert.equal(models.status, 200);
  assert.equal(JSON.parse(models.body.toString()).data.length, 5);

  const body = JSON.stringify({ model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'a' }] });
  const stream = await h2Request(session, { ':method': 'POST', ':path': '/v1/chat/completions', 'x-fake-chunks': '3' }, body);
  assert.equal(stream.headers['content-type'], 'text/event-stream');
  const events = sseData(stream.body);
  assert.equal(events.length, 4);
  assert.equal(events.at(-1), '[DONE]');

  const echo = await h2Request(session, { ':method': 'POST', ':path': '/v1/echo/h2?q=1', 'x-test': 'yes' }, 'abc');
  const echoed = JSON.parse(echo.body.toString());
  assert.equal(echoed.query, 'q=1');
  assert.equal(echoed.headers['x-test'], 'yes');
  assert.ok(Object.keys(echoed.headers).every((k) => !k.startsWith(':')));
  assert.equal(echoed.body_bytes, 3);

  fake.fault({ action: 'status', status: 429, retryAfter: 1 });
  const limited = await h2Request(session, { ':path': '/v1/models' });
  assert.equal(limited.status, 429);
  assert.equal(limited.headers['retry-after'], '1');

  // A stream the client cancels mid-way counts as one client abort.
  const cancelled = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'x-fake-chunks': '100' });
  cancelled.end(body);
  await once(cancelled, 'data');
  cancelled.close(http2.constants.NGHTTP2_CANCEL);
  const deadline = Date.now() + 1000;
  while (fake.stats.clientAborts === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));

  assert.equal(fake.stats.clientAborts, 1);
  assert.equal(fake.stats.h2Sessions, 1);
  assert.equal(fake.stats.connections, 1);
  assert.equal(fake.stats.attempts, 5);
  assert.equal(fake.stats.completed, 4);
});

test('h2c: a reset fault resets the stream after afterChunks chunks', async (t) => {
  const fake = await startFakeUpstream({ h2c: true, chunkDelayMs: 1 });
  t.after(() => fake.close());
  const session = http2.connect(fake.url);
  session.on('error', () => {});
  t.after(() => session.destroy());
  fake.fault({ path: '/v1/responses', action: 'reset', afterChunks: 1 });
  const stream = session.request({ ':method': 'POST', ':path': '/v1/responses' });
  stream.end(JSON.stringify({ model: 'fake-model', input: 'hi', stream: true }));
  let text = '';
  stream.on('data', (c) => (text += c));
  const [err] = await once(stream, 'error').catch((e) => [e]);
  assert.equal(err.code, 'ERR_HTTP2_STREAM_ERROR');
  assert.deepEqual(
    text.match(/^event: .*$/gm),
    ['event: response.created', 'event: response.in_progress', 'event: response.output_item.added', 'event: response.content_part.added', 'event: response.output_text.delta'],
  );
});

test('close() ends hung requests and open connections at once', async () => {
  const fake = await startFakeUpstream();
  fake.fault({ action: 'hang' });
  const pending = request(`${fake.url}/v1/models`).catch((e) => e);
  const deadline = Date.now() + 1000;
  while (fake.stats.attempts === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const started = Date.now();
  await fake.close();
  assert.ok(Date.now() - started < 500);
  assert.equal((await pending).code, 'ECONNRESET');
});

test('CLI prints one line, serves, and exits 0 on SIGTERM', async () => {
  const child = spawn(process.execPath, [SCRIPT, '--port', '0', '--chunks', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (s) => {
      out += s;
      const m = /^fake-upstream listening on (http:\/\/127\.0\.0\.1:\d+) \(http\/1\.1\)\n$/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
  });
  const res = await postJson(`${url}/v1/completions`, { model: 'fake-model', prompt: 'x' });
  assert.equal(JSON.parse(res.body.toString()).choices[0].text, 'tok0 tok1 ');
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
  assert.equal(out.split('\n').filter(Boolean).length, 1);
});

// --- a fleet of fakes (issue 13): names, model lists, /health, a replica that dies and comes back

test('a named fake stamps x-fake-upstream on every answer and system_fingerprint "fake-<name>" in bodies and chunks', async (t) => {
  const fake = await startFakeUpstream({ name: 'gpu-a', chunkDelayMs: 1 });
  const plain = await startFakeUpstream();
  t.after(() => Promise.all([fake.close(), plain.close()]));
  assert.equal(fake.name, 'gpu-a');
  assert.equal(plain.name, 'fake');

  const chat = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] };
  const whole = await postJson(`${fake.url}/v1/chat/completions`, chat);
  assert.equal(whole.headers['x-fake-upstream'], 'gpu-a');
  assert.equal(JSON.parse(whole.body.toString()).system_fingerprint, 'fake-gpu-a');

  const streamed = await postJson(`${fake.url}/v1/chat/completions`, { ...chat, stream: true, stream_options: { include_usage: true } }, { 'x-fake-chunks': '3' });
  assert.equal(streamed.headers['x-fake-upstream'], 'gpu-a');
  const chunks = sseData(streamed.body).slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks.length, 4); // 3 tokens and the usage chunk
  assert.ok(chunks.every((c) => c.system_fingerprint === 'fake-gpu-a'));

  const legacy = await postJson(`${fake.url}/v1/completions`, { model: 'fake-model', prompt: 'x', stream: true }, { 'x-fake-chunks': '2' });
  assert.ok(sseData(legacy.body).slice(0, -1).every((e) => JSON.parse(e).system_fingerprint === 'fake-gpu-a'));
  const embedded = await postJson(`${fake.url}/v1/embeddings`, { model: 'fake-embed', input: 'x' });
  assert.equal(JSON.parse(embedded.body.toString()).system_fingerprint, 'fake-gpu-a');
  assert.equal(JSON.parse((await postJson(`${plain.url}/v1/chat/completions`, chat)).body.toString()).system_fingerprint, 'fake-fake');

  // Errors, faults, 404s, /health, the control API and WebSocket handshakes say who answered too.
  fake.fault({ action: 'status', status: 503 });
  const answers = [
    await postJson(`${fake.url}/v1/chat/completions`, chat), // the fault
    await postJson(`${fake.url}/v1/chat/completions`, { model: 'gpt-4', messages: [] }),
    await request(`${fake.url}/nope`),
    await request(`${fake.url}/health`),
    await request(`${fake.url}/_fake/stats`),
    await request(`${fake.url}/_fake/reset`, { method: 'POST' }),
  ];
  assert.deepEqual(answers.map((a) => a.status), [503, 404, 404, 200, 200, 204]);
  for (const a of answers) assert.equal(a.headers['x-fake-upstream'], 'gpu-a');
  const ws = await wsConnect(`${fake.url.replace('http', 'ws')}/v1/realtime`);
  assert.equal(ws.response.headers['x-fake-upstream'], 'gpu-a');
  await ws.close();
  await assert.rejects(wsConnect(`${fake.url}/v1/other`), (/** @type {any} */ err) => err.response.headers['x-fake-upstream'] === 'gpu-a');
});

test('models: a fake given a list serves exactly those ids; without one, every fake* id as before', async (t) => {
  const fake = await startFakeUpstream({ name: 'qwen', models: ['qwen-7b', 'Qwen/Qwen2.5-72B'] });
  t.after(() => fake.close());
  assert.deepEqual(fake.models, ['qwen-7b', 'Qwen/Qwen2.5-72B']);

  const list = JSON.parse((await request(`${fake.url}/v1/models`)).body.toString());
  assert.deepEqual(list.data.map((/** @type {any} */ m) => m.id), ['qwen-7b', 'Qwen/Qwen2.5-72B']);
  assert.equal((await request(`${fake.url}/v1/models/Qwen%2FQwen2.5-72B`)).status, 200);
  assert.equal((await request(`${fake.url}/v1/models/fake-model`)).status, 404);

  const served = await postJson(`${fake.url}/v1/chat/completions`, { model: 'qwen-7b', messages: [] });
  assert.equal(served.status, 200);
  assert.equal(JSON.parse(served.body.toString()).model, 'qwen-7b');
  for (const model of ['fake-model', 'llama-3']) {
    const other = await postJson(`${fake.url}/v1/chat/completions`, { model, messages: [] });
    assert.equal(other.status, 404);
    assert.equal(JSON.parse(other.body.toString()).error.code, 'model_not_found');
  }
  assert.equal((await postJson(`${fake.url}/v1/embeddings`, { model: 'llama-3', input: 'x' })).status, 404);
  assert.equal((await postJson(`${fake.url}/v1/embeddings`, { model: 'qwen-7b', input: 'x' })).status, 200);

  // Discovery is visible: GET /v1/models calls are counted (they are /v1/ attempts too).
  assert.equal(fake.stats.modelListings, 1);
  assert.equal(fake.stats.attemptsByPath['/v1/models'], 1);
  await request(`${fake.url}/v1/models`);
  assert.equal(fake.stats.modelListings, 2);
  fake.resetStats();
  assert.equal(fake.stats.modelListings, 0);

  const none = await startFakeUpstream({ models: [] });
  t.after(() => none.close());
  assert.deepEqual(JSON.parse((await request(`${none.url}/v1/models`)).body.toString()).data, []);

  await assert.rejects(startFakeUpstream({ models: ['a', 'a'] }), /duplicate model id/);
  await assert.rejects(startFakeUpstream({ models: /** @type {any} */ ('a,b') }), /models must be an array/);
  await assert.rejects(startFakeUpstream({ models: [''] }), /invalid model id/);
  await assert.rejects(startFakeUpstream({ name: 'a b' }), /invalid name/);
  await assert.rejects(startFakeUpstream({ name: '' }), /invalid name/);
});

test('GET /health: 200 {"status":"ok"}, counted apart from /v1/ attempts, untouched by faults; 503 while "loading"', async (t) => {
  const fake = await startFakeUpstream({ name: 'llama' });
  t.after(() => fake.close());
  const ok = await request(`${fake.url}/health`);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(ok.body.toString()), { status: 'ok' });

  fake.fault({ action: 'close' }); // a fault is for /v1/ only: the probe does not take it
  assert.equal((await request(`${fake.url}/health`, { method: 'HEAD' })).status, 200);
  assert.equal((await request(`${fake.url}/health`, { method: 'POST' })).status, 404);
  assert.equal(fake.stats.healthChecks, 2);
  assert.equal(fake.stats.attempts, 0);
  fake.clearFaults();

  fake.setHealth(503); // llama.cpp while it loads a model
  const loading = await request(`${fake.url}/health`);
  assert.equal(loading.status, 503);
  assert.deepEqual(JSON.parse(loading.body.toString()), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
  assert.equal((await postJson(`${fake.url}/v1/chat/completions`, { model: 'fake-model', messages: [] })).status, 200, 'only /health changes');
  fake.setHealth(500, 'engine dead');
  assert.equal(JSON.parse((await request(`${fake.url}/health`)).body.toString()).error.message, 'engine dead');
  fake.setHealth(200);
  assert.equal((await request(`${fake.url}/health`)).status, 200);
  assert.throws(() => fake.setHealth(99), TypeError);
  assert.throws(() => fake.setHealth(/** @type {any} */ ('503')), TypeError);

  // The same over HTTP, for a fake started from the CLI; /_fake/reset makes it healthy again.
  const set = (/** @type {string} */ body) => request(`${fake.url}/_fake/health`, { method: 'POST', body });
  assert.equal((await set('{"status":503}')).status, 204);
  assert.equal((await request(`${fake.url}/health`)).status, 503);
  assert.equal((await set('{"status":"down"}')).status, 400);
  assert.equal((await set('{"status":503,"message":7}')).status, 400);
  assert.equal((await set('not json')).status, 400);
  assert.equal((await request(`${fake.url}/health`)).status, 503, 'a refused change keeps the status');
  const stats = JSON.parse((await request(`${fake.url}/_fake/stats`)).body.toString());
  assert.equal(stats.healthChecks, 7);
  assert.equal(stats.attempts, 1);
  assert.equal((await request(`${fake.url}/_fake/reset`, { method: 'POST' })).status, 204);
  assert.equal((await request(`${fake.url}/health`)).status, 200);
  assert.equal(fake.stats.healthChecks, 1);
});

test('h2c: /health and the x-fake-upstream header', async (t) => {
  const fake = await startFakeUpstream({ h2c: true, name: 'h2-b' });
  t.after(() => fake.close());
  const session = http2.connect(fake.url);
  t.after(() => session.destroy());
  fake.setHealth(503);
  const health = await h2Request(session, { ':path': '/health' });
  assert.equal(health.status, 503);
  assert.equal(health.headers['x-fake-upstream'], 'h2-b');
  const models = await h2Request(session, { ':path': '/v1/models' });
  assert.equal(models.headers['x-fake-upstream'], 'h2-b');
  assert.equal(fake.stats.healthChecks, 1);
  assert.equal(fake.stats.modelListings, 1);
});

test('a replica that dies refuses connections; a new fake on the same port is the replica coming back', async () => {
  const first = await startFakeUpstream({ name: 'replica-1' });
  assert.equal((await request(`${first.url}/health`)).headers['x-fake-upstream'], 'replica-1');
  await first.close();
  await assert.rejects(request(`${first.url}/health`), { code: 'ECONNREFUSED' });

  const again = await startFakeUpstream({ port: first.port, name: first.name });
  try {
    assert.equal(again.url, first.url);
    const res = await request(`${again.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-fake-upstream'], 'replica-1');
    assert.equal(again.stats.healthChecks, 1, 'a fresh state, as after a restart');
  } finally {
    await again.close();
  }
});

test('CLI: --name and --models', async () => {
  const child = spawn(process.execPath, [SCRIPT, '--name', 'cli-a', '--models=m1,m2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    child.stdout.setEncoding('utf8');
    const url = await new Promise((resolve, reject) => {
      child.stdout.on('data', (s) => {
        out += s;
        const m = /^fake-upstream listening on (\S+) /.exec(out);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    const list = await request(`${url}/v1/models`);
    assert.equal(list.headers['x-fake-upstream'], 'cli-a');
    assert.deepEqual(JSON.parse(list.body.toString()).data.map((/** @type {any} */ m) => m.id), ['m1', 'm2']);
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  const bad = spawn(process.execPath, [SCRIPT, '--models', 'a,a'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  bad.stderr.setEncoding('utf8').on('data', (s) => (err += s));
  const [code] = await once(bad, 'exit');
  assert.equal(code, 2);
  assert.match(err, /duplicate model id/);
  assert.match(err, /--models a,b,c/);
});
