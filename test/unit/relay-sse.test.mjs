// The SSE boundary finder the relay uses to hold back half an event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastEventEnd, brokenStreamEvent } from '../../dist/upstream/relay.js';

const end = (s) => lastEventEnd(Buffer.from(s));

test('a buffer of whole events ends at its length', () => {
  assert.equal(end('data: a\n\n'), 9);
  assert.equal(end('data: a\r\n\r\n'), 11);
  assert.equal(end('data: a\n\ndata: b\n\n'), 18);
});

test('a trailing partial event is excluded', () => {
  assert.equal(end('data: a\n\ndata: {"par'), 9);
  assert.equal(end('data: a\r\n\r\ndata: b\r\n'), 11);
  assert.equal(end('event: x\ndata: 1\n\nevent: y\n'), 18);
});

test('no complete event gives 0', () => {
  assert.equal(end('data: {"half'), 0);
  assert.equal(end('data: a\n'), 0);
  assert.equal(end(''), 0);
});

test('bare CR line endings count too', () => {
  assert.equal(end('data: a\r\rdata: b'), 9);
});

test('the broken-stream event is one OpenAI-shaped SSE event', () => {
  const ev = brokenStreamEvent('cut', 'upstream_stream_broken');
  assert.match(ev, /^data: \{.*\}\n\n$/);
  assert.deepEqual(JSON.parse(ev.slice(6)), { error: { message: 'cut', type: 'server_error', param: null, code: 'upstream_stream_broken' } });
});
