// Summing workers' registries: snapshots as plain data, counters and histograms added,
// gauges summed or kept apart per worker, dead workers' counts kept, a worker that did not
// answer shown with its last counters and counted. Asserts on rendered exposition lines.
// The last tests wire MetricsSum behind a real ScrapeCollector, as primary.ts does, and move
// workers' exits through the rounds: the summed counter must never go down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../dist/metrics/registry.js';
import { mergeSnapshots } from '../../dist/metrics/snapshot.js';
import { MetricsSum, RULES } from '../../dist/cluster/metrics-sum.js';

/** A worker's registry with the shapes the proxy uses. */
function worker({ requests = 0, latencies = [], inFlight = 0, rss = 0 } = {}) {
  const r = new Registry();
  const c = r.counter('openai_proxy_requests_total', 'Requests.', ['method', 'endpoint', 'status']);
  if (requests > 0) c.labels('POST', '/v1/chat/completions', '200').inc(requests);
  const h = r.histogram('openai_proxy_request_duration_seconds', 'Latency.', ['endpoint'], [0.1, 1]);
  for (const v of latencies) h.labels('/v1/chat/completions').observe(v);
  r.gauge('openai_proxy_in_flight_requests', 'In flight.').set(inFlight);
  r.gauge('process_resident_memory_bytes', 'RSS.', [], (g) => g.set(rss));
  return r;
}
const lines = (text) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
const snap = (r) => JSON.parse(JSON.stringify(r.snapshot())); // what crosses IPC

test('a snapshot is plain data with label values, histogram counts per bucket and collected gauges', () => {
  const s = snap(worker({ requests: 2, latencies: [0.05, 0.5, 5], rss: 7 }));
  const byName = Object.fromEntries(s.map((f) => [f.name, f]));
  assert.deepEqual(byName.openai_proxy_requests_total.series, [{ labels: ['POST', '/v1/chat/completions', '200'], value: 2 }]);
  assert.deepEqual(byName.openai_proxy_request_duration_seconds.buckets, [0.1, 1]);
  assert.deepEqual(byName.openai_proxy_request_duration_seconds.series, [{ labels: ['/v1/chat/completions'], counts: [1, 1, 1], sum: 5.55, count: 3 }]);
  assert.deepEqual(byName.process_resident_memory_bytes.series, [{ labels: [], value: 7 }], 'the collect callback ran');
});

test('counters and histograms add up, summed gauges add up, other gauges get a worker label', () => {
  const merged = mergeSnapshots(
    [
      { source: '1', families: snap(worker({ requests: 3, latencies: [0.05, 0.5], inFlight: 2, rss: 100 })) },
      { source: '2', families: snap(worker({ requests: 4, latencies: [0.5, 5], inFlight: 1, rss: 200 })) },
    ],
    RULES,
  ).render();
  assert.deepEqual(lines(merged), [
    'openai_proxy_in_flight_requests 3',
    'openai_proxy_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="0.1"} 1',
    'openai_proxy_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="1"} 3',
    'openai_proxy_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"} 4',
    'openai_proxy_request_duration_seconds_sum{endpoint="/v1/chat/completions"} 6.05',
    'openai_proxy_request_duration_seconds_count{endpoint="/v1/chat/completions"} 4',
    'openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"} 7',
    'process_resident_memory_bytes{worker="1"} 100',
    'process_resident_memory_bytes{worker="2"} 200',
  ]);
  assert.equal(merged.match(/^# TYPE openai_proxy_requests_total counter$/gm).length, 1);
});

test('a family declared differently by a part (other labels or buckets) keeps the first and leaves the odd series out', () => {
  const odd = new Registry();
  odd.counter('openai_proxy_requests_total', 'Requests.', ['method']).labels('GET').inc(50);
  odd.histogram('openai_proxy_request_duration_seconds', 'Latency.', ['endpoint'], [0.5]).labels('/x').observe(0.1);
  const merged = mergeSnapshots([{ source: '1', families: snap(worker({ requests: 1 })) }, { source: '2', families: snap(odd) }], RULES).render();
  assert.match(merged, /^openai_proxy_requests_total\{method="POST",endpoint="\/v1\/chat\/completions",status="200"\} 1$/m);
  assert.doesNotMatch(merged, /method="GET"|endpoint="\/x"/);
});

test('a label value needing escapes survives the trip and is escaped once', () => {
  const r = new Registry();
  r.counter('openai_proxy_tokens_total', 'Tokens.', ['model', 'kind']).labels('a"b\\c\nd', 'prompt').inc(1);
  const text = mergeSnapshots([{ source: '1', families: snap(r) }, { source: '2', families: snap(r) }], RULES).render();
  assert.match(text, /^openai_proxy_tokens_total\{model="a\\"b\\\\c\\nd",kind="prompt"\} 2$/m);
});

const SERIES = 'openai_proxy_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"}';
const value = (text) => Number(lines(text).find((l) => l.startsWith(SERIES)).split(' ').at(-1));

test('a worker that exits keeps its last counts in every later sum: the total never goes down', () => {
  const sum = new MetricsSum();
  const own = snap(new Registry());
  assert.equal(value(sum.render(new Map([[1, snap(worker({ requests: 5 }))], [2, snap(worker({ requests: 3 }))]]), own)), 8);
  sum.exited(1);
  assert.equal(value(sum.render(new Map([[2, snap(worker({ requests: 4 }))], [3, snap(worker({ requests: 1 }))]]), own)), 10, '5 retired + 4 + 1');
  sum.exited(2);
  sum.exited(3);
  const text = sum.render(new Map([[4, snap(worker({ requests: 0, inFlight: 1 }))]]), own);
  assert.equal(value(text), 10);
  assert.match(text, /^openai_proxy_in_flight_requests 1$/m, 'gauges of the dead are not kept');
  assert.doesNotMatch(text, /worker="1"/);
});

test('a worker that did not answer shows its last counters but not its gauges', () => {
  const sum = new MetricsSum();
  sum.render(new Map([[1, snap(worker({ requests: 5, rss: 9 }))], [2, snap(worker({ requests: 3 }))]]), []);
  const text = sum.render(new Map([[2, snap(worker({ requests: 4, rss: 8 }))]]), []);
  assert.equal(value(text), 9);
  assert.doesNotMatch(text, /process_resident_memory_bytes\{worker="1"\}/);
  assert.match(text, /process_resident_memory_bytes\{worker="2"\} 8/);
});

test('a worker whose part could not be made (sent as null) is shown from its last answer', () => {
  const sum = new MetricsSum();
  sum.render(new Map([[1, snap(worker({ requests: 5 }))]]), []);
  assert.equal(value(sum.render(new Map([[1, null]]), [])), 5);
});

test('the primary\'s own families are added as the source "primary"', () => {
  const own = new Registry();
  own.gauge('openai_proxy_workers', 'Workers.').set(2);
  own.gauge('process_resident_memory_bytes', 'RSS.').set(11);
  const text = new MetricsSum().render(new Map([[1, snap(worker({ rss: 5 }))]]), snap(own));
  assert.match(text, /^openai_proxy_workers 2$/m);
  assert.match(text, /^process_resident_memory_bytes\{worker="primary"\} 11$/m);
  assert.match(text, /^process_resident_memory_bytes\{worker="1"\} 5$/m);
});

// --- the sum over a real scrape round: the collector and MetricsSum wired as primary.ts wires them
import { memoryCluster } from './memory-link.mjs';
import { FakeClock } from './orchestration-fakes.mjs';
import { ScrapeClient, ScrapeCollector } from '../../dist/cluster/scrape.js';
import { prng } from './prng.mjs';

const TOTAL = 'openai_proxy_requests_total';
const countsOf = (n) => {
  const r = new Registry();
  r.counter(TOTAL, 'Requests.').inc(n);
  return snap(r);
};
const totalOf = (text) => Number(/^openai_proxy_requests_total (\S+)$/m.exec(text)?.[1] ?? 0);
const valueIn = (families) => families.find((f) => f.name === TOTAL)?.series[0]?.value ?? 0;

/**
 * A primary with MetricsSum behind a ScrapeCollector and workers over memoryCluster. A
 * worker goes in two steps, as under node:cluster: `exit` (the collector stops waiting for
 * it) then `gone` (exited and disconnected: primary.ts's goneIfBoth calls MetricsSum.exited
 * and drops it from the targets).
 */
function summedCluster(ids) {
  const cl = memoryCluster();
  const clock = new FakeClock();
  const sum = new MetricsSum();
  const targets = new Set();
  const renders = [];
  const onRender = [];
  new ScrapeCollector(cl.primary, clock, 1000, () => [...targets], {
    metrics: (parts) => {
      const text = sum.render(parts, []);
      renders.push(totalOf(text));
      for (const fn of onRender) fn(parts);
      return text;
    },
  });
  const counts = new Map();
  const clients = new Map();
  const join = (id) => {
    counts.set(id, 0);
    clients.set(id, new ScrapeClient(cl.worker(id), clock, 1500, { metrics: () => countsOf(counts.get(id)) }));
    targets.add(id);
  };
  for (const id of ids) join(id);
  return {
    cl, clock, sum, counts, clients, renders, onRender, join,
    exit: (id) => { clients.delete(id); cl.exit(id); },
    gone: (id) => { targets.delete(id); sum.exited(id); },
  };
}

test('a worker that answers a round and is gone before it completes is counted once, and the sum never goes down', async () => {
  const c = summedCluster([1, 2]);
  c.counts.set(1, 10).set(2, 5);
  let p = c.clients.get(2).ask('metrics');
  await c.cl.settle();
  assert.equal(totalOf(await p), 15);
  c.counts.set(1, 12).set(2, 6);
  p = c.clients.get(2).ask('metrics');
  c.cl.deliver(); // the ask reaches the primary, which sends both collects
  c.cl.deliver(); // both collects reach the workers, whose parts are queued
  const held = c.cl.take((e) => e.from === 2); // worker 2 is slow
  c.cl.deliver(); // worker 1's part (12) reaches the primary
  c.exit(1);
  c.gone(1); // retired with 10, its last rendered answer: the 12 of this round must not be added too
  c.cl.deliverTaken(held);
  await c.cl.settle();
  assert.equal(totalOf(await p), 16, '10 retired + 6');
  c.counts.set(2, 7);
  p = c.clients.get(2).ask('metrics');
  await c.cl.settle();
  assert.equal(totalOf(await p), 17);
  assert.deepEqual(c.renders, [15, 16, 17]);
});

test('a worker that exits before answering keeps its last counts in the scrape that was waiting for it', async () => {
  const c = summedCluster([1, 2]);
  c.counts.set(1, 10).set(2, 5);
  let p = c.clients.get(2).ask('metrics');
  await c.cl.settle();
  assert.equal(totalOf(await p), 15);
  c.counts.set(2, 6);
  p = c.clients.get(2).ask('metrics');
  c.cl.deliver(); // the ask
  c.cl.deliver(); // the collects: worker 1's part is queued
  c.cl.take((e) => e.from === 1); // and lost: worker 1 dies
  c.exit(1); // the round stops waiting for it and completes; primary.ts has not called exited yet
  await c.cl.settle();
  assert.equal(totalOf(await p), 16, 'worker 1 shown with its last 10');
  c.gone(1);
  p = c.clients.get(2).ask('metrics');
  await c.cl.settle();
  assert.equal(totalOf(await p), 16);
});

test('property: over random interleavings of counts, asks, deliveries, exits and timeouts the summed counter never goes down, never counts twice, and is exact once all answer', async () => {
  for (let seed = 1; seed <= 150; seed++) {
    const rnd = prng(seed);
    const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
    const c = summedCluster([1, 2, 3]);
    let nextId = 4;
    const exiting = new Set(); // exited, not yet gone
    const retired = new Set(); // gone: MetricsSum.exited called
    const seen = new Map(); // each worker's value in the last render before it was gone
    c.onRender.push((parts) => {
      for (const [id, families] of parts) if (!retired.has(id)) seen.set(id, valueIn(families));
    });
    const asks = [];
    for (let step = 0; step < 200; step++) {
      const live = [...c.clients.keys()];
      const r = rnd();
      if (r < 0.25 && live.length > 0) {
        const id = pick(live);
        c.counts.set(id, c.counts.get(id) + 1 + Math.floor(rnd() * 5));
      } else if (r < 0.4 && live.length > 0) {
        asks.push(c.clients.get(pick(live)).ask('metrics').catch(() => null));
      } else if (r < 0.75 && c.cl.queue.length > 0) {
        // one message, the first between a random pair: IPC keeps each channel's order, not the order across workers
        const { from, to } = pick(c.cl.queue);
        const i = c.cl.queue.findIndex((e) => e.from === from && e.to === to);
        c.cl.deliverTaken(c.cl.queue.splice(i, 1));
      } else if (r < 0.82 && live.length > 1) {
        const id = pick(live);
        c.exit(id);
        exiting.add(id);
      } else if (r < 0.9 && exiting.size > 0) {
        const id = pick([...exiting]);
        exiting.delete(id);
        retired.add(id);
        c.gone(id);
      } else if (r < 0.94) {
        c.join(nextId++);
      } else {
        c.clock.advance(Math.floor(rnd() * 1200));
      }
      await flushAll();
    }
    for (const id of exiting) {
      retired.add(id);
      c.gone(id);
    }
    await c.cl.settle();
    c.clock.advance(5000);
    await c.cl.settle();
    await Promise.all(asks);
    const asker = [...c.clients.keys()][0];
    const last = c.clients.get(asker).ask('metrics');
    await c.cl.settle();
    const final = totalOf(await last);

    const where = `seed ${seed}, renders ${c.renders.join(' ')}`;
    for (let i = 1; i < c.renders.length; i++) assert.ok(c.renders[i] >= c.renders[i - 1], `went down at render ${i}: ${where}`);
    const everything = [...c.counts.values()].reduce((a, b) => a + b, 0);
    for (const v of c.renders) assert.ok(v <= everything, `more than was ever counted (${v} > ${everything}): ${where}`);
    let exact = 0;
    for (const id of c.clients.keys()) exact += c.counts.get(id);
    for (const id of retired) exact += seen.get(id) ?? 0;
    assert.equal(final, exact, `live counts + each dead worker's last rendered answer: ${where}`);
  }
});

const flushAll = () => new Promise((resolve) => setImmediate(resolve));
