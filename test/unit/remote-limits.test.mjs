// The client limits shared by workers: RemoteLimits in each worker, one LimitsHost in the
// primary, over an in-memory link (memory-link.mjs) and a fake clock. A client's rpm, tpm and
// max_parallel hold across workers, what a dead worker held is freed, and a primary that
// does not answer makes the worker fail open without leaking anything on the primary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config.js';
import { LimitsHost } from '../../dist/cluster/limits-host.js';
import { RemoteLimits } from '../../dist/cluster/remote-limits.js';
import { LocalLimits } from '../../dist/resilience/local-limits.js';
import { FakeClock } from './orchestration-fakes.mjs';
import { flush, memoryCluster } from './memory-link.mjs';
import { prng } from './prng.mjs';

const NO_GATE = parseConfig({});
const policy = (over = {}) => ({ requests: { capacity: 5, windowSec: 60 }, tokensPerMinute: null, maxParallel: null, weight: 1, ...over });

/** A primary and `n` workers (ids 1..n) sharing one clock. */
function cluster(n = 2, { timeoutMs } = {}) {
  const clock = new FakeClock();
  const net = memoryCluster();
  const errors = [];
  const host = new LimitsHost(net.primary, NO_GATE, clock, undefined, { onError: (err, w) => errors.push([w, err]) });
  const workers = [];
  for (let i = 1; i <= n; i++) workers.push(new RemoteLimits(net.worker(i), clock, { workers: n, ...(timeoutMs ? { timeoutMs } : {}) }));
  return { clock, net, host, workers, errors };
}

/** Starts a call and records how it settles. */
function track(promise) {
  const s = { done: false, value: undefined };
  promise.then((v) => Object.assign(s, { done: true, value: v }));
  return s;
}

/** A call made over the link and answered. */
async function call(net, promise) {
  const s = track(promise);
  await net.settle();
  assert.ok(s.done, 'answered');
  return s.value;
}

/** What a refusal or an admission says, without the ticket. */
const view = (e) => (e === null ? null : e.ok ? { ok: true, requests: e.requests, tokens: e.tokens } : { ...e });

test('one worker gets the same answers as the single-process store, call for call', async () => {
  // the same script against LocalLimits and RemoteLimits: refusals, waits, headers, refunds, a reload
  const script = async (store, settle, clock) => {
    const out = [];
    const p = policy({ tokensPerMinute: 6000, maxParallel: 2 });
    const e1 = await settle(store.enter('alice', p));
    const e2 = await settle(store.enter('alice', p));
    out.push(view(e1), view(e2), view(await settle(store.enter('alice', p))));
    out.push(view(await settle(store.reserve(e1.ticket, 5000))), view(await settle(store.reserve(e2.ticket, 2000))));
    store.leave(e2.ticket, 0);
    clock.t += 1000;
    store.leave(e1.ticket, 300);
    const e3 = await settle(store.enter('alice', p));
    out.push(view(e3), view(await settle(store.reserve(e3.ticket, 5500))));
    store.leave(e3.ticket, 5500);
    out.push(view(await settle(store.enter('alice', p))), view(await settle(store.enter('alice', p))));
    const reloaded = policy({ requests: { capacity: 10, windowSec: 60 }, tokensPerMinute: 100 });
    out.push(view(await settle(store.enter('alice', reloaded))), view(await settle(store.enter('bob', p))));
    out.push(store.outstanding());
    return out;
  };
  const localClock = new FakeClock();
  const local = await script(new LocalLimits(localClock), (p) => p, localClock);
  const { clock, net, workers } = cluster(1);
  const remote = await script(workers[0], (p) => call(net, p), clock);
  assert.equal(local.length, 12);
  assert.deepEqual(remote, local);
  assert.equal(local[2].reason, 'parallel');
  assert.equal(local[4].ok, false, 'the second estimate did not fit');
});

test('a 5-per-minute key gets 5 requests from two workers together, not 10', async () => {
  const { net, workers } = cluster(2);
  const p = policy();
  const answers = [];
  for (let i = 0; i < 5; i++) for (const w of workers) answers.push(w.enter('alice', p));
  await net.settle();
  const results = await Promise.all(answers);
  assert.equal(results.filter((e) => e.ok).length, 5);
  assert.deepEqual(
    results.filter((e) => !e.ok).map((e) => e.reason),
    ['requests', 'requests', 'requests', 'requests', 'requests'],
  );
  assert.deepEqual(results.at(-1).requests, { limit: 5, remaining: 0, resetMs: 60_000 });
});

test('max_parallel 2: one place on each worker, a third from either is refused; a leave frees one', async () => {
  const { net, host, workers } = cluster(2);
  const [a, b] = workers;
  const p = policy({ requests: null, maxParallel: 2 });
  const ea = await call(net, a.enter('alice', p));
  const eb = await call(net, b.enter('alice', p));
  assert.equal((await call(net, a.enter('alice', p))).reason, 'parallel');
  assert.equal((await call(net, b.enter('alice', p))).reason, 'parallel');
  a.leave(ea.ticket, 0);
  a.leave(ea.ticket, 0); // twice: one place
  await net.settle();
  assert.equal((await call(net, b.enter('alice', p))).ok, true);
  assert.equal((await call(net, a.enter('alice', p))).reason, 'parallel');
  assert.equal(host.heldBy(1), 0);
  assert.equal(host.heldBy(2), 2);
  b.leave(eb.ticket, 0);
});

test('tpm across workers: what one worker reserved is not there for the other until it settles', async () => {
  const { clock, net, host, workers } = cluster(2);
  const [a, b] = workers;
  const p = policy({ requests: null, tokensPerMinute: 6000 });
  const ea = await call(net, a.enter('alice', p));
  assert.equal((await call(net, a.reserve(ea.ticket, 4000))).ok, true);
  assert.equal(a.outstanding(), 4000);
  const eb = await call(net, b.enter('alice', p));
  const refused = await call(net, b.reserve(eb.ticket, 4000));
  assert.equal(refused.ok, false);
  assert.equal(refused.retryAfterMs, 60_000);
  assert.deepEqual(refused.tokens, { limit: 6000, remaining: 2000, resetMs: 60_000 });
  a.leave(ea.ticket, 1000); // 3,000 come back to everyone
  clock.t += 1;
  const fits = await call(net, b.reserve(eb.ticket, 4000));
  assert.equal(fits.ok, true);
  assert.equal(fits.tokens.remaining, 1000);
  b.leave(eb.ticket, 4000);
  await net.settle();
  assert.equal(host.limits.outstanding(), 0);
  assert.equal(a.outstanding() + b.outstanding(), 0);
});

test('random calls from three workers: the key never has more than max_parallel in flight, nor more requests or tokens than its limits', async () => {
  for (let seed = 1; seed <= 5; seed++) {
    const rand = prng(seed);
    const { clock, net, host, workers } = cluster(3);
    const p = policy({ requests: { capacity: 10, windowSec: 60 }, tokensPerMinute: 5000, maxParallel: 3 });
    const open = [];
    const admitted = []; // instants of admissions
    const charged = []; // [instant reserved, tokens it finally cost]
    let inFlight = 0;
    for (let step = 0; step < 300; step++) {
      const w = workers[Math.floor(rand() * 3)];
      const r = rand();
      if (r < 0.45) {
        w.enter('alice', p).then((e) => {
          if (!e.ok) return;
          inFlight++;
          assert.ok(inFlight <= 3, `seed ${seed}: ${inFlight} in flight`);
          admitted.push(clock.now());
          open.push({ w, ticket: e.ticket, estimate: 0, at: 0 });
        });
      } else if (r < 0.7 && open.length > 0) {
        const o = open[Math.floor(rand() * open.length)];
        if (o.estimate === 0) {
          o.estimate = 1 + Math.floor(rand() * 2000);
          o.w.reserve(o.ticket, o.estimate).then((res) => {
            if (res?.ok) o.at = clock.now();
            else o.estimate = -1;
          });
        }
      } else if (open.length > 0) {
        const [o] = open.splice(Math.floor(rand() * open.length), 1);
        const used = o.at > 0 ? Math.floor(rand() * o.estimate) : 0; // a reservation not yet answered is refunded
        if (o.at > 0) charged.push([o.at, used]);
        o.w.leave(o.ticket, used);
        inFlight--;
      }
      if (rand() < 0.5) await net.settle();
      clock.t += Math.floor(rand() * 2000);
    }
    await net.settle();
    // requests: at most the bucket plus its refill since the start
    const first = admitted[0];
    for (const t of admitted) assert.ok(admitted.filter((x) => x <= t).length <= 10 + ((t - first) * 10) / 60_000 + 1e-9, `seed ${seed}: too many requests by ${t}`);
    // tokens: what was charged in any minute (each at its reservation) fits the limit
    for (const [t] of charged) {
      const inWindow = charged.filter(([x]) => x <= t && x > t - 60_000).reduce((n, [, used]) => n + used, 0);
      assert.ok(inWindow <= 5000, `seed ${seed}: ${inWindow} tokens in the minute before ${t}`);
    }
    assert.ok(admitted.length > 10 && charged.length > 5, `seed ${seed}: the run exercised the limits`);
    for (const o of open.splice(0)) o.w.leave(o.ticket, 0);
    await net.settle();
    assert.equal(host.heldBy(1) + host.heldBy(2) + host.heldBy(3), 0);
    assert.equal(host.limits.outstanding(), 0);
  }
});

test('a worker that exits frees its places at once; its reservations keep their estimate', async () => {
  const { clock, net, host, workers } = cluster(2);
  const [a, b] = workers;
  const p = policy({ requests: null, tokensPerMinute: 6000, maxParallel: 2 });
  for (let i = 0; i < 2; i++) {
    const e = await call(net, a.enter('alice', p));
    assert.equal((await call(net, a.reserve(e.ticket, 3000))).ok, true);
  }
  assert.equal((await call(net, b.enter('alice', p))).reason, 'parallel');
  assert.equal(host.limits.outstanding(), 6000);
  net.exit(1);
  assert.equal(host.heldBy(1), 0);
  assert.equal(host.limits.outstanding(), 0, 'settled');
  const eb = await call(net, b.enter('alice', p));
  assert.equal(eb.ok, true, 'the places of the dead worker are free');
  assert.equal((await call(net, b.reserve(eb.ticket, 1000))).ok, false, 'the 6,000 stay charged: nobody counted what they cost');
  clock.t += 60_000;
  assert.equal((await call(net, b.reserve(eb.ticket, 1000))).ok, true, 'and slide out of the window like any charge');
});

test('what a worker said before its exit and the primary reads after it holds nothing', async () => {
  const { net, host, workers } = cluster(2);
  const [a, b] = workers;
  const p = policy({ requests: null, maxParallel: 1 });
  void a.enter('alice', p);
  net.exit(1); // its enter is still in the pipe
  await net.settle();
  assert.equal(host.heldBy(1), 0);
  assert.equal((await call(net, b.enter('alice', p))).ok, true);
});

test('a primary that does not answer: enter and reserve fail open after the timeout; the late answers are dropped and the leave frees the place', async () => {
  const { clock, net, host, workers } = cluster(1, { timeoutMs: 500 });
  const [w] = workers;
  const p = policy({ requests: null, tokensPerMinute: 1000, maxParallel: 1 });
  const entered = track(w.enter('alice', p));
  const held = net.take(() => true); // the primary is stuck
  clock.advance(499);
  await net.settle();
  assert.equal(entered.done, false, 'still waiting before the timeout');
  clock.advance(1);
  await net.settle();
  assert.deepEqual(view(entered.value), { ok: true, requests: null, tokens: null }, 'admitted, without figures');
  assert.equal(w.failedOpen, 1);
  const reserved = track(w.reserve(entered.value.ticket, 800));
  held.push(...net.take(() => true));
  clock.advance(500);
  await net.settle();
  assert.equal(reserved.value, null, 'reserve failed open: no token figures');
  assert.equal(w.failedOpen, 2);
  net.deliverTaken(held); // the primary wakes up: it admits and reserves; its answers come late
  await net.settle();
  assert.equal(host.heldBy(1), 1);
  assert.equal(host.limits.outstanding(), 800);
  assert.equal(w.outstanding(), 0, 'the worker never knew of the reservation');
  w.leave(entered.value.ticket, 100);
  await net.settle();
  assert.equal(host.heldBy(1), 0, 'the leave freed the place the late enter took');
  assert.equal(host.limits.outstanding(), 0);
  assert.equal(clock.pending('proxy'), 0, 'no timer left armed');
  assert.equal((await call(net, w.enter('alice', p))).ok, true);
});

test('answers that come back in another order are matched by id', async () => {
  const { net, workers } = cluster(1);
  const [w] = workers;
  const first = track(w.enter('alice', policy({ requests: { capacity: 3, windowSec: 60 } })));
  const second = track(w.enter('bob', policy({ requests: { capacity: 7, windowSec: 60 } })));
  net.deliver(); // both reach the primary
  const answers = net.take(() => true);
  assert.equal(answers.length, 2);
  net.deliverTaken(answers.reverse());
  await net.settle();
  assert.equal(first.value.ticket.key, 'alice');
  assert.equal(first.value.requests.limit, 3);
  assert.equal(second.value.ticket.key, 'bob');
  assert.equal(second.value.requests.limit, 7);
});

test('a keys reload travels with the next enter: the new limit applies and what was used carries over', async () => {
  const { net, workers } = cluster(2);
  const [a, b] = workers;
  for (let i = 0; i < 3; i++) a.leave((await call(net, a.enter('alice', policy()))).ticket, 0);
  const after = await call(net, b.enter('alice', policy({ requests: { capacity: 10, windowSec: 60 } })));
  assert.equal(after.requests.limit, 10);
  assert.equal(after.requests.remaining, 6, '3 used before the reload, 1 now');
});

test('a call the primary cannot answer (a malformed policy) fails open at once and is reported', async () => {
  const { net, host, workers, errors } = cluster(1);
  const [w] = workers;
  const e = await call(net, w.enter('alice', { requests: { capacity: -1, windowSec: 60 }, tokensPerMinute: null, maxParallel: null, weight: 1 }));
  assert.deepEqual(view(e), { ok: true, requests: null, tokens: null });
  assert.equal(w.failedOpen, 1);
  assert.equal(errors.length, 1);
  assert.equal(errors[0][0], 1);
  net.primary.sendTo(1, { ch: 'limits', op: 'entered', id: 999, ok: true, requests: null, tokens: null }); // an answer nobody asked for
  w.leave(e.ticket, 0);
  await net.settle();
  assert.equal(host.heldBy(1), 0);
  assert.equal(w.size, 0);
});

test('the link lost: waiting calls fail open now, later ones at once, and nothing more is sent', async () => {
  const { net, workers } = cluster(1);
  const [w] = workers;
  const waiting = track(w.enter('alice', policy()));
  net.take(() => true);
  w.close();
  await net.settle();
  assert.equal(waiting.value.ok, true);
  const later = track(w.enter('alice', policy({ tokensPerMinute: 1000 })));
  await net.settle();
  assert.equal(later.value.ok, true);
  assert.equal((await w.reserve(later.value.ticket, 10)), null);
  w.leave(later.value.ticket, 0);
  assert.equal(net.queue.length, 0);
  assert.equal(w.failedOpen, 3);
});

test('a ticket of another store is refused loudly', async () => {
  const { workers } = cluster(1);
  const local = new LocalLimits(new FakeClock());
  const e = await local.enter('alice', policy());
  assert.throws(() => workers[0].reserve(e.ticket, 1), TypeError);
  assert.throws(() => local.leave({ key: 'x', policy: policy() }, 0), TypeError);
});

test('a client nothing limits costs no message; without a token limit, reserve asks nothing either', async () => {
  const { net, host, workers } = cluster(1);
  const [w] = workers;
  const entering = track(w.enter('anyone', policy({ requests: null })));
  await flush();
  assert.ok(entering.done, 'answered without the primary');
  const free = entering.value;
  assert.deepEqual(view(free), { ok: true, requests: null, tokens: null });
  const r = track(w.reserve(free.ticket, 500));
  await flush();
  assert.ok(r.done && r.value === null);
  assert.equal(w.size, 1, 'counted open in this worker');
  w.leave(free.ticket, 10);
  assert.equal(w.size, 0);
  assert.equal(net.queue.length, 0, 'nothing was sent');
  assert.equal(host.limits.size, 0, 'the primary never heard of it');
  // a request limit alone: enter asks (a lease), reserve does not, and leave says nothing
  const limited = await call(net, w.enter('alice', policy()));
  assert.equal(limited.ok, true);
  assert.equal(limited.requests.remaining, 4);
  const reserving = track(w.reserve(limited.ticket, 500));
  await flush();
  assert.ok(reserving.done && reserving.value === null, 'no token limit: nothing reserved, at once');
  assert.equal(net.queue.length, 0, 'no reserve went out');
  w.leave(limited.ticket, 10);
  assert.equal(net.queue.length, 0, 'a leased request holds nothing in the primary: no leave goes out');
  assert.equal(w.failedOpen, 0);
});
