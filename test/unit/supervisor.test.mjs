// The primary's supervisor as a state machine: a fake clock whose timers the test fires and
// recorded effects (fork, drain, kill, exit, log). No process is started, nothing sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Supervisor } from '../../dist/cluster/supervisor.js';
import { FakeClock } from './orchestration-fakes.mjs';

const RESTART = { baseMs: 100, maxMs: 1600, stableMs: 10_000 };

function harness({ workers = 2, drainTimeoutMs = 5000, listen = true, forkFails = () => false } = {}) {
  const clock = new FakeClock();
  const effects = [];
  const logged = [];
  let nextId = 1;
  const sup = new Supervisor({
    workers,
    clock,
    restart: RESTART,
    drainTimeoutMs,
    effects: {
      fork: () => {
        if (forkFails()) {
          effects.push('fork failed');
          throw Object.assign(new Error('spawn EAGAIN'), { code: 'EAGAIN' });
        }
        const id = nextId++;
        effects.push(`fork ${id}`);
        return id;
      },
      drain: (id) => effects.push(`drain ${id}`),
      kill: (id) => effects.push(`kill ${id}`),
      exit: (code) => effects.push(`exit ${code}`),
      log: (level, msg, fields) => logged.push({ level, msg, fields }),
    },
  });
  sup.start();
  if (listen) for (const id of sup.alive()) sup.listening(id);
  return { clock, sup, actions: () => [...effects], logs: () => logged, take: () => effects.splice(0) };
}

test('starts WORKERS workers, one per slot', () => {
  const h = harness({ workers: 3 });
  assert.deepEqual(h.actions(), ['fork 1', 'fork 2', 'fork 3']);
  assert.deepEqual(h.sup.alive(), [1, 2, 3]);
});

test('a worker that dies is replaced after the base delay, not before', () => {
  const h = harness();
  h.take();
  h.clock.advance(60_000); // lived long: a first crash
  h.sup.exited(1, 1, null);
  assert.deepEqual(h.sup.alive(), [2]);
  h.clock.advance(99);
  assert.deepEqual(h.take(), [], 'not replaced before 100 ms');
  h.clock.advance(1);
  assert.deepEqual(h.take(), ['fork 3']);
  assert.deepEqual(h.sup.alive(), [3, 2]);
  assert.equal(h.sup.restarts, 1);
  const death = h.logs().find((l) => l.msg === 'worker exited; replacing it');
  assert.deepEqual(death.fields, { worker: 1, code: 1, signal: null, lived_ms: 60_000, restart_in_ms: 100, quick_deaths: 1 });
});

test('a crash loop backs off exponentially to the cap; a worker that lived long enough resets it', () => {
  const h = harness({ workers: 1 });
  h.take();
  const waits = [];
  let id = 1;
  // each replacement dies 50 ms after it started: a loop
  for (let i = 0; i < 7; i++) {
    h.clock.advance(50);
    h.sup.exited(id, 1, null);
    const before = h.clock.now();
    assert.ok(h.clock.fireNext(), 'a restart timer is armed');
    waits.push(h.clock.now() - before);
    id = Number(h.take().at(-1).split(' ')[1]);
  }
  assert.deepEqual(waits, [100, 200, 400, 800, 1600, 1600, 1600]);
  // this one lives past stableMs: its death restarts after the base delay again
  h.clock.advance(RESTART.stableMs);
  h.sup.exited(id, null, 'SIGKILL');
  const before = h.clock.now();
  h.clock.fireNext();
  assert.equal(h.clock.now() - before, 100);
});

test('each slot keeps its own backoff', () => {
  const h = harness({ workers: 2 });
  h.take();
  h.clock.advance(10);
  h.sup.exited(1, 1, null);
  h.clock.fireNext(); // fork 3 in slot 0 after 100
  h.clock.advance(10);
  h.sup.exited(3, 1, null); // slot 0: second quick death → 200
  h.sup.exited(2, 1, null); // slot 1: its first death (lived < stable, but none before) → 100
  const starts = h.clock.now();
  h.clock.fireNext();
  assert.equal(h.clock.now() - starts, 100);
  h.clock.fireNext();
  assert.equal(h.clock.now() - starts, 200);
});

const stopCases = [
  { name: 'all drain cleanly → exit 0 after the last', exits: [[1, 0, null], [2, 0, null]], want: ['exit 0'] },
  { name: 'one exits non-zero while draining → exit 1', exits: [[1, 0, null], [2, 1, null]], want: ['exit 1'] },
  { name: 'one killed by a signal while draining → exit 1', exits: [[2, null, 'SIGKILL'], [1, 0, null]], want: ['exit 1'] },
];
for (const c of stopCases) {
  test(`SIGTERM drains every worker; ${c.name}`, () => {
    const h = harness();
    h.take();
    h.sup.stopSignal('SIGTERM');
    assert.deepEqual(h.take(), ['drain 1', 'drain 2']);
    assert.equal(h.sup.draining, true);
    for (const [i, [id, code, signal]] of c.exits.entries()) {
      h.sup.exited(id, code, signal);
      assert.deepEqual(h.take(), i === c.exits.length - 1 ? c.want : [], 'no exit before the last worker is gone, and none replaced');
    }
    assert.equal(h.clock.pending(), 0, 'the drain deadline is cancelled');
  });
}

test('a pending replacement is cancelled by SIGTERM', () => {
  const h = harness();
  h.take();
  h.sup.exited(1, 1, null);
  h.sup.stopSignal('SIGINT');
  assert.deepEqual(h.take(), ['drain 2']);
  h.sup.exited(2, 0, null);
  assert.deepEqual(h.take(), ['exit 0']);
  assert.equal(h.clock.fireNext(), false, 'no timer left');
});

test('a second signal kills the workers and exits 1 at once', () => {
  const h = harness();
  h.take();
  h.sup.stopSignal('SIGTERM');
  h.sup.exited(1, 0, null);
  h.take();
  h.sup.stopSignal('SIGTERM');
  assert.deepEqual(h.take(), ['kill 2', 'exit 1']);
  h.sup.exited(2, null, 'SIGKILL');
  assert.deepEqual(h.take(), [], 'exits only once');
});

test('workers still alive at the drain timeout are killed, and the exit code says so', () => {
  const h = harness({ drainTimeoutMs: 5000 });
  h.take();
  h.sup.stopSignal('SIGTERM');
  h.take();
  h.sup.exited(1, 0, null);
  h.clock.advance(4999);
  assert.deepEqual(h.take(), []);
  h.clock.advance(1);
  assert.deepEqual(h.take(), ['kill 2']);
  h.sup.exited(2, null, 'SIGKILL');
  assert.deepEqual(h.take(), ['exit 1']);
});

test('a worker failing before any listened stops the rest and exits with its code (port taken)', () => {
  const h = harness({ listen: false });
  h.take();
  h.sup.exited(1, 1, null);
  assert.deepEqual(h.take(), ['drain 2']);
  h.sup.exited(2, 1, null);
  assert.deepEqual(h.take(), ['exit 1']);
  assert.equal(h.sup.restarts, 0);
});

test('once one worker listened, a failure of another is a crash to replace', () => {
  const h = harness({ listen: false });
  h.sup.listening(2);
  h.take();
  h.sup.exited(1, 1, null);
  assert.deepEqual(h.take(), []);
  h.clock.fireNext();
  assert.deepEqual(h.take(), ['fork 3']);
});

test('an exit of an unknown worker id is ignored', () => {
  const h = harness();
  h.take();
  h.sup.exited(99, 1, null);
  assert.deepEqual(h.take(), []);
  assert.deepEqual(h.sup.alive(), [1, 2]);
});

test('a fork that throws (no memory, no processes) is a worker that died at once: its slot backs off and tries again', () => {
  let fail = false;
  const h = harness({ forkFails: () => fail });
  h.take();
  h.clock.advance(60_000);
  fail = true;
  h.sup.exited(1, null, 'SIGKILL');
  h.clock.advance(100);
  assert.deepEqual(h.take(), ['fork failed'], 'the replacement could not start');
  assert.deepEqual(h.sup.alive(), [2]);
  assert.ok(h.logs().some((l) => l.level === 'ERROR' && l.msg === 'could not start a worker' && l.fields.err === 'spawn EAGAIN'));
  h.clock.advance(199);
  assert.deepEqual(h.take(), [], 'a quick death: the next try waits 200 ms');
  fail = false;
  h.clock.advance(1);
  assert.deepEqual(h.take(), ['fork 3']);
  assert.deepEqual(h.sup.alive(), [3, 2]);
});

test('a fork that throws before the service is up stops the start, exits 1, and forks no more', () => {
  const h = harness({ workers: 3, listen: false, forkFails: () => true });
  assert.deepEqual(h.actions(), ['fork failed', 'exit 1']);
});

test('a worker that listens only after the drain began is asked to drain then (it could not hear the first ask)', () => {
  const h = harness({ listen: false });
  h.sup.listening(1);
  h.take();
  h.sup.stopSignal('SIGTERM');
  assert.deepEqual(h.take(), ['drain 1', 'drain 2']);
  h.sup.listening(2); // worker 2 was still starting: the first drain was lost on it
  assert.deepEqual(h.take(), ['drain 2']);
  h.sup.exited(1, 0, null);
  h.sup.exited(2, 0, null);
  assert.deepEqual(h.take(), ['exit 0']);
});
