// What every client makes of a failure the proxy handles: a stream the upstream breaks
// (chat, and the Responses API with its own typed error event), a 503 the proxy retries for
// the client, and a client that aborts mid-stream (the upstream must see it within 1 s).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadAdapters, startRig, recorder, describeError, settle, record, waitFor } from './harness.mjs';

const adapters = await loadAdapters();
const BROKEN = 'Stream ended early: the upstream broke the stream. The answer is incomplete.';
let rig;
before(async () => {
  rig = await startRig();
});
after(() => rig?.close());

/** The error's own name (AI_APICallError) or, for a plain Error subclass, its class (APIError). */
const errorName = (e) => (e.errName && e.errName !== 'Error' ? e.errName : e.name);

/** In a few words, how the client ended: for the table. */
function howItEnded(sink, err) {
  if (err === null) return `ends normally with the cut text`;
  const e = describeError(err);
  const why = e.code ? ` (${e.code})` : e.causeMessage ? ` (cause: ${e.causeMessage})` : '';
  const event = sink.errors?.length ? `; the error event goes to onError (${errorName(describeError(sink.errors[0]))}, ${sink.errors[0].code})` : '';
  return `throws ${errorName(e)}${why}${event}`;
}

for (const a of adapters) {
  describe(a.label, () => {
    let rec;
    let c;
    before(() => {
      rec = recorder();
      c = a.make({ baseURL: rig.baseURL, apiKey: `sk-failures-${a.name}`, fetch: rec.fetch, headers: { 'x-fake-chunks': '10' } });
    });

    for (const [what, path, run] of [
      ['chat stream', '/v1/chat/completions', (sink) => a.stream(c, 'hi', sink)],
      ['Responses API stream', '/v1/responses', (sink) => a.responsesStream(c, 'hi', sink)],
    ]) {
      test(`a ${what} the upstream breaks fails loudly, after the text that came`, async () => {
        rig.fake.fault({ path, action: 'reset', afterChunks: 3 });
        const attempts = rig.fake.stats.attempts;
        const sink = { text: '' };
        const [, err] = await settle(() => run(sink));
        const returned = { text: sink.text, finishReason: sink.finishReason, errors: sink.errors?.map((x) => `${x.name}: ${String(x.message).slice(0, 80)}`) };
        assert.ok(err, `the client must not take the cut answer for a complete one (it returned ${JSON.stringify(returned)})`);
        assert.equal(sink.text, 'tok0 tok1 tok2 ', 'the text before the break reached the caller');
        const e = describeError(err);
        if (a.name === 'vercel-ai') {
          // it fails on the cut connection; the error event itself reaches onError, typed
          assert.equal(e.name, 'APICallError');
          assert.equal(e.causeMessage, 'terminated');
          assert.equal(sink.errors.length, 1, 'onError got the error event');
          assert.equal(sink.errors[0].code, 'upstream_stream_broken');
          if (path === '/v1/responses') assert.equal(sink.errors[0].data.type, 'error', 'the typed Responses error event passed its schema');
        } else {
          assert.equal(e.name, 'APIError');
          assert.equal(e.code, 'upstream_stream_broken');
          assert.equal(e.message, BROKEN);
        }
        // on the wire: one 200 that began, never retried; the proxy logged the break
        const call = rec.calls.at(-1);
        assert.equal(call.path, path);
        assert.equal(call.status, 200);
        assert.equal(rig.fake.stats.attempts, attempts + 1);
        const line = await rig.line(call.headers['x-request-id']);
        assert.equal(line.error, 'upstream_stream_broken');
        record({ scenario: path === '/v1/responses' ? 'broken_responses_stream' : 'broken_stream', client: a.name, summary: howItEnded(sink, err) });
      });
    }

    test('a 503 the proxy retries is one successful request for the client', async () => {
      rig.fake.fault({ path: '/v1/chat/completions', action: 'status', status: 503 });
      const attempts = rig.fake.stats.attempts;
      const calls = rec.calls.length;
      const r = await a.chat(c, 'hi');
      assert.equal(r.text.split(' ').filter(Boolean).length, 10);
      assert.equal(rec.calls.length, calls + 1, 'the client sent one request');
      assert.equal(rec.calls.at(-1).status, 200);
      assert.equal(rig.fake.stats.attempts, attempts + 2, 'the proxy retried the 503 once');
      const line = await rig.line(rec.calls.at(-1).headers['x-request-id']);
      assert.equal(line.attempts, 2);
      record({ scenario: 'retried_503', client: a.name, summary: '1 request, answered 200 (the proxy retried)' });
    });

    test('an abort mid-stream reaches the upstream within 1 s', async () => {
      const slow = a.make({ baseURL: rig.baseURL, apiKey: `sk-failures-${a.name}`, fetch: rec.fetch, headers: { 'x-fake-chunks': '100', 'x-fake-chunk-delay-ms': '50' } });
      const aborts = rig.fake.stats.clientAborts;
      const ac = new AbortController();
      const sink = { text: '' };
      const [, err] = await settle(() => a.stream(slow, 'hi', sink, { signal: ac.signal, onText: () => ac.abort() }));
      const seen = await waitFor(() => rig.fake.stats.clientAborts > aborts, 1000);
      assert.ok(seen, 'the upstream saw the abort within 1 s');
      assert.ok(sink.text.startsWith('tok0 ') && sink.text.length < 100, 'the stream stopped early');
      const line = await rig.line(rec.calls.at(-1).headers['x-request-id']);
      assert.equal(line.error, 'client_gone');
      assert.equal(line.status, 499, 'a client that left mid-stream is 499 in the log, as in every phase');
      const e = describeError(err);
      record({ scenario: 'abort', client: a.name, summary: `the upstream sees it within 1 s; the call ${e ? `throws ${errorName(e)}` : 'ends quietly (no error)'}` });
    });
  });
}
