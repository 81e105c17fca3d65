import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchingPrimaryLink, BatchingWorkersLink } from '../../dist/cluster/batching-link.js';

/** An in-memory primary and workers: what one side sends is recorded and delivered at once. */
function wires() {
  const toPrimary = []; // [workerId, msg] as the wire carried them
  const toWorker = new Map(); // workerId -> msgs as the wire carried them
  const primaryHandlers = new Map();
  const workerHandlers = new Map(); // workerId -> Map(ch -> fns)
  const exitFns = [];
  const deliver = (map, ch, ...args) => (map.get(ch) ?? []).forEach((fn) => fn(...args));
  const add = (map, ch, fn) => map.set(ch, [...(map.get(ch) ?? []), fn]);
  const alive = new Set([1, 2]);
  const workersInner = {
    sendTo(id, msg) {
      toWorker.set(id, [...(toWorker.get(id) ?? []), msg]);
      deliver(workerHandlers.get(id) ?? new Map(), msg.ch, msg);
    },
    on: (ch, fn) => add(primaryHandlers, ch, fn),
    workers: () => [...alive],
    onExit: (fn) => exitFns.push(fn),
  };
  const primaryInner = (id) => {
    workerHandlers.set(id, new Map());
    return {
      send(msg, sent) {
        toPrimary.push([id, msg]);
        deliver(primaryHandlers, msg.ch, id, msg);
        sent?.();
      },
      on: (ch, fn) => add(workerHandlers.get(id), ch, fn),
    };
  };
  const exit = (id) => {
    alive.delete(id);
    exitFns.forEach((fn) => fn(id));
  };
  return { toPrimary, toWorker, workersInner, primaryInner, exit };
}

/** A defer the test runs by hand: the "turn" ends when the test says so. */
function turns() {
  const queued = [];
  return { defer: (fn) => queued.push(fn), endTurn: () => queued.splice(0).forEach((fn) => fn()), get queued() { return queued.length; } };
}

test('the sends of one turn cross as one message, and arrive one by one on their channels, in order', () => {
  const w = wires();
  const t = turns();
  const primary = new BatchingWorkersLink(w.workersInner, t.defer);
  const worker = new BatchingPrimaryLink(w.primaryInner(1), t.defer);
  const got = [];
  primary.on('log', (id, m) => got.push(['log', id, m.line]));
  primary.on('limits', (id, m) => got.push(['limits', id, m.op]));
  worker.send({ ch: 'log', line: 'a' });
  worker.send({ ch: 'limits', op: 'enter' });
  worker.send({ ch: 'log', line: 'b' });
  assert.equal(w.toPrimary.length, 0, 'nothing crosses before the turn ends');
  assert.equal(t.queued, 1, 'one flush per turn, however many sends');
  t.endTurn();
  assert.equal(w.toPrimary.length, 1, 'three sends, one IPC message');
  assert.deepEqual(got, [['log', 1, 'a'], ['limits', 1, 'enter'], ['log', 1, 'b']]);
});

test('a message alone crosses as itself, not wrapped in a batch', () => {
  const w = wires();
  const t = turns();
  const primary = new BatchingWorkersLink(w.workersInner, t.defer);
  const worker = new BatchingPrimaryLink(w.primaryInner(1), t.defer);
  const got = [];
  primary.on('log', (id, m) => got.push(m.line));
  worker.send({ ch: 'log', line: 'solo' });
  t.endTurn();
  assert.deepEqual(w.toPrimary, [[1, { ch: 'log', line: 'solo' }]]);
  assert.deepEqual(got, ['solo']);
  t.endTurn();
  assert.equal(w.toPrimary.length, 1, 'an empty turn sends nothing');
});

test('the primary batches per worker: each worker gets only its own messages, in order', () => {
  const w = wires();
  const t = turns();
  const primary = new BatchingWorkersLink(w.workersInner, t.defer);
  const one = new BatchingPrimaryLink(w.primaryInner(1), t.defer);
  const two = new BatchingPrimaryLink(w.primaryInner(2), t.defer);
  const got = { 1: [], 2: [] };
  one.on('limits', (m) => got[1].push(m.id));
  two.on('limits', (m) => got[2].push(m.id));
  primary.sendTo(1, { ch: 'limits', id: 'a' });
  primary.sendTo(2, { ch: 'limits', id: 'b' });
  primary.sendTo(1, { ch: 'limits', id: 'c' });
  assert.equal(t.queued, 1);
  t.endTurn();
  assert.deepEqual(got, { 1: ['a', 'c'], 2: ['b'] });
  assert.equal(w.toWorker.get(1).length, 1, 'two messages to worker 1 in one IPC message');
  assert.deepEqual(w.toWorker.get(2), [{ ch: 'limits', id: 'b' }]);
  assert.deepEqual(primary.workers(), [1, 2]);
});

test('flush sends at once (before an exit); what was pending for a worker that exited is dropped', () => {
  const w = wires();
  const t = turns();
  const primary = new BatchingWorkersLink(w.workersInner, t.defer);
  const worker = new BatchingPrimaryLink(w.primaryInner(1), t.defer);
  new BatchingPrimaryLink(w.primaryInner(2), t.defer);
  const exits = [];
  primary.onExit((id) => exits.push(id));
  worker.send({ ch: 'log', line: 'last words' });
  worker.flush();
  assert.deepEqual(w.toPrimary, [[1, { ch: 'log', line: 'last words' }]]);
  primary.sendTo(2, { ch: 'limits', id: 'x' });
  primary.sendTo(1, { ch: 'limits', id: 'y' });
  w.exit(2);
  assert.deepEqual(exits, [2]);
  t.endTurn();
  assert.equal(w.toWorker.get(2), undefined, 'nothing is sent to a worker that is gone');
  assert.deepEqual(w.toWorker.get(1), [{ ch: 'limits', id: 'y' }]);
});

test('unbatched messages from a sender that does not batch still reach the handlers', () => {
  const w = wires();
  const primary = new BatchingWorkersLink(w.workersInner, turns().defer);
  const raw = w.primaryInner(1);
  const got = [];
  primary.on('log', (id, m) => got.push(m.line));
  raw.send({ ch: 'log', line: 'plain' });
  raw.send({ ch: '__batch', msgs: [{ ch: 'log', line: 'x' }, { ch: 'other', line: 'y' }] });
  raw.send({ ch: '__batch' });
  assert.deepEqual(got, ['plain', 'x']);
});

test('a sender waiting to know its message left hears it when the batch has left, not before', () => {
  const w = wires();
  const t = turns();
  new BatchingWorkersLink(w.workersInner, t.defer);
  const worker = new BatchingPrimaryLink(w.primaryInner(1), t.defer);
  const sent = [];
  worker.send({ ch: 'log', line: 'a' }, () => sent.push('a'));
  worker.send({ ch: 'limits', op: 'enter' });
  worker.send({ ch: 'log', line: 'b' }, () => sent.push('b'));
  assert.deepEqual(sent, []);
  t.endTurn();
  assert.deepEqual(sent, ['a', 'b']);
});
