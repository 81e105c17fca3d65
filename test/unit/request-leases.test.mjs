// Request leases: a client whose one limit is its request rate is admitted by each worker
// from requests leased from the primary's bucket (RemoteLimits + RequestLeases against a
// LimitsHost, over memory-link.mjs and a fake clock). Never more admitted than one bucket
// of the policy would admit, few messages for a busy client, one at a time near the limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config.js';
import { LimitsHost } from '../../dist/cluster/limits-host.js';
import { RemoteLimits } from '../../dist/cluster/remote-limits.js';
import { TokenBucket } from '../../dist/resilience/token-bucket.js';
import { FakeClock } from './orchestration-fakes.mjs';
import { flush, memoryCluster } from './memory-link.mjs';
import { prng } from './prng.mjs';

const rate = (capacity, windowSec) => ({ requests: { capacity, windowSec }, tokensPerMinute: null, maxParallel: null, weight: 1 });

/** A primary and `n` workers sharing one clock; `sent` lists every message the workers sent. */
function cluster(n) {
  const clock = new FakeClock();
  const net = memoryCluster();
  const host = new LimitsHost(net.primary, parseConfig({}), clock);
  const sent = [];
  const workers = [];
  for (let i = 1; i <= n; i++) {
    const link = net.worker(i);
    const send = link.send;
    link.send = (msg) => {
      sent.push({ from: i, ...msg });
      send(msg);
    };
    workers.push(new RemoteLimits(link, clock, { workers: n }));
  }
  const leases = () => sent.filter((m) => m.op === 'lease');
  return { clock, net, host, workers, sent, leases };
}

test('random enters from three workers for three clients: never an admission a single bucket of the policy would refuse', async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const rand = prng(seed);
    const { clock, net, workers, leases } = cluster(3);
    const clients = ['a', 'b', 'c'].map((key) => {
      const capacity = 1 + Math.floor(rand() * 60);
      const windowSec = 1 + Math.floor(rand() * 30);
      return { key, policy: rate(capacity, windowSec), model: new TokenBucket(capacity, capacity / windowSec), admitted: 0, refused: 0, failedOpen: 0 };
    });
    for (let step = 0; step < 600; step++) {
      const c = clients[Math.floor(rand() * clients.length)];
      const w = workers[Math.floor(rand() * workers.length)];
      const burst = 1 + Math.floor(rand() * 4);
      for (let i = 0; i < burst; i++) {
        w.enter(c.key, c.policy).then((e) => {
          if (!e.ok) return c.refused++;
          if (e.requests === null) return c.failedOpen++; // the primary silent past the timeout (the clock jumped): admitted outside the limits, as ever
          c.admitted++;
          // the model sees the union of every worker's admissions, each when it was admitted
          assert.ok(c.model.take(clock.now()).ok, `seed ${seed}: ${c.key} (${c.policy.requests.capacity}/${c.policy.requests.windowSec}s) admitted at ${clock.now()} beyond one bucket`);
          w.leave(e.ticket, 0);
        });
      }
      const settled = rand() < 0.6;
      if (settled) await net.settle();
      const r = rand();
      // long jumps only with nothing in flight (past 1 s the worker would fail open); short ones also mid-flight
      if (r < 0.1 && settled) clock.advance(Math.floor(rand() * 5000)); // fires the sweeps on the way
      else if (r < 0.6) clock.advance(Math.floor(rand() * 200));
    }
    await net.settle();
    assert.ok(clients.every((c) => c.admitted > 10) && clients.some((c) => c.refused > 10), `seed ${seed}: the run exercised both sides`);
    assert.ok(leases().some((m) => m.want > 1), `seed ${seed}: some leases were batches`);
    assert.equal(workers.reduce((n, w) => n + w.failedOpen, 0), 0);
  }
});

test('one worker, ample capacity: nothing refused that a single bucket admits (here: nothing at all)', async () => {
  const rand = prng(42);
  const { clock, net, workers } = cluster(1);
  const [w] = workers;
  const p = rate(1000, 60);
  const model = new TokenBucket(1000, 1000 / 60);
  let admitted = 0;
  for (let step = 0; step < 800; step++) {
    const e = w.enter('alice', p);
    await net.settle();
    const got = await e;
    assert.equal(got.ok, model.take(clock.now()).ok, `step ${step}`);
    if (got.ok) admitted++;
    clock.advance(Math.floor(rand() * 40));
  }
  assert.equal(admitted, 800);
});

test('steady load far from the limit: 1,000 requests cost a few dozen leases, each at most the cap', async () => {
  const { net, workers, leases } = cluster(2);
  const [w] = workers;
  const p = rate(100_000, 60); // cap min(64, 100000 / 8)
  let admitted = 0;
  for (let i = 0; i < 100; i++) {
    const batch = [];
    for (let j = 0; j < 10; j++) batch.push(w.enter('alice', p));
    await net.settle();
    for (const e of await Promise.all(batch)) {
      assert.equal(e.ok, true);
      w.leave(e.ticket, 0);
      admitted++;
    }
  }
  assert.equal(admitted, 1000);
  assert.ok(leases().length < 100, `${leases().length} leases`);
  assert.equal(Math.max(...leases().map((m) => m.want)), 64);
  // a smaller client: the cap is capacity / (4 × workers)
  const small = rate(400, 60);
  for (let i = 0; i < 300; i++) {
    const e = w.enter('bob', small);
    await net.settle();
    assert.equal((await e).ok, true);
  }
  const wants = leases().filter((m) => m.key === 'bob').map((m) => m.want);
  assert.deepEqual(wants.slice(0, 8), [1, 2, 4, 8, 16, 32, 50, 50]);
  assert.ok(wants.every((x) => x <= 50));
});

test('headers of leased requests count down as a single bucket would', async () => {
  const { net, workers } = cluster(1);
  const [w] = workers;
  const p = rate(100, 100); // cap 25
  const remaining = [];
  for (let i = 0; i < 8; i++) {
    const e = w.enter('alice', p);
    await net.settle();
    remaining.push((await e).requests.remaining);
  }
  assert.deepEqual(remaining, [99, 98, 97, 96, 95, 94, 93, 92]);
});

test('near the limit: capacity 5 gives two workers exactly 5 together, then refusals with a wait after which one is served', async () => {
  const { clock, net, workers, leases } = cluster(2);
  const p = rate(5, 60);
  const results = [];
  for (let i = 0; i < 10; i++) {
    const e = workers[i % 2].enter('alice', p);
    await net.settle();
    results.push(await e);
  }
  assert.equal(results.filter((e) => e.ok).length, 5);
  assert.ok(leases().every((m) => m.want === 1), 'one request at a time: the cap is max(1, floor(5 / 8))');
  const refused = results.slice(5);
  assert.ok(refused.every((e) => !e.ok && e.reason === 'requests'));
  // every request was lent in the last second: the bucket refills once those lends expire (1 s), then 12 s for one
  assert.deepEqual(refused.map((e) => e.retryAfterMs), [13_000, 13_000, 13_000, 13_000, 13_000]);
  assert.deepEqual(refused[0].requests, { limit: 5, remaining: 0, resetMs: 60_000 });
  clock.advance(12_999);
  let e = workers[0].enter('alice', p);
  await net.settle();
  assert.equal((await e).ok, false, 'not a millisecond early');
  clock.advance(1);
  e = workers[1].enter('alice', p);
  await net.settle();
  assert.equal((await e).ok, true, 'served when told');
});

test('unspent leased requests go back after LEASE_TTL, and the other worker can then have them', async () => {
  const { clock, net, workers, sent } = cluster(1);
  const b = new RemoteLimits(net.worker(2), clock, { workers: 1 });
  const [a] = workers;
  const p = rate(8, 3600); // cap 2
  for (let i = 0; i < 2; i++) {
    const e = a.enter('alice', p);
    await net.settle();
    assert.equal((await e).ok, true);
  }
  // a spent 1 + 1 of a lease of 2: one unspent; b can have the other 5
  const got = [];
  for (let i = 0; i < 7; i++) {
    const e = b.enter('alice', p);
    await net.settle();
    got.push((await e).ok);
  }
  assert.deepEqual(got, [true, true, true, true, true, false, false]);
  clock.advance(1000); // a's sweep: its lease ended
  await net.settle();
  assert.deepEqual(sent.filter((m) => m.op === 'unlease').map(({ key, n }) => ({ key, n })), [{ key: 'alice', n: 1 }]);
  const e = b.enter('alice', p);
  await net.settle();
  assert.equal((await e).ok, true, 'the request a did not spend');
  const again = b.enter('alice', p);
  await net.settle();
  assert.equal((await again).ok, false, 'and no more');
  assert.equal(clock.pending('proxy') <= 2, true, 'one sweep timer per worker at most');
});

test('ten enters at once with no credit: one lease message, and all ten served as its answers come', async () => {
  const { net, workers, leases } = cluster(1);
  const [w] = workers;
  const p = rate(1000, 60);
  const all = [];
  for (let i = 0; i < 10; i++) all.push(w.enter('alice', p));
  await flush();
  assert.equal(leases().length, 1, 'coalesced');
  for (let round = 0; round < 10 && net.queue.length > 0; round++) {
    net.deliver(); // the lease to the primary
    net.deliver(); // its answer
    await flush();
    assert.ok(net.queue.filter((e) => e.msg.op === 'lease').length <= 1, 'never two in flight for one client');
  }
  const got = await Promise.all(all);
  assert.ok(got.every((e) => e.ok));
  assert.deepEqual(leases().map((m) => m.want), [1, 2, 4, 8]);
});

test('a policy change gives the old credit back before the new lease; a lost link fails open and forgets credits', async () => {
  const { net, workers, sent } = cluster(1);
  const [w] = workers;
  const five = rate(40, 60); // cap 10
  for (let i = 0; i < 2; i++) {
    const e = w.enter('alice', five);
    await net.settle();
    await e;
  }
  const same = { ...five, requests: { ...five.requests } }; // equal contents: the same credit, no message
  const e0 = w.enter('alice', same);
  await flush();
  assert.equal(net.queue.length, 0);
  assert.equal((await e0).ok, true);
  const e00 = w.enter('alice', five); // a lease of 4: 3 left
  await net.settle();
  await e00;
  sent.length = 0;
  const e1 = w.enter('alice', rate(80, 60)); // a reload
  await flush();
  assert.deepEqual(sent.map((m) => m.op), ['unlease', 'lease']);
  assert.equal(sent[0].n, 3);
  await net.settle();
  assert.equal((await e1).requests.limit, 80);
  const waiting = w.enter('alice', rate(80, 60));
  const more = w.enter('bob', rate(80, 60));
  net.take(() => true);
  w.close();
  const [a, b] = await Promise.all([waiting, more]);
  assert.deepEqual([a.ok, a.requests, b.ok, b.requests], [true, null, true, null]);
  assert.equal(w.failedOpen, 2, 'both were waiting on a lease');
  sent.length = 0;
  const later = await w.enter('alice', rate(80, 60));
  assert.equal(later.ok, true);
  assert.equal(later.requests, null, 'credits forgotten: fails open');
  assert.equal(sent.length, 0, 'nothing sent on a lost link');
});

test('a lease answered after its enter failed open goes back unspent', async () => {
  const clock = new FakeClock();
  const net = memoryCluster();
  const host = new LimitsHost(net.primary, parseConfig({}), clock);
  const w = new RemoteLimits(net.worker(1), clock, { timeoutMs: 500 });
  const p = rate(3, 3600);
  const e = w.enter('alice', p);
  await flush();
  const held = net.take(() => true);
  clock.advance(500);
  assert.deepEqual((await e).requests, null, 'failed open');
  net.deliverTaken(held); // the primary lends 1, too late
  await net.settle();
  assert.equal(host.limits.size, 1);
  const got = [];
  for (let i = 0; i < 4; i++) {
    const x = w.enter('alice', p);
    await net.settle();
    got.push((await x).ok);
  }
  assert.deepEqual(got, [true, true, true, false], 'the late lend came back: all 3 are there');
});

test('a credit held while the bucket refills: what is lent stays counted, so the credit and a refilled bucket never add up to more than one bucket', async () => {
  const { clock, net, workers } = cluster(1);
  const b = new RemoteLimits(net.worker(2), clock, { workers: 1 });
  const [a] = workers;
  const p = rate(40, 2); // 20 a second; cap 10
  const model = new TokenBucket(40, 20);
  const admit = async (w) => {
    const e = w.enter('alice', p);
    await net.settle();
    const got = await e;
    if (got.ok) assert.ok(model.take(clock.now()).ok, `admitted at ${clock.now()} beyond one bucket`);
    return got.ok;
  };
  for (let i = 0; i < 8; i++) assert.equal(await admit(a), true); // leases of 1, 2, 4, then 8: 7 unspent
  clock.t += 900; // the bucket refills meanwhile (no timer fires: the lease is still on)
  let byB = 0;
  while (await admit(b)) byB++;
  assert.equal(byB, 25, '40 - 15 lent: the refill stops at the lent ones');
  for (let i = 0; i < 7; i++) assert.equal(await admit(a), true, 'a spends its credit');
  assert.equal(await admit(a), false);
});

test('a credit is never spent after its lease ended, even when the sweep is late', async () => {
  const { clock, net, workers, sent } = cluster(1);
  const [w] = workers;
  const p = rate(40, 60);
  for (let i = 0; i < 2; i++) {
    const e = w.enter('alice', p);
    await net.settle();
    await e;
  }
  sent.length = 0; // a lease of 2, 1 unspent
  clock.t += 1000; // the timer has not run
  const e = w.enter('alice', p);
  await flush();
  assert.deepEqual(sent.map((m) => m.op), ['unlease', 'lease']);
  await net.settle();
  assert.equal((await e).ok, true);
});
