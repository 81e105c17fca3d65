// What works the same through every client: plain and streamed chat, streamed usage,
// embeddings, the Responses API (plain and streamed) and tool calls (whole and streamed, as
// vLLM streams them). Each test checks what the client returned, what it put on the wire
// (recorded by its fetch), and what the proxy logged for that request.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadAdapters, startRig, recorder } from './harness.mjs';
import { WEATHER_ARGS } from './tools-spec.mjs';

const adapters = await loadAdapters();
const TEXT = 'tok0 tok1 tok2 tok3 tok4 ';
let rig;
before(async () => {
  rig = await startRig();
});
after(() => rig?.close());

for (const a of adapters) {
  describe(a.label, () => {
    let rec;
    let c;
    before(() => {
      rec = recorder();
      c = a.make({ baseURL: rig.baseURL, apiKey: `sk-basics-${a.name}`, fetch: rec.fetch });
    });
    /** The one call the last operation made, and the proxy's log line for it. */
    const lastCall = async (path) => {
      const call = rec.calls.at(-1);
      assert.equal(call.path, path);
      assert.equal(call.status, 200);
      const line = await rig.line(call.headers['x-request-id']);
      assert.ok(line, 'the proxy logged the request');
      assert.equal(line.status, 200);
      assert.equal(line.error, null);
      return { call, line };
    };

    test('plain chat completion', async () => {
      const n = rec.calls.length;
      assert.equal((await a.chat(c, 'hello there')).text, TEXT);
      assert.equal(rec.calls.length, n + 1, 'one request');
      const { call, line } = await lastCall('/v1/chat/completions');
      assert.notEqual(call.body.stream, true);
      assert.equal(line.stream, false);
      assert.equal(line.completion_tokens, 5);
    });

    test('streamed chat completion', async () => {
      const sink = await a.stream(c, 'hello there', { text: '' });
      assert.equal(sink.text, TEXT);
      if (a.name === 'vercel-ai') assert.equal(sink.finishReason, 'stop');
      const { call, line } = await lastCall('/v1/chat/completions');
      assert.equal(call.body.stream, true);
      assert.match(call.headers['content-type'], /^text\/event-stream/);
      assert.equal(line.stream, true);
    });

    test('streamed usage', async () => {
      const r = await a.streamUsage(c, 'hello there');
      assert.equal(r.text, TEXT);
      assert.deepEqual(r.usage, { prompt: 2, completion: 5 });
      const { call, line } = await lastCall('/v1/chat/completions');
      assert.deepEqual(call.body.stream_options, { include_usage: true });
      assert.equal(line.prompt_tokens, 2, 'the proxy counted the streamed usage too');
      assert.equal(line.completion_tokens, 5);
    });

    test('embeddings', async () => {
      const r = await a.embed(c, 'hello');
      assert.equal(r.vector.length, 8);
      assert.ok(r.vector.every((v) => Number.isFinite(v) && Math.abs(v) <= 1));
      const { call } = await lastCall('/v1/embeddings');
      assert.equal(call.body.model, 'fake-embed');
    });

    test('Responses API, plain', async () => {
      assert.equal((await a.responses(c, 'hello there')).text, TEXT);
      const { call, line } = await lastCall('/v1/responses');
      assert.notEqual(call.body.stream, true);
      assert.equal(line.completion_tokens, 5);
    });

    test('Responses API, streamed', async () => {
      const sink = await a.responsesStream(c, 'hello there', { text: '' });
      assert.equal(sink.text, TEXT);
      if (a.name === 'vercel-ai') assert.equal(sink.finalText, TEXT);
      const { call, line } = await lastCall('/v1/responses');
      assert.equal(call.body.stream, true);
      assert.equal(line.stream, true);
      assert.equal(line.completion_tokens, 5, 'usage read from response.completed');
    });

    for (const stream of [false, true]) {
      test(`tool call, ${stream ? 'streamed as vLLM streams it' : 'whole'}`, async () => {
        const r = await a.tool(c, { stream });
        assert.equal(r.name, 'get_weather');
        assert.deepEqual(r.args, WEATHER_ARGS);
        assert.match(r.id, /^chatcmpl-tool-\d+$/);
        assert.match(r.finish, /^tool[-_]calls$/);
        const { call } = await lastCall('/v1/chat/completions');
        assert.equal(call.body.tools[0].function.name, 'get_weather');
        assert.equal(Boolean(call.body.stream), stream);
      });
    }
  });
}
