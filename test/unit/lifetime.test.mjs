// A request's lifetime, its standing with the breaker and the idle timer, on a fake clock:
// how a request ends early, in which phase, and what is left behind (nothing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Lifetime, Lifetimes } from '../../dist/proxy/lifetime.js';
import { BreakerTicket } from '../../dist/proxy/breaker-ticket.js';
import { CircuitBreaker } from '../../dist/resilience/circuit-breaker.js';
import { IdleTimer } from '../../dist/clock.js';
import { CLIENT_GONE, DEADLINE, SHUTDOWN } from '../../dist/cancel.js';
import { FakeClock } from './orchestration-fakes.mjs';

test('TIMEOUT before the answer is a fixed deadline: it ends the request with `deadline`', () => {
  const clock = new FakeClock();
  const life = new Lifetime(clock);
  life.startDeadline(2000);
  clock.t += 1999;
  assert.equal(life.ended, false);
  assert.equal(clock.fireNext(), true);
  assert.equal(clock.t, 3000);
  assert.equal(life.endedBy, 'deadline');
  assert.equal(life.cancel.reason, DEADLINE);
});

test('once the answer began, TIMEOUT bounds the silence between chunks, not the whole answer', () => {
  const clock = new FakeClock();
  const life = new Lifetime(clock);
  life.startDeadline(1000);
  life.answerBegan(1000);
  assert.equal(life.phase, 'relaying');
  for (let i = 0; i < 5; i++) {
    clock.advance(900); // the timer wakes up on the way, sees the last chunk and sleeps on
    life.touch(); // a chunk every 900 ms: 4.5 s in all, never 1 s of silence
  }
  assert.equal(life.ended, false);
  clock.advance(999);
  assert.equal(life.ended, false);
  clock.advance(1);
  assert.equal(clock.t, 1000 + 4500 + 1000, 'silence from the last chunk on');
  assert.equal(life.endedBy, 'deadline');
});

test('the first reason wins; each phase is reported; finish clears the timer and aborts the upstream in hand', () => {
  const clock = new FakeClock();
  const live = new Lifetimes(clock);
  const life = live.begin();
  const aborted = [];
  life.enter('queued');
  assert.equal(live.byPhase().queued, 1);
  life.startDeadline(5000);
  life.holdUpstream({ abort: () => aborted.push('up') });
  life.end(CLIENT_GONE);
  life.end(SHUTDOWN);
  assert.equal(life.endedBy, 'client_gone');
  life.finish();
  assert.equal(life.phase, 'done');
  assert.deepEqual(aborted, ['up']);
  assert.equal(clock.pending(), 0);
  assert.equal(live.size, 0);
  life.enter('attempt');
  assert.equal(life.phase, 'done', 'a finished request stays done');
});

test('an upstream let go of (its answer ended by itself) is not aborted', () => {
  const life = new Lifetime(new FakeClock());
  const aborted = [];
  life.holdUpstream({ abort: () => aborted.push('up') });
  life.holdUpstream(null);
  life.finish();
  assert.deepEqual(aborted, []);
});

test('the client closing before the answer finished ends the request; closing after it does not', () => {
  const res = Object.assign(new EventEmitter(), { writableFinished: false });
  const life = new Lifetime(new FakeClock());
  life.watchClient(res);
  res.emit('close');
  assert.equal(life.endedBy, 'client_gone');
  life.finish();
  assert.equal(res.listenerCount('close'), 0, 'the listener goes with the request');

  const done = Object.assign(new EventEmitter(), { writableFinished: true });
  const other = new Lifetime(new FakeClock());
  other.watchClient(done);
  done.emit('close');
  assert.equal(other.ended, false);
});

test('a socket watched for an upgrade ends the request when it closes', () => {
  const socket = new EventEmitter();
  const life = new Lifetime(new FakeClock());
  life.watchSocket(socket);
  socket.emit('close');
  assert.equal(life.endedBy, 'client_gone');
  life.finish();
  assert.equal(socket.listenerCount('close'), 0);
});

test('endAll ends every live request with the reason (shutdown) and says how many', () => {
  const clock = new FakeClock();
  const live = new Lifetimes(clock);
  const a = live.begin();
  const b = live.begin();
  assert.equal(live.endAll(SHUTDOWN), 2);
  assert.equal(a.endedBy, 'shutdown');
  assert.equal(b.endedBy, 'shutdown');
});

test('the first byte is marked once', () => {
  const clock = new FakeClock();
  const life = new Lifetime(clock);
  clock.t = 1200;
  life.markFirstByte();
  clock.t = 1900;
  life.markFirstByte();
  assert.equal(life.firstByteAt, 1200);
});

test('IdleTimer: touched in time it never fires; stop disarms it', () => {
  const clock = new FakeClock();
  let fired = 0;
  const idle = new IdleTimer(clock, 100, () => fired++);
  clock.t += 60;
  idle.touch();
  clock.fireNext(); // at 100: only 40 ms quiet, sleeps 60 more
  assert.equal(fired, 0);
  clock.fireNext();
  assert.equal(fired, 1);
  assert.equal(clock.t, 1160);
  const other = new IdleTimer(clock, 100, () => fired++);
  other.stop();
  assert.equal(clock.fireNext(), false);
  assert.equal(fired, 1);
});

/** A breaker open for 1 s after 1 failure, brought to half-open. */
function halfOpen(clock) {
  const breaker = new CircuitBreaker({ threshold: 1, openMs: 1000 });
  breaker.recordFailure(clock.now(), false);
  clock.t += 1000;
  return breaker;
}

/** A ticket that has taken the probe of `breaker`. */
function probing(breaker, clock) {
  const ticket = new BreakerTicket(breaker, clock);
  assert.equal(ticket.admit(), true);
  assert.equal(ticket.probe, true, 'the request is the probe');
  return ticket;
}

test("a probe's verdict can come from any attempt of its request: the first success closes the breaker", () => {
  const clock = new FakeClock();
  const breaker = halfOpen(clock);
  const ticket = probing(breaker, clock);
  // attempt 1 was resent (stale connection): no verdict; the resend goes although the probe is out
  assert.equal(ticket.admit(), true);
  assert.equal(new BreakerTicket(breaker, clock).admit(), false, 'another request is refused meanwhile');
  ticket.success();
  assert.equal(breaker.snapshot(clock.now()).state, 'closed');
  ticket.release();
  assert.equal(breaker.snapshot(clock.now()).state, 'closed');
});

test('a probe that failed opens the breaker again; one released without a verdict frees its slot', () => {
  const clock = new FakeClock();
  const failing = halfOpen(clock);
  probing(failing, clock).failure();
  assert.equal(failing.snapshot(clock.now()).state, 'open');

  const abandoned = halfOpen(clock);
  const ticket = probing(abandoned, clock);
  assert.equal(abandoned.admit(clock.now()).kind, 'reject', 'the slot is taken while the probe is out');
  ticket.release();
  ticket.release();
  assert.equal(abandoned.admit(clock.now()).kind, 'probe', 'the next request may probe');
});

test('a verdict reaches the breaker once as the probe; later ones are ordinary news', () => {
  const clock = new FakeClock();
  const breaker = halfOpen(clock);
  const ticket = probing(breaker, clock);
  ticket.failure();
  clock.t += 1000;
  assert.equal(breaker.admit(clock.now()).kind, 'probe'); // somebody else's probe now
  ticket.success(); // a late report of the first request must not close it
  assert.equal(breaker.snapshot(clock.now()).state, 'half_open');
  const none = new BreakerTicket(null, clock);
  assert.equal(none.admit(), true, 'no breaker: always through');
  assert.doesNotThrow(() => (none.success(), none.release()), 'and nothing to tell');
});
