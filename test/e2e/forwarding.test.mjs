// The forwarding core, end to end: the compiled proxy in front of the fake LLM on
// 127.0.0.1, over HTTP/1.1 and over h2c, with the request shapes the OpenAI SDKs send.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { startFakeUpstream, wsConnect } from '../../scripts/fake-upstream.mjs';
import { startProxy, request, json, sseEvents, multipart, waitFor, direct } from './helpers.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
/** Raw bytes with the per-call values (ids, timestamps) blanked, for byte comparison. */
const normalise = (buf) => buf.toString('latin1').replace(/"id":"[a-z]+-?[A-Za-z0-9_]*"/g, '"id":"X"').replace(/"(created|created_at)":\d+/g, '"$1":0').replace(/"(response_id|item_id)":"[^"]*"/g, '"$1":"X"');

for (const protocol of ['http/1.1', 'h2c']) {
  describe(`forwarding over ${protocol}`, () => {
    let fake;
    let proxy;
    before(async () => {
      fake = await startFakeUpstream({ h2c: protocol === 'h2c', chunks: 5, chunkDelayMs: 2 });
      proxy = await startProxy({ UPSTREAM_URL: fake.url, UPSTREAM_HTTP2: String(protocol === 'h2c'), RATE_LIMIT_ENABLED: 'false' });
    });
    after(async () => {
      await proxy?.stop();
      await fake?.close();
    });

    test('GET /v1/models passes the upstream answer through unchanged', async () => {
      const ref = await direct(fake, '/v1/models');
      const via = await request(`${proxy.url}/v1/models`);
      assert.equal(via.status, 200);
      assert.equal(via.headers['content-type'], 'application/json');
      assert.deepEqual(via.body, ref.body);
      assert.match(via.headers['x-request-id'], /^req_/);
    });

    test('a plain chat completion arrives byte for byte', async () => {
      const payload = { model: 'fake-model', messages: [{ role: 'user', content: 'say something nice' }] };
      const ref = await direct(fake, '/v1/chat/completions', payload);
      const via = await json(`${proxy.url}/v1/chat/completions`, payload);
      assert.equal(via.status, 200);
      assert.equal(normalise(via.body), normalise(ref.body));
      assert.equal(JSON.parse(via.body).usage.prompt_tokens, 3);
    });

    test('a streamed chat completion arrives event by event, ending in [DONE]', async () => {
      const payload = { model: 'fake-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] };
      const ref = await direct(fake, '/v1/chat/completions', payload);
      const via = await json(`${proxy.url}/v1/chat/completions`, payload);
      assert.equal(via.status, 200);
      assert.match(via.headers['content-type'], /^text\/event-stream/);
      assert.equal(via.headers['content-length'], undefined);
      assert.equal(normalise(via.body), normalise(ref.body));
      const events = sseEvents(via.body);
      assert.equal(events.at(-1).data, '[DONE]');
      const content = events.slice(0, -2).map((e) => JSON.parse(e.data).choices[0].delta.content).join('');
      assert.equal(content, 'tok0 tok1 tok2 tok3 tok4 ');
      assert.equal(JSON.parse(events.at(-2).data).usage.completion_tokens, 5);
    });

    test('each SSE event reaches the client before the upstream writes the next', async () => {
      // The upstream waits 400 ms between events: the first must be in our hands long
      // before the stream can end, i.e. nothing holds it in a buffer.
      fake.fault({ action: 'slow', delayMs: 400 });
      const body = JSON.stringify({ model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'hi' }] });
      const first = await new Promise((resolve, reject) => {
        const req = http.request(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-fake-chunks': '3' } }, (res) => {
          res.once('data', (chunk) => {
            resolve({ chunk, ended: res.readableEnded });
            req.destroy();
          });
        });
        req.on('error', () => {});
        req.end(body);
        setTimeout(() => reject(new Error('no first event')), 5000).unref();
      });
      assert.equal(first.ended, false);
      assert.match(first.chunk.toString(), /^data: \{.*"tok0 "/);
    });

    test('legacy completions stream and the responses API stream pass through', async () => {
      const comp = await json(`${proxy.url}/v1/completions`, { model: 'fake-model', prompt: 'once upon', stream: true });
      assert.equal(comp.status, 200);
      assert.equal(sseEvents(comp.body).at(-1).data, '[DONE]');
      const payload = { model: 'fake-model', input: 'hello', stream: true };
      const ref = await direct(fake, '/v1/responses', payload);
      const via = await json(`${proxy.url}/v1/responses`, payload);
      assert.equal(normalise(via.body), normalise(ref.body));
      const events = sseEvents(via.body);
      assert.equal(events[0].event, 'response.created');
      assert.equal(events.at(-1).event, 'response.completed');
    });

    test('embeddings, float and base64, are byte-exact', async () => {
      for (const encoding_format of ['float', 'base64']) {
        const payload = { model: 'fake-embed', input: ['alpha', 'beta'], encoding_format };
        const ref = await direct(fake, '/v1/embeddings', payload);
        const via = await json(`${proxy.url}/v1/embeddings`, payload);
        assert.equal(via.status, 200);
        assert.equal(normalise(via.body), normalise(ref.body));
      }
    });

    test('audio speech (binary) and transcription (multipart) are byte-exact', async () => {
      const speech = await json(`${proxy.url}/v1/audio/speech`, { model: 'fake-tts', input: 'hello world, this is a test', voice: 'alloy' });
      const directSpeech = await direct(fake, '/v1/audio/speech', { model: 'fake-tts', input: 'hello world, this is a test', voice: 'alloy' });
      assert.equal(speech.status, 200);
      assert.equal(speech.headers['content-type'], 'audio/mpeg');
      assert.equal(sha256(speech.body), sha256(directSpeech.body));
      const audio = randomBytes(200_000);
      const form = multipart({ model: 'fake-whisper' }, { name: 'a.wav', data: audio });
      const tr = await request(`${proxy.url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': form.contentType }, body: form.body });
      assert.equal(tr.status, 200);
      const answer = JSON.parse(tr.body);
      assert.equal(answer.sha256, sha256(audio));
      assert.equal(answer.body_sha256, sha256(form.body));
    });

    test('a file uploads and downloads byte-exact', async () => {
      const data = randomBytes(300_000);
      const form = multipart({ purpose: 'batch' }, { name: 'data.jsonl', data });
      const up = await request(`${proxy.url}/v1/files`, { method: 'POST', headers: { 'content-type': form.contentType }, body: form.body });
      assert.equal(up.status, 200);
      const file = JSON.parse(up.body);
      assert.equal(file.bytes, data.length);
      const down = await request(`${proxy.url}/v1/files/${file.id}/content`);
      assert.equal(down.status, 200);
      assert.equal(sha256(down.body), sha256(data));
    });

    test('upstream errors reach the client unchanged', async () => {
      const ref = await direct(fake, '/v1/chat/completions', { model: 'gpt-nope', messages: [] });
      const via = await json(`${proxy.url}/v1/chat/completions`, { model: 'gpt-nope', messages: [] });
      assert.equal(via.status, 404);
      assert.deepEqual(via.body, ref.body);
      assert.equal(JSON.parse(via.body).error.code, 'model_not_found');
    });

    test('invalid JSON is forwarded, and the upstream answers it', async () => {
      const before = fake.stats.attempts;
      const via = await request(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": nope' });
      assert.equal(via.status, 400);
      assert.equal(fake.stats.attempts, before + 1);
      assert.equal(JSON.parse(via.body).error.type, 'invalid_request_error');
    });

    test('headers: hop-by-hop dropped, forwarded headers set, query and request id kept', async () => {
      const via = await request(`${proxy.url}/v1/echo/thing?a=1&b=two%20words`, {
        method: 'PATCH',
        headers: {
          connection: 'keep-alive, x-secret-hop',
          'x-secret-hop': 'must not pass',
          'keep-alive': 'timeout=5',
          'proxy-authorization': 'Basic abc',
          'x-forwarded-for': '203.0.113.9',
          'x-request-id': 'client-chosen-id-42',
          'openai-beta': 'assistants=v2',
          authorization: 'Bearer sk-test',
          'content-type': 'text/plain',
        },
        body: 'hello',
      });
      assert.equal(via.status, 200);
      assert.equal(via.headers['x-request-id'], 'client-chosen-id-42');
      const seen = JSON.parse(via.body);
      assert.equal(seen.method, 'PATCH');
      assert.equal(seen.path, '/v1/echo/thing');
      assert.equal(seen.query, 'a=1&b=two%20words');
      for (const gone of ['x-secret-hop', 'keep-alive', 'proxy-authorization', 'upgrade', 'te']) assert.equal(seen.headers[gone], undefined, gone);
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'an untrusted client cannot choose its forwarded address');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x-request-id'], 'client-chosen-id-42');
      assert.equal(seen.headers['openai-beta'], 'assistants=v2');
      assert.equal(seen.headers.authorization, 'Bearer sk-test');
      assert.equal(seen.body_sha256, sha256(Buffer.from('hello')));
      if (protocol === 'http/1.1') assert.equal(seen.headers.host, new URL(fake.url).host);
    });

    test('a request without an id gets a fresh one, sent upstream and returned', async () => {
      const via = await request(`${proxy.url}/v1/echo/id`);
      const id = via.headers['x-request-id'];
      assert.match(id, /^req_[0-9a-f]{32}$/);
      assert.equal(JSON.parse(via.body).headers['x-request-id'], id);
    });

    test('a stream the upstream breaks ends with one error event, no [DONE], then a cut connection', async () => {
      fake.fault({ path: '/v1/chat/completions', action: 'reset', afterChunks: 3 });
      const before = fake.stats.attempts;
      const via = await json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-fake-chunks': '10' } });
      assert.equal(via.status, 200);
      const events = sseEvents(via.body);
      assert.equal(events.length, 4);
      assert.deepEqual(events.slice(0, 3).map((e) => JSON.parse(e.data).choices[0].delta.content), ['tok0 ', 'tok1 ', 'tok2 ']);
      assert.equal(events[3].event, null);
      const err = JSON.parse(events[3].data).error;
      assert.equal(err.code, 'upstream_stream_broken');
      assert.equal(err.type, 'server_error');
      assert.ok(!via.body.toString().includes('[DONE]'));
      assert.equal(via.complete, false, 'no terminating chunk: the response fails at the transport too');
      assert.equal(fake.stats.attempts, before + 1, 'a stream that began is never retried');
    });

    test('a Responses API stream the upstream breaks ends with its own typed error event, numbered after the last', async () => {
      fake.fault({ path: '/v1/responses', action: 'reset', afterChunks: 2 });
      const via = await json(`${proxy.url}/v1/responses`, { model: 'fake-model', stream: true, input: 'hi' }, { headers: { 'x-fake-chunks': '10' } });
      assert.equal(via.status, 200);
      const events = sseEvents(via.body);
      assert.deepEqual(events.map((e) => e.event), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.delta', 'error']);
      assert.deepEqual(events.map((e) => JSON.parse(e.data).sequence_number), [0, 1, 2, 3, 4, 5, 6]);
      const err = JSON.parse(events.at(-1).data);
      assert.deepEqual(err, { type: 'error', code: 'upstream_stream_broken', message: err.message, param: null, sequence_number: 6 });
      assert.equal(via.complete, false);
    });

    test('a client that leaves mid-stream makes the proxy abort the upstream request', async () => {
      const aborts = fake.stats.clientAborts;
      await new Promise((resolve) => {
        const req = http.request(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-fake-chunks': '100', 'x-fake-chunk-delay-ms': '50' } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => {});
        req.end(JSON.stringify({ model: 'fake-model', stream: true, messages: [] }));
      });
      const seen = await waitFor(() => fake.stats.clientAborts > aborts, 5000);
      assert.ok(seen, 'the upstream saw the abort');
    });

    test('a client that leaves while the upstream is still thinking aborts it too', async () => {
      fake.fault({ action: 'hang' });
      const aborts = fake.stats.clientAborts;
      const attempts = fake.stats.attempts;
      const req = http.request(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('error', () => {});
      req.end(JSON.stringify({ model: 'fake-model', messages: [] }));
      // "thinking": this request reached the fake and its body was read (bodyBytes is filled in
      // then), so the fake now hangs on it
      const thinking = await waitFor(() => fake.stats.attempts === attempts + 1 && fake.stats.lastRequest?.path === '/v1/chat/completions' && fake.stats.lastRequest.bodyBytes > 0, 5000);
      assert.ok(thinking, 'the upstream has the request and is holding it');
      req.destroy();
      assert.ok(await waitFor(() => fake.stats.clientAborts > aborts, 5000));
    });
  });
}

describe('connection reuse', () => {
  test('100 sequential requests over HTTP/1.1 use a handful of upstream connections', async () => {
    const fake = await startFakeUpstream();
    const proxy = await startProxy({ UPSTREAM_URL: fake.url, RATE_LIMIT_ENABLED: 'false' });
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < 100; i++) {
        const r = await json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', messages: [{ role: 'user', content: `n${i}` }] }, { agent });
        assert.equal(r.status, 200);
      }
      agent.destroy();
      assert.equal(fake.stats.attempts, 100);
      assert.ok(fake.stats.connections <= 3, `${fake.stats.connections} connections`);
    } finally {
      await proxy.stop();
      await fake.close();
    }
  });

  test('50 concurrent requests over h2c share one or two sessions', async () => {
    const fake = await startFakeUpstream({ h2c: true, chunkDelayMs: 5 });
    const proxy = await startProxy({ UPSTREAM_URL: fake.url, UPSTREAM_HTTP2: 'true', RATE_LIMIT_ENABLED: 'false' });
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
      const all = await Promise.all(Array.from({ length: 50 }, (_, i) => json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', stream: i % 2 === 0, messages: [] }, { agent })));
      agent.destroy();
      assert.deepEqual(new Set(all.map((r) => r.status)), new Set([200]));
      assert.equal(fake.stats.attempts, 50);
      assert.ok(fake.stats.h2Sessions >= 1 && fake.stats.h2Sessions <= 2, `${fake.stats.h2Sessions} sessions`);
    } finally {
      await proxy.stop();
      await fake.close();
    }
  });
});

describe('websocket tunnel', () => {
  test('an Upgrade under /v1/ is tunnelled: the 101 and every frame pass both ways', async () => {
    const fake = await startFakeUpstream();
    const proxy = await startProxy({ UPSTREAM_URL: fake.url });
    try {
      const ws = await wsConnect(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=fake-model`, { headers: { 'openai-beta': 'realtime=v1' } });
      assert.equal(ws.response.status, 101);
      ws.send('{"type":"session.update"}');
      const first = await ws.next();
      assert.equal(first.data.toString(), '{"type":"session.update"}');
      const bin = randomBytes(70_000);
      ws.send(bin);
      const second = await ws.next();
      assert.equal(sha256(second.data), sha256(bin));
      await ws.close();
      assert.equal(fake.stats.wsConnections, 1);
    } finally {
      await proxy.stop();
      await fake.close();
    }
  });
});
