// The request cancellation: a flag, a reason, callbacks, and a real AbortSignal on demand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cancel } from '../../dist/cancel.js';

test('abort sets the reason once and calls each callback once', () => {
  const c = new Cancel();
  const calls = [];
  c.onAbort(() => calls.push('a'));
  c.onAbort(() => calls.push('b'));
  c.abort('first');
  c.abort('second');
  assert.equal(c.aborted, true);
  assert.equal(c.reason, 'first');
  assert.deepEqual(calls, ['a', 'b']);
});

test('an unsubscribed callback is not called; one added after the abort runs at once', () => {
  const c = new Cancel();
  const calls = [];
  const off = c.onAbort(() => calls.push('gone'));
  off();
  off();
  c.abort('x');
  c.onAbort(() => calls.push('late'))();
  assert.deepEqual(calls, ['late']);
});

test('the AbortSignal follows, whether asked for before or after the abort', () => {
  const before = new Cancel();
  const signal = before.signal;
  assert.equal(signal.aborted, false);
  before.abort('why');
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, 'why');
  assert.equal(before.signal, signal);
  const after = new Cancel();
  after.abort('late');
  assert.equal(after.signal.reason, 'late');
});
