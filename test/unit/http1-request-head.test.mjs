// The request head the HTTP/1.1 client writes: header lines, framing, and what it refuses to write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestHead, framingFor } from '../../dist/upstream/http1-transport.js';

test('the request line, one line per header (arrays repeated), the framing line, a blank line', () => {
  const head = requestHead('POST', '/v1/chat/completions?x=1', { host: 'llm.internal:8000', 'x-tag': ['a', 'b'], 'x-num': 3, 'x-none': undefined }, 'content-length: 2\r\n');
  assert.equal(head, 'POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: llm.internal:8000\r\nx-tag: a\r\nx-tag: b\r\nx-num: 3\r\ncontent-length: 2\r\n\r\n');
});

test("the client's own framing headers are never copied; the framing line replaces them", () => {
  const head = requestHead('POST', '/', { 'content-length': '99', 'transfer-encoding': 'chunked', a: 'b' }, 'content-length: 5\r\n');
  assert.equal(head, 'POST / HTTP/1.1\r\na: b\r\ncontent-length: 5\r\n\r\n');
});

test('a value or path that could split the head is refused with a 400-kind error', () => {
  for (const [path, headers] of [
    ['/', { a: 'x\r\ninjected: 1' }],
    ['/', { a: ['ok', 'bad\n'] }],
    ['/', { a: 'nul\0' }],
    ['/a b', {}],
    ['/a\r\nb', {}],
  ]) {
    assert.throws(() => requestHead('GET', path, headers, ''), (err) => err.kind === 'bad_request', JSON.stringify([path, headers]));
  }
  // tabs and latin-1 text are legal field content
  assert.doesNotThrow(() => requestHead('GET', '/', { a: 'tab\there café' }, ''));
});

test('framing: a buffered body gets its exact length; an empty one only where a body is expected', () => {
  const buffered = (s) => ({ kind: 'buffered', data: Buffer.from(s) });
  assert.equal(framingFor('POST', buffered('hello'), {}), 'content-length: 5\r\n');
  assert.equal(framingFor('POST', buffered('hello'), { 'content-length': '5' }), 'content-length: 5\r\n');
  assert.equal(framingFor('POST', buffered(''), {}), 'content-length: 0\r\n');
  assert.equal(framingFor('GET', buffered(''), {}), '');
  assert.equal(framingFor('DELETE', buffered(''), { 'content-length': '0' }), 'content-length: 0\r\n');
  assert.equal(framingFor('GET', buffered('x'), {}), 'content-length: 1\r\n');
});

test("framing: a streamed body keeps the client's length, or goes chunked without one", () => {
  const streaming = { kind: 'streaming', head: [Buffer.from('abc')], headBytes: 3 };
  assert.equal(framingFor('POST', streaming, { 'content-length': '1000' }), 'content-length: 1000\r\n');
  assert.equal(framingFor('POST', streaming, {}), 'transfer-encoding: chunked\r\n');
});
