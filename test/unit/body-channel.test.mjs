// The body channel between an upstream connection and its reader: holding, ordering, endings, backpressure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BodyChannel } from '../../dist/upstream/body-channel.js';

function flow() {
  const calls = [];
  return { calls, pause: () => calls.push('pause'), resume: () => calls.push('resume') };
}

function recorder() {
  const events = [];
  return { events, data: (c) => events.push(`data:${c.toString()}`), end: () => events.push('end'), broken: () => events.push('broken') };
}

test('chunks held before a reader attaches are delivered in order, then live ones', () => {
  const ch = new BodyChannel(flow());
  ch.data(Buffer.from('a'));
  ch.data(Buffer.from('b'));
  const r = recorder();
  ch.read(r);
  ch.data(Buffer.from('c'));
  ch.end();
  assert.deepEqual(r.events, ['data:a', 'data:b', 'data:c', 'end']);
  assert.equal(ch.complete, true);
});

test('an ending that came before the reader is delivered after the held chunks', () => {
  for (const [finish, last] of [['end', 'end'], ['broken', 'broken']]) {
    const ch = new BodyChannel(flow());
    ch.data(Buffer.from('x'));
    ch[finish]();
    ch.data(Buffer.from('late')); // nothing after an ending
    const r = recorder();
    ch.read(r);
    assert.deepEqual(r.events, ['data:x', last]);
    assert.equal(ch.complete, finish === 'end');
  }
});

test('only the first ending counts', () => {
  const ch = new BodyChannel(flow());
  const r = recorder();
  ch.read(r);
  ch.broken();
  ch.end();
  ch.broken();
  assert.deepEqual(r.events, ['broken']);
});

test('too much held pauses the producer; attaching a reader resumes it', () => {
  const f = flow();
  const ch = new BodyChannel(f, 4);
  ch.data(Buffer.from('abc'));
  assert.deepEqual(f.calls, []);
  ch.data(Buffer.from('de'));
  assert.deepEqual(f.calls, ['pause']);
  ch.data(Buffer.from('f')); // no second pause
  assert.deepEqual(f.calls, ['pause']);
  const r = recorder();
  ch.read(r);
  assert.deepEqual(r.events, ['data:abc', 'data:de', 'data:f']);
  assert.deepEqual(f.calls, ['pause', 'resume']);
});

test("the reader's pause outlasts the release of the hold", () => {
  const f = flow();
  const ch = new BodyChannel(f, 1);
  ch.data(Buffer.from('ab')); // held past the mark: paused
  const r = recorder();
  // a reader whose destination is full pauses while the held bytes are delivered
  ch.read({ ...r, data: (c) => { r.data(c); ch.pause(); } });
  assert.deepEqual(f.calls, ['pause'], 'still paused: the reader asked');
  ch.resume();
  assert.deepEqual(f.calls, ['pause', 'resume']);
  ch.resume();
  assert.deepEqual(f.calls, ['pause', 'resume'], 'resume is idempotent');
});

test('a reader can hand the rest to another sink from inside data(), held chunks included', () => {
  const ch = new BodyChannel(flow());
  for (const s of ['1', '2', '3']) ch.data(Buffer.from(s));
  ch.end();
  const first = recorder();
  const second = recorder();
  ch.read({
    ...first,
    data: (c) => {
      first.data(c);
      ch.read(second);
    },
  });
  assert.deepEqual(first.events, ['data:1']);
  assert.deepEqual(second.events, ['data:2', 'data:3', 'end']);
});
