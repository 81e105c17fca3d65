// The SSE boundary finder the relay uses to hold back half an event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastEventEnd } from '../../dist/upstream/relay.js';

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
