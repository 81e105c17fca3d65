// The event that ends a broken SSE stream: the shape each endpoint's clients read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { streamErrorEvent, streamErrorShape, lastSequenceNumber } from '../../dist/upstream/stream-error-event.js';

const MSG = 'Stream ended early: the upstream broke the stream. The answer is incomplete.';
const buf = (s) => Buffer.from(s);

/** The one event in `ev`: its `event:` name (or null) and its parsed data. */
function parse(ev) {
  assert.match(ev, /\n\n$/, 'one whole event');
  assert.equal(ev.indexOf('\n\n'), ev.length - 2, 'exactly one event');
  const lines = ev.slice(0, -2).split('\n');
  const name = lines[0].startsWith('event: ') ? lines.shift().slice(7) : null;
  assert.equal(lines.length, 1);
  assert.ok(lines[0].startsWith('data: '));
  return { name, data: JSON.parse(lines[0].slice(6)) };
}

test('chat and legacy completions streams end with data: {"error":…} (no event name)', () => {
  for (const url of ['/v1/chat/completions', '/v1/completions', '/v1/chat/completions?x=1', '/v1/audio/transcriptions', '/v1/images/generations']) {
    const { name, data } = parse(streamErrorEvent(url, buf('data: {"id":"c"}\n\n'), MSG, 'upstream_stream_broken'));
    assert.equal(name, null, url);
    assert.deepEqual(data, { error: { message: MSG, type: 'server_error', param: null, code: 'upstream_stream_broken' } });
  }
});

test('a Responses API stream ends with the ResponseErrorEvent shape, numbered after the last event', () => {
  const seen = buf('event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":6,"delta":"a"}\n\nevent: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"b","sequence_number": 7}\n\n');
  const { name, data } = parse(streamErrorEvent('/v1/responses', seen, MSG, 'upstream_timeout'));
  assert.equal(name, 'error');
  assert.deepEqual(data, { type: 'error', code: 'upstream_timeout', message: MSG, param: null, sequence_number: 8 });
  // every field the spec marks required is present
  for (const k of ['type', 'code', 'message', 'param', 'sequence_number']) assert.ok(k in data, k);
});

test('a resumed Responses stream (GET /v1/responses/{id}?stream=true) gets the same shape', () => {
  const { name, data } = parse(streamErrorEvent('/v1/responses/resp_123?stream=true&starting_after=4', buf('data: {"sequence_number":9}\n\n'), MSG, 'upstream_stream_broken'));
  assert.equal(name, 'error');
  assert.equal(data.sequence_number, 10);
});

test('with no numbered event seen, the error event is number 0', () => {
  assert.equal(parse(streamErrorEvent('/v1/responses', null, MSG, 'c')).data.sequence_number, 0);
  assert.equal(parse(streamErrorEvent('/v1/responses', buf(': keep-alive\n\n'), MSG, 'c')).data.sequence_number, 0);
});

test('the sequence number is read from the key, never from text that only looks like it', () => {
  assert.equal(lastSequenceNumber(buf('{"sequence_number":3,"delta":"\\"sequence_number\\": 99"}\n\n')), 3);
  assert.equal(lastSequenceNumber(buf('{"sequence_number":12}\n\n{"delta":"x","sequence_number" :\t40}\n\n')), 40);
  assert.equal(lastSequenceNumber(buf('{"sequence_number":5}{"sequence_number":"x"}')), 5);
  assert.equal(lastSequenceNumber(buf('{"seq":1}')), null);
  assert.equal(lastSequenceNumber(buf('"sequence_number":"x"')), null, 'a key with no number, first in the buffer');
  assert.equal(lastSequenceNumber(null), null);
});

test('Assistants run streams end with event: error carrying the Error object', () => {
  for (const url of ['/v1/threads/runs', '/v1/threads/thread_1/runs', '/v1/threads/thread_1/runs/run_2/submit_tool_outputs']) {
    const { name, data } = parse(streamErrorEvent(url, null, MSG, 'upstream_stream_broken'));
    assert.equal(name, 'error', url);
    assert.deepEqual(data, { message: MSG, type: 'server_error', param: null, code: 'upstream_stream_broken' });
  }
});

test('the shape is chosen by the path alone', () => {
  assert.equal(streamErrorShape('/v1/responses'), 'responses');
  assert.equal(streamErrorShape('/v1/responses/resp_1'), 'responses');
  assert.equal(streamErrorShape('/v1/responses/resp_1/input_items'), 'chat');
  assert.equal(streamErrorShape('/v1/threads/t/runs/r/steps'), 'chat');
  assert.equal(streamErrorShape('/v1/chat/completions'), 'chat');
  assert.equal(streamErrorShape(''), 'chat');
});
