// Two workers' request handlers sharing the primary's limits and gate over an in-memory link:
// the whole path (admission, reservation, queue, settlement) against fake upstreams and a
// fake clock, checking on the answers what a client would see when its requests land on
// different workers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config.js';
import { LimitsHost } from '../../dist/cluster/limits-host.js';
import { sharedLimitsFor } from '../../dist/cluster/shared-limits.js';
import { ProxyHandler } from '../../dist/proxy/handler.js';
import { RetryBudget } from '../../dist/resilience/retry-budget.js';
import { Telemetry } from '../../dist/observe/telemetry.js';
import { ProxyStats } from '../../dist/stats.js';
import { Logger } from '../../dist/logging/logger.js';
import { Upstream } from '../../dist/upstream/upstream.js';
import { UpstreamSet } from '../../dist/upstream/upstream-set.js';
import { createBalancer } from '../../dist/upstream/balancer.js';
import { FakeClock, FakeResponse, FakeTransport, fakeRequest, UP } from './orchestration-fakes.mjs';
import { memoryCluster } from './memory-link.mjs';

const CHAT = Buffer.from(JSON.stringify({ model: 'm1', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }));
const ENV = { TIMEOUT: '5', MAX_RETRIES: '0', RATE_LIMIT_ENABLED: 'false', TOKEN_LIMIT_TPM: '1000000', MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '4', QUEUE_TIMEOUT: '30' };

/** A primary and two workers, each with its own handler and fake upstream; `scripts[i]` is worker i+1's upstream. */
function cluster(env, scripts) {
  const config = parseConfig({ ...ENV, ...env });
  const clock = new FakeClock();
  const net = memoryCluster();
  const host = new LimitsHost(net.primary, config, clock);
  const records = [];
  const workers = scripts.map((script, i) => {
    const shared = sharedLimitsFor(config, net.worker(i + 1), clock);
    const transport = new FakeTransport(clock, script);
    const spec = { name: 'u1', url: new URL('http://u1.internal:8000'), weight: 1, models: null, maxConcurrent: 0 };
    const upstream = new Upstream(spec, transport, null);
    const upstreams = new UpstreamSet([spec], () => upstream, createBalancer('round-robin', { random: () => 0.5 }));
    const telemetry = new Telemetry(new ProxyStats(() => clock.wallNow()), null, { write: (r) => records.push({ worker: i + 1, ...r }) });
    const logger = new Logger('ERROR', [{ writeLine() {} }], () => clock.wallNow());
    const handler = new ProxyHandler({ config, upstreams, clock, logger, telemetry, gate: shared.gate, limits: shared.limits, budget: new RetryBudget(), apiKeys: () => null });
    return { handler, transport, shared };
  });
  return { clock, net, host, workers, records };
}

/** Sends one request to a worker's handler; the returned state says when it ended and what the client got. */
function send(clock, worker) {
  const res = new FakeResponse();
  const s = { done: false, res };
  worker.handler.handle(fakeRequest(clock, { body: CHAT }), res).then(() => (s.done = true));
  return s;
}

/** Delivers messages and fires timers until every request ended; `each` runs at every step. */
async function drive(c, requests, each = () => {}) {
  for (let i = 0; i < 10_000 && !requests.every((r) => r.done); i++) {
    await c.net.settle();
    each();
    if (requests.every((r) => r.done)) break;
    if (!c.clock.fireNext()) break;
  }
  await c.net.settle();
  assert.ok(requests.every((r) => r.done), 'every request ended');
}

test('one upstream slot for two workers: the second worker\'s request waits in the primary\'s queue until the first stream ends', async () => {
  const c = cluster({}, [[UP.sse], [UP.ok]]);
  const first = send(c.clock, c.workers[0]);
  await c.net.settle();
  const second = send(c.clock, c.workers[1]);
  let sawQueued = false;
  let peak = 0;
  await drive(c, [first, second], () => {
    peak = Math.max(peak, c.host.gate.inFlight);
    if (c.workers[1].handler.lifetimes.byPhase().queued === 1) {
      sawQueued = true;
      assert.equal(c.host.gate.queued, 1);
      assert.equal(c.workers[1].shared.gate.queued, 1);
      assert.equal(c.workers[1].transport.sent, 0, 'not sent upstream while the other holds the slot');
    }
  });
  assert.ok(sawQueued, 'the second request was queued');
  assert.equal(peak, 1, 'never two in flight');
  assert.deepEqual([first.res.statusCode, second.res.statusCode], [200, 200]);
  assert.ok(c.records.find((r) => r.worker === 2).durationMs >= 200, 'it waited for the stream');
  assert.equal(c.host.gate.inFlight, 0);
  assert.equal(c.host.limits.outstanding(), 0, 'every reservation settled on the primary');
  for (const r of c.records) assert.ok(r.tokensCharged > 0);
});

test('a client with one request per minute gets it on one worker and a 429 with its headers on the other', async () => {
  const c = cluster({ RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '1', MAX_CONCURRENT_REQUESTS: '0' }, [[UP.ok], [UP.ok]]);
  const first = send(c.clock, c.workers[0]);
  await drive(c, [first]);
  const second = send(c.clock, c.workers[1]);
  await drive(c, [second]);
  assert.equal(first.res.statusCode, 200);
  assert.equal(first.res.headers['x-ratelimit-remaining-requests'], '0');
  assert.equal(second.res.statusCode, 429);
  assert.equal(second.res.headers['x-ratelimit-limit-requests'], '1');
  assert.equal(second.res.headers['retry-after'], '60');
  assert.equal(c.workers[1].transport.sent, 0);
});

test('a token limit holds across workers: the second estimate does not fit beside the first one\'s', async () => {
  // each request reserves about 100 + 30 tokens; 200 per minute fit one at a time
  const c = cluster({ TOKEN_LIMIT_TPM: '200', MAX_CONCURRENT_REQUESTS: '0' }, [[UP.sse], [UP.ok]]);
  const first = send(c.clock, c.workers[0]);
  await c.net.settle();
  const second = send(c.clock, c.workers[1]);
  await drive(c, [first, second]);
  assert.equal(first.res.statusCode, 200);
  assert.equal(second.res.statusCode, 429);
  assert.equal(JSON.parse(second.res.body.toString()).error.type, 'tokens');
  assert.equal(second.res.headers['x-ratelimit-limit-tokens'], '200');
  assert.equal(c.host.limits.outstanding(), 0);
});
