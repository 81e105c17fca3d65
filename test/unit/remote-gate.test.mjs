// MAX_CONCURRENT_REQUESTS shared by workers: one ConcurrencyGate and fair queue in the
// primary (GateHost, built by LimitsHost), a RemoteGate in each worker, over an in-memory
// link and a fake clock. The cap holds across workers, fair order compares clients of
// different workers, and nothing a worker gave up or a dead worker held keeps a slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config.js';
import { LimitsHost } from '../../dist/cluster/limits-host.js';
import { RemoteGate } from '../../dist/cluster/remote-gate.js';
import { RemoteLimits } from '../../dist/cluster/remote-limits.js';
import { sharedLimitsFor } from '../../dist/cluster/shared-limits.js';
import { ConcurrencyGate, GateRejected } from '../../dist/resilience/concurrency-gate.js';
import { LocalLimits } from '../../dist/resilience/local-limits.js';
import { FakeClock } from './orchestration-fakes.mjs';
import { flush, memoryCluster } from './memory-link.mjs';
import { prng } from './prng.mjs';

function cluster(n = 2, env = {}) {
  const config = parseConfig({ MAX_CONCURRENT_REQUESTS: '2', QUEUE_SIZE: '4', QUEUE_TIMEOUT: '30', ...env });
  const clock = new FakeClock();
  const net = memoryCluster();
  const host = new LimitsHost(net.primary, config, clock);
  const links = [];
  const workers = [];
  for (let i = 1; i <= n; i++) {
    links.push(net.worker(i));
    workers.push(new RemoteGate(links.at(-1), clock, { queueTimeoutMs: config.queueTimeoutMs }));
  }
  return { config, clock, net, host, gate: host.gate, links, workers };
}

/** Starts an acquire and records how it settles. */
function track(promise) {
  const s = { status: 'pending', value: undefined };
  promise.then(
    (value) => Object.assign(s, { status: 'granted', value }),
    (value) => Object.assign(s, { status: 'rejected', value }),
  );
  return s;
}

const client = (key, weight = 1) => ({ key, weight });

test('a cap of 2 holds across two workers: the third request waits for a slot, whichever worker frees it', async () => {
  const { net, gate, workers } = cluster();
  const [a, b] = workers;
  const a1 = track(a.acquire(client('x')));
  const b1 = track(b.acquire(client('y')));
  const b2 = track(b.acquire(client('y')));
  await net.settle();
  assert.deepEqual([a1.status, b1.status, b2.status], ['granted', 'granted', 'pending']);
  assert.equal(gate.inFlight, 2);
  assert.equal(gate.queued, 1);
  assert.deepEqual([a.inFlight, b.inFlight, a.queued, b.queued], [1, 1, 0, 1], 'each worker counts its part');
  assert.deepEqual([...b.queuedBy()], [['y', 1]]);
  a1.value();
  a1.value(); // twice: one slot
  await net.settle();
  assert.equal(b2.status, 'granted');
  assert.equal(gate.inFlight, 2);
  assert.equal(a.inFlight + b.inFlight, 2);
  assert.equal(b.waits().y.count, 2);
  b1.value();
  b2.value();
  await net.settle();
  assert.equal(gate.inFlight, 0);
});

test('random acquires, releases and give-ups from three workers never hold more than the cap; every count returns to 0', async () => {
  for (let seed = 1; seed <= 5; seed++) {
    const rand = prng(seed);
    const { net, gate, workers } = cluster(3, { MAX_CONCURRENT_REQUESTS: '3', QUEUE_SIZE: '30' });
    const granted = [];
    const waiting = [];
    let holding = 0;
    let peak = 0;
    for (let step = 0; step < 400; step++) {
      const r = rand();
      if (r < 0.45) {
        const w = workers[Math.floor(rand() * 3)];
        const ac = new AbortController();
        const entry = { ac, s: null };
        entry.s = w.acquire(client(`c${Math.floor(rand() * 4)}`), ac.signal).then(
          (release) => {
            holding++;
            peak = Math.max(peak, holding);
            assert.ok(holding <= 3, `seed ${seed}: ${holding} slots held at once`);
            waiting.splice(waiting.indexOf(entry), 1);
            granted.push(release);
          },
          () => waiting.splice(waiting.indexOf(entry), 1),
        );
        waiting.push(entry);
      } else if (r < 0.8 && granted.length > 0) {
        const [release] = granted.splice(Math.floor(rand() * granted.length), 1);
        holding--;
        release();
      } else if (waiting.length > 0) {
        waiting[Math.floor(rand() * waiting.length)].ac.abort(new Error('client gone'));
      }
      if (rand() < 0.4) await net.settle();
    }
    await net.settle();
    assert.equal(peak, 3, `seed ${seed}: the cap was reached`);
    assert.equal(gate.inFlight, workers.reduce((n, w) => n + w.inFlight, 0), `seed ${seed}: the workers' slots add up to the primary's`);
    assert.equal(gate.queued, workers.reduce((n, w) => n + w.queued, 0), `seed ${seed}: and their queues to its queue`);
    for (const e of [...waiting]) e.ac.abort(new Error('end'));
    for (const release of granted.splice(0)) release();
    await net.settle();
    for (const release of granted.splice(0)) release(); // granted while the others let go
    await net.settle();
    assert.equal(gate.inFlight, 0, `seed ${seed}: no slot left held`);
    assert.equal(gate.queued, 0);
    assert.equal(workers.reduce((n, w) => n + w.inFlight + w.queued, 0), 0);
  }
});

/**
 * One slot. A flooding client on worker 1 holds it and queues three more; a light client on
 * worker 2 queues one after them. Each request is charged 100 tokens when it ends: the
 * flood's counter passes the light client's at its first charge (VTC), so in fair order the
 * light client goes next, in FIFO after the whole flood.
 */
async function grantOrder(order) {
  const { net, workers } = cluster(2, { MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '10', QUEUE_ORDER: order });
  const [a, b] = workers;
  const seen = [];
  const go = (w, key) => w.acquire(client(key)).then((release) => seen.push({ w, key, release }));
  void go(a, 'flood');
  await net.settle();
  for (let i = 0; i < 3; i++) void go(a, 'flood');
  await net.settle();
  void go(b, 'light');
  await net.settle();
  for (let i = 0; i < 4; i++) {
    const { w, key, release } = seen[i];
    w.charge(key, 100);
    release();
    await net.settle();
  }
  return seen.map((s) => s.key);
}

test('fair order holds across workers: the light client of another worker goes before the flood, as on one gate; fifo keeps arrival order', async () => {
  assert.deepEqual(await grantOrder('fair'), ['flood', 'light', 'flood', 'flood', 'flood']);
  assert.deepEqual(await grantOrder('fifo'), ['flood', 'flood', 'flood', 'flood', 'light']);
  // the same script on one local gate gives the same order
  const clock = new FakeClock();
  const local = new ConcurrencyGate({ maxConcurrent: 1, queueSize: 10, queueTimeoutMs: 30_000, clock });
  const seen = [];
  const go = (key) => local.acquire(client(key)).then((release) => seen.push({ key, release }));
  void go('flood');
  await flush();
  for (let i = 0; i < 3; i++) void go('flood');
  void go('light');
  for (let i = 0; i < 4; i++) {
    await flush();
    local.charge(seen[i].key, 100);
    seen[i].release();
  }
  await flush();
  assert.deepEqual(
    seen.map((s) => s.key),
    ['flood', 'light', 'flood', 'flood', 'flood'],
  );
});

test('a request whose client leaves while queued is out of the primary\'s queue', async () => {
  const { net, gate, workers } = cluster(2, { MAX_CONCURRENT_REQUESTS: '1' });
  const [a, b] = workers;
  const held = track(a.acquire(client('x')));
  const ac = new AbortController();
  const queued = track(b.acquire(client('y'), ac.signal));
  await net.settle();
  assert.equal(gate.queued, 1);
  const gone = new Error('client gone');
  ac.abort(gone);
  await net.settle();
  assert.equal(queued.status, 'rejected');
  assert.equal(queued.value, gone);
  assert.equal(gate.queued, 0);
  assert.equal(b.queued, 0);
  assert.deepEqual([...b.queuedBy()], []);
  held.value();
  await net.settle();
  assert.equal(gate.inFlight, 0, 'the freed slot went to nobody');
  assert.equal((await Promise.allSettled([b.acquire(client('y'), AbortSignal.abort(gone))]))[0].reason, gone, 'an aborted signal is refused at once');
});

test('a grant that arrives after its request gave up is dropped, and the primary gives the slot to the next', async () => {
  const { net, gate, workers } = cluster(2, { MAX_CONCURRENT_REQUESTS: '1' });
  const [a, b] = workers;
  const first = track(a.acquire(client('x')));
  const ac = new AbortController();
  const late = track(b.acquire(client('y'), ac.signal));
  const next = track(a.acquire(client('z')));
  await net.settle();
  first.value();
  net.deliver(); // the release reaches the primary, which grants y: the grant is on its way to worker 2
  await flush();
  assert.equal(net.queue.filter((e) => e.msg.op === 'granted').length, 1);
  ac.abort(new Error('client gone')); // before the grant lands
  await net.settle();
  assert.equal(late.status, 'rejected');
  assert.equal(b.inFlight, 0, 'worker 2 holds nothing');
  assert.equal(next.status, 'granted', 'the slot went on to the next waiter');
  assert.equal(gate.inFlight, 1);
  next.value();
  await net.settle();
  assert.equal(gate.inFlight, 0);
});

test('a worker that exits gives back its slots and its places in the queue', async () => {
  const { net, gate, host, workers } = cluster(2);
  const [a, b] = workers;
  void a.acquire(client('x'));
  void a.acquire(client('x'));
  void a.acquire(client('x'));
  await net.settle();
  const waiter = track(b.acquire(client('y')));
  await net.settle();
  assert.deepEqual([gate.inFlight, gate.queued], [2, 2]);
  net.exit(1);
  await net.settle();
  assert.equal(waiter.status, 'granted');
  assert.deepEqual([gate.inFlight, gate.queued], [1, 0]);
  assert.equal(host.heldBy(1), 0);
  waiter.value();
  await net.settle();
  assert.equal(gate.inFlight, 0);
});

test('refusals made by the primary reach the worker: QUEUE_TIMEOUT on its clock, queue_full and a client\'s share', async () => {
  const { clock, net, workers } = cluster(2, { MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '2' });
  const [a, b] = workers;
  void a.acquire(client('x'));
  const w1 = track(a.acquire(client('x')));
  const share = track(a.acquire(client('x')));
  const w2 = track(b.acquire(client('y')));
  const full = track(b.acquire(client('z')));
  await net.settle();
  assert.equal(share.status, 'rejected');
  assert.ok(share.value instanceof GateRejected);
  assert.deepEqual([share.value.reason, share.value.perClient], ['queue_full', true]);
  assert.deepEqual([full.value.reason, full.value.perClient], ['queue_full', false]);
  clock.advance(30_000); // the primary's QUEUE_TIMEOUT
  await net.settle();
  assert.equal(w1.value.reason, 'queue_timeout');
  assert.equal(w2.value.reason, 'queue_timeout');
  assert.deepEqual([a.queued, b.queued], [0, 0]);
});

test('a primary that does not answer: the worker refuses after QUEUE_TIMEOUT + grace (fails closed); a late grant is given back', async () => {
  const { clock, net, gate, workers } = cluster(1, { QUEUE_TIMEOUT: '2' });
  const [w] = workers;
  const stuck = track(w.acquire(client('x')));
  const held = net.take(() => true);
  clock.advance(2999);
  await flush();
  assert.equal(stuck.status, 'pending');
  clock.advance(1);
  await flush();
  assert.equal(stuck.status, 'rejected');
  assert.equal(stuck.value.reason, 'queue_timeout');
  net.deliverTaken(held); // the primary wakes: it grants, the worker already let go
  await net.settle();
  assert.equal(gate.inFlight, 0, 'the late grant was given back');
  assert.equal(w.inFlight, 0);
});

test('the link lost: waiting requests are refused now, later ones at once, and nothing more is sent', async () => {
  const { net, workers } = cluster(1, { MAX_CONCURRENT_REQUESTS: '1' });
  const [w] = workers;
  const granted = track(w.acquire(client('x')));
  await net.settle();
  const waiting = track(w.acquire(client('x')));
  net.take(() => true);
  w.close();
  await flush();
  assert.equal(waiting.value.reason, 'queue_timeout');
  await assert.rejects(w.acquire(client('x')), GateRejected);
  await assert.rejects(w.acquire(client('x', 0)), RangeError);
  w.charge('x', 10);
  granted.value();
  assert.equal(net.queue.length, 0);
  assert.equal(w.inFlight, 0);
});

test('a request the primary cannot queue (a bad weight) is answered with an error, which the worker throws', async () => {
  const { net, links, workers } = cluster(1);
  const [w] = workers;
  links[0].send({ ch: 'gate', op: 'acquire', id: 77, key: 'x', weight: -1 }); // as a broken worker would
  links[0].send({ ch: 'gate', op: 'nonsense' });
  net.deliver();
  await flush();
  const [answer] = net.take(() => true);
  assert.equal(answer.msg.op, 'rejected');
  assert.equal(answer.msg.reason, 'error');
  assert.match(answer.msg.message, /weight/);
  const pending = track(w.acquire(client('x')));
  const [sent] = net.take(() => true);
  net.primary.sendTo(1, { ...answer.msg, id: sent.msg.id });
  await net.settle();
  assert.equal(pending.status, 'rejected');
  assert.ok(!(pending.value instanceof GateRejected));
  assert.match(pending.value.message, /weight/);
  assert.equal(w.queued, 0);
});

test('sharedLimitsFor: a single process gets its own store and gate; a worker the primary\'s', async () => {
  const clock = new FakeClock();
  const config = parseConfig({ MAX_CONCURRENT_REQUESTS: '2' });
  const single = sharedLimitsFor(config, null, clock);
  assert.ok(single.limits instanceof LocalLimits);
  assert.ok(single.gate instanceof ConcurrencyGate);
  single.linkLost();
  assert.equal(sharedLimitsFor(parseConfig({}), null, clock).gate, null);
  const net = memoryCluster();
  const worker = sharedLimitsFor(config, net.worker(1), clock);
  assert.ok(worker.limits instanceof RemoteLimits);
  assert.ok(worker.gate instanceof RemoteGate);
  worker.linkLost();
  assert.equal((await worker.limits.enter('a', { requests: null, tokensPerMinute: null, maxParallel: null, weight: 1 })).ok, true, 'limits fail open');
  await assert.rejects(worker.gate.acquire(client('a')), GateRejected, 'the gate fails closed');
  assert.equal(sharedLimitsFor(parseConfig({}), net.worker(2), clock).gate, null);
});
