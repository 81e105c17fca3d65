// The code that ties admission, the body, the queue, attempts, the breaker, the relay and
// the record together, tested as a table against a fake transport: no sockets, no sleeps.
// Each row says what the upstream does on each attempt, the request body, the breaker's state
// and whether the client leaves (or the proxy shuts down) and in which phase; it expects the
// client's status, the record, the attempts and the breaker after. Every row, and every
// combination of the matrix at the end, also checks what must hold whatever happened: one
// record, the concurrency slot given back, no timer left armed, no upstream request left
// open, a probe slot never stuck.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config.js';
import { ProxyHandler } from '../../dist/proxy/handler.js';
import { CircuitBreaker } from '../../dist/resilience/circuit-breaker.js';
import { ConcurrencyGate } from '../../dist/resilience/concurrency-gate.js';
import { RetryBudget } from '../../dist/resilience/retry-budget.js';
import { Telemetry } from '../../dist/observe/telemetry.js';
import { ProxyStats } from '../../dist/stats.js';
import { Logger } from '../../dist/logging/logger.js';
import { SHUTDOWN } from '../../dist/cancel.js';
import { Upstream } from '../../dist/upstream/upstream.js';
import { UpstreamSet } from '../../dist/upstream/upstream-set.js';
import { createBalancer } from '../../dist/upstream/balancer.js';
import { FakeClock, FakeResponse, FakeTransport, fakeRequest, flush, UP } from './orchestration-fakes.mjs';

const CHAT = Buffer.from(JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }] }));
const BODIES = {
  small: CHAT,
  slow: CHAT,
  // past MAX_REPLAY_BODY (1 KiB here): streamed to the upstream, not kept for a retry
  large: Buffer.from(JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'x'.repeat(2048) }] })),
};

/** TIMEOUT 2 s, two retries 100/200 ms apart, breaker of 5 open for 1 s, one slot and a queue of one. */
const ENV = {
  TIMEOUT: '2',
  MAX_RETRIES: '2',
  RETRY_DELAY: '0.1',
  RETRY_MAX_DELAY: '1',
  MAX_REPLAY_BODY: '1024',
  CLIENT_TIMEOUT: '5',
  CIRCUIT_BREAKER_THRESHOLD: '5',
  CIRCUIT_BREAKER_TIMEOUT: '1',
  MAX_CONCURRENT_REQUESTS: '1',
  QUEUE_SIZE: '1',
  QUEUE_TIMEOUT: '30',
  RATE_LIMIT_ENABLED: 'false',
  // every request reserves its token estimate and must settle it, whatever happens to it
  TOKEN_LIMIT_TPM: '1000000',
};

/** The phase of the one request alive, or null. */
function phaseOf(handler) {
  const phases = Object.entries(handler.lifetimes.byPhase()).filter(([, n]) => n > 0);
  return phases.length === 0 ? null : phases[0][0];
}

/**
 * Runs one row: starts the request, then alternates "let every callback run" and "fire the
 * next timer" until the request has ended; acts (leave, shut down) the first time the
 * request is seen in the row's phase (`attempt#2` = the second time it enters 'attempt').
 */
async function run(row) {
  const clock = new FakeClock();
  const config = parseConfig({ ...ENV, ...row.env });
  // one upstream (`up`, `breaker`), or several (`fleet`: [{ name, up, breaker, models }]), in order
  const members = row.fleet ?? [{ name: 'u1', up: row.up, breaker: row.breaker }];
  const fleet = members.map((m) => {
    const breaker = new CircuitBreaker({ threshold: config.breakerThreshold, openMs: config.breakerOpenMs });
    if (m.breaker === 'open' || m.breaker === 'half_open') for (let i = 0; i < config.breakerThreshold; i++) breaker.recordFailure(clock.now(), false);
    const transport = new FakeTransport(clock, m.up);
    return { breaker, transport, upstream: new Upstream({ name: m.name, url: new URL(`http://${m.name}.internal:8000`), weight: 1, models: m.models ?? null, maxConcurrent: 0 }, transport, breaker) };
  });
  if (members.some((m) => m.breaker === 'half_open')) clock.t += config.breakerOpenMs;
  const { breaker, transport } = fleet[0];
  const gate = new ConcurrencyGate({ maxConcurrent: config.maxConcurrentRequests, queueSize: config.queueSize, queueTimeoutMs: config.queueTimeoutMs, clock });
  let other = null;
  if (row.busy) {
    other = await gate.acquire({ key: 'other', weight: 1 }); // another request holds the only slot for `busy` ms
    clock.timer(row.busy, () => other(), 'client');
  }
  const records = [];
  const logs = [];
  const stats = new ProxyStats(() => clock.wallNow());
  const telemetry = new Telemetry(stats, null, { write: (r) => records.push(r) });
  const logger = new Logger('DEBUG', [{ writeLine: (l) => logs.push(JSON.parse(l)) }], () => clock.wallNow());
  const budget = new RetryBudget();
  const byName = new Map(fleet.map((f) => [f.upstream.name, f.upstream]));
  // round-robin starts with the first: a row knows which replica the first attempt goes to
  const upstreams = new UpstreamSet(
    members.map((m) => ({ name: m.name, url: byName.get(m.name).url, weight: 1, models: m.models ?? null, maxConcurrent: 0 })),
    (s) => byName.get(s.name),
    createBalancer('round-robin', { random: () => 0.5 }),
  );
  const handler = new ProxyHandler({ config, upstreams, clock, logger, telemetry, limiter: null, gate, budget, apiKeys: () => null, random: () => 0.5 });
  const req = fakeRequest(clock, { body: BODIES[row.body ?? 'small'], slowMs: row.body === 'slow' ? 10 : 0, ...(row.url ? { url: row.url, method: row.method ?? 'POST' } : {}) });
  const res = new FakeResponse();
  const started = clock.now();
  let settled = false;
  let thrown = null;
  handler.handle(req, res).then(
    () => (settled = true),
    (err) => ((settled = true), (thrown = err)),
  );
  const seen = new Map();
  let last = null;
  let acted = false;
  for (let i = 0; i < 10_000 && !settled; i++) {
    await flush();
    if (settled) break;
    const phase = phaseOf(handler);
    if (phase !== last) {
      seen.set(phase, (seen.get(phase) ?? 0) + 1);
      last = phase;
    }
    const at = row.act?.at.includes('#') ? row.act.at : `${row.act?.at}#1`;
    if (row.act && !acted && `${phase}#${seen.get(phase)}` === at) {
      acted = true;
      if (row.act.do === 'leave') res.leave(req);
      else handler.lifetimes.endAll(SHUTDOWN);
      continue;
    }
    if (!clock.fireNext()) break; // nothing left that could move the request on
  }
  await flush();
  other?.();
  return { settled, thrown, acted, records, logs, res, transport, breaker, fleet, gate, budget, stats, clock, handler, took: clock.now() - started };
}

/** What must hold after any request, whatever the upstream, the client and the breaker did. */
function checkInvariants(r, label) {
  assert.ok(r.settled, `${label}: the request never ended (a phase waits without a bound)`);
  assert.equal(r.thrown, null, `${label}: handle() threw ${r.thrown}`);
  assert.equal(r.records.length, 1, `${label}: exactly one record`);
  const rec = r.records[0];
  assert.equal(r.gate.inFlight, 0, `${label}: the concurrency slot was given back`);
  assert.equal(r.gate.queued, 0, `${label}: nothing left in the queue`);
  assert.equal(r.handler.lifetimes.size, 0, `${label}: no lifetime left`);
  assert.equal(r.stats.inFlight, 0, `${label}: in-flight back to 0`);
  assert.equal(r.budget.requestsInFlight, 0, `${label}: retry budget: requests`);
  assert.equal(r.budget.retriesInFlight, 0, `${label}: retry budget: retries`);
  assert.equal(r.clock.pending('proxy'), 0, `${label}: no timer of the proxy left armed`);
  assert.equal(r.handler.limits.outstanding(), 0, `${label}: no token reservation left unsettled`);
  assert.equal(typeof rec.tokensCharged, 'number', `${label}: the record says what was charged`);
  for (const f of r.fleet) {
    const name = f.upstream.name;
    assert.equal(f.transport.open, 0, `${label}: no answer of ${name} left open`);
    assert.equal(f.upstream.inFlight, 0, `${label}: ${name} has nothing in flight`);
    const b = f.breaker.snapshot(r.clock.now());
    if (b.state === 'half_open') assert.equal(f.breaker.admit(r.clock.now()).kind, 'probe', `${label}: the probe slot of ${name} is free`);
  }
  if (r.acted && r.actDo === 'leave') assert.equal(rec.status, 499, `${label}: a client that left is 499`);
  if (rec.status !== 499) assert.equal(r.res.statusCode, rec.status, `${label}: the record says what the client got`);
  assert.ok(r.res.statusCode !== null || r.res.destroyed, `${label}: the client got an answer or a closed connection`);
  assert.equal(rec.attempts, r.fleet.reduce((n, f) => n + f.transport.sent, 0), `${label}: attempts in the record = attempts made`);
  if (rec.attempts > 0) assert.ok(r.fleet.some((f) => f.upstream.name === rec.upstream), `${label}: the record names the upstream of the last attempt`);
  else assert.equal(rec.upstream, null, `${label}: no attempt, no upstream`);
}

const lastEvent = (res) => {
  const events = res.body.toString().split('\n\n').filter(Boolean);
  const data = events.at(-1)?.replace(/^data: /, '');
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
};

/**
 * The table. `up`: the upstream per attempt; `expect`: status (record), client (status the
 * client saw, when it differs), error (record), attempts, breaker (after), and extra checks.
 */
const ROWS = [
  // plain answers
  { name: 'a JSON answer passes', up: [UP.ok], expect: { status: 200, error: null, attempts: 1, breaker: 'closed' } },
  { name: 'a stream passes whole, [DONE] included', up: [UP.sse], expect: { status: 200, error: null, attempts: 1, lastEvent: '[DONE]' } },
  { name: "an upstream 404 passes unchanged and counts as the upstream answering", up: [UP.notFound], expect: { status: 404, error: null, attempts: 1, breaker: 'closed' } },
  { name: 'a 500 is not retried', up: [UP.e500], expect: { status: 500, error: null, attempts: 1 } },
  // retries
  { name: 'a 503 then 200: retried, the client sees the 200', up: [UP.e503, UP.ok], expect: { status: 200, attempts: 2, retries: 1 } },
  { name: '503 three times: the last 503 passes with x-should-retry: false', up: [UP.e503, UP.e503, UP.e503], expect: { status: 503, error: 'upstream_503', attempts: 3, header: ['x-should-retry', 'false'] } },
  { name: "a Retry-After that fits TIMEOUT is waited for", up: [UP.e503RetryAfter1, UP.ok], expect: { status: 200, attempts: 2, tookAtLeast: 1000 } },
  { name: 'a Retry-After longer than TIMEOUT is not waited for: the 503 passes', up: [UP.e503RetryAfter9], expect: { status: 503, attempts: 1, header: ['retry-after', '9'] } },
  { name: 'a 503 too big to hold passes whole and is not retried', up: [UP.e503Big, UP.ok], expect: { status: 503, attempts: 1, bodyBytes: 100 * 1024 } },
  { name: 'connect error then 200', up: [UP.connectError, UP.ok], expect: { status: 200, attempts: 2 } },
  { name: 'unreachable on every attempt: 503 upstream_unreachable', up: [UP.connectError, UP.connectError, UP.connectError], expect: { status: 503, error: 'upstream_unreachable', attempts: 3 } },
  { name: 'a reset before the answer is retried', up: [UP.reset, UP.ok], expect: { status: 200, attempts: 2 } },
  { name: 'a protocol error is not retried: 502', up: [UP.protocol, UP.ok], expect: { status: 502, error: 'upstream_protocol_error', attempts: 1 } },
  { name: 'a stale pooled connection is resent at once, not counted as a retry', up: [UP.stale, UP.ok], expect: { status: 200, attempts: 2, retries: 0, took: 0 } },
  // deadlines
  { name: 'an upstream that never answers: 504 at TIMEOUT', up: [UP.hang], expect: { status: 504, error: 'upstream_timeout', attempts: 1, took: 2000, attemptOutcome: 'timeout' } },
  { name: 'defect 2: a 503 whose body stalls ends at TIMEOUT with 504, the upstream aborted', up: [UP.e503Stall], expect: { status: 504, error: 'upstream_timeout', attempts: 1, took: 2000, upstreamAborted: 1 } },
  { name: 'a stream silent for TIMEOUT ends with the error event', up: [UP.sseSilent], expect: { status: 200, error: 'upstream_timeout', lastErrorCode: 'upstream_timeout', upstreamAborted: 1 } },
  { name: 'a stream longer than TIMEOUT in total, never silent that long, is not cut', up: [UP.sseLong], expect: { status: 200, error: null, lastEvent: '[DONE]' } },
  { name: 'a stream the upstream breaks ends with the error event', up: [UP.sseBreaks], expect: { status: 200, error: 'upstream_stream_broken', lastErrorCode: 'upstream_stream_broken' } },
  { name: 'TTFB is the first body byte (the first event), not the upstream head', up: [UP.sseSlowHead], expect: { status: 200, ttfb: 800 } },
  // the proxy's own bug
  { name: 'defect 4: an exception in the proxy is 500 internal_error, logged with its stack', up: [UP.bug], expect: { status: 500, error: 'internal_error', attempts: 1, loggedStack: true } },
  // the client leaves
  { name: 'the client leaves while its body arrives: 499, the upstream never asked', body: 'slow', up: [UP.ok], act: { at: 'reading_body', do: 'leave' }, expect: { status: 499, error: 'client_gone', attempts: 0 } },
  { name: 'the client leaves while queued for a slot: 499', busy: 500, up: [UP.ok], act: { at: 'queued', do: 'leave' }, expect: { status: 499, attempts: 0 } },
  { name: 'the client leaves during the attempt: 499, the upstream request cancelled', up: [UP.hang], act: { at: 'attempt', do: 'leave' }, expect: { status: 499, attempts: 1, cancelled: 1, breaker: 'closed', noAttemptOutcome: true } },
  { name: 'defect 3: the client leaves during a retry backoff: 499, not the 503', up: [UP.e503, UP.ok], act: { at: 'backoff', do: 'leave' }, expect: { status: 499, error: 'client_gone', attempts: 1 } },
  { name: 'the client leaves while a stalled 503 body is held: 499, the upstream aborted', up: [UP.e503Stall], act: { at: 'holding_error', do: 'leave' }, expect: { status: 499, upstreamAborted: 1 } },
  { name: 'the client leaves mid-stream: 499, the upstream aborted at once', up: [UP.sse], act: { at: 'relaying', do: 'leave' }, expect: { status: 499, error: 'client_gone', upstreamAborted: 1 } },
  // the breaker
  { name: 'open breaker: 503 circuit_open without asking the upstream', breaker: 'open', up: [], expect: { status: 503, error: 'circuit_open', attempts: 0, header: ['retry-after', '1'] } },
  { name: 'half-open: the probe succeeds and closes it', breaker: 'half_open', up: [UP.ok], expect: { status: 200, breaker: 'closed' } },
  { name: 'defect 1: a probe resent after a stale connection still closes the breaker', breaker: 'half_open', up: [UP.stale, UP.ok], expect: { status: 200, attempts: 2, breaker: 'closed' } },
  { name: 'half-open: a probe that gets 503 opens it again, no retry', breaker: 'half_open', up: [UP.e503, UP.ok], expect: { status: 503, attempts: 1, breaker: 'open' } },
  { name: 'half-open: a probe that times out opens it again', breaker: 'half_open', up: [UP.hang], expect: { status: 504, breaker: 'open' } },
  { name: 'half-open: a probe whose client left gives its slot back', breaker: 'half_open', up: [UP.hang], act: { at: 'attempt', do: 'leave' }, expect: { status: 499, breaker: 'half_open' } },
  { name: 'half-open: a probe that hits a bug gives its slot back', breaker: 'half_open', up: [UP.bug], expect: { status: 500, breaker: 'half_open' } },
  { name: 'half-open: a probe shut down gives its slot back', breaker: 'half_open', up: [UP.hang], act: { at: 'attempt', do: 'shutdown' }, expect: { status: 503, error: 'draining', breaker: 'half_open' } },
  // a body too large to keep
  { name: 'a streamed body is retried after a connect error (it was never read)', body: 'large', up: [UP.connectError, UP.ok], expect: { status: 200, attempts: 2 } },
  { name: 'a streamed body is not retried after a reset (it may be half sent)', body: 'large', up: [UP.reset, UP.ok], expect: { status: 502, attempts: 1 } },
  { name: 'a streamed body is not retried after a 503', body: 'large', up: [UP.e503, UP.ok], expect: { status: 503, attempts: 1 } },
  // shutdown
  { name: 'shutdown during the attempt: 503 draining, the upstream cancelled', up: [UP.hang], act: { at: 'attempt', do: 'shutdown' }, expect: { status: 503, error: 'draining', cancelled: 1, header: ['connection', 'close'] } },
  { name: 'shutdown while queued: 503 draining', busy: 500, up: [UP.ok], act: { at: 'queued', do: 'shutdown' }, expect: { status: 503, error: 'draining', attempts: 0 } },
  { name: 'shutdown mid-stream: the stream ends with the draining event', up: [UP.sse], act: { at: 'relaying', do: 'shutdown' }, expect: { status: 200, error: 'draining', lastErrorCode: 'draining', upstreamAborted: 1 } },
  // several upstreams (round-robin: the first attempt goes to the first one)
  { name: 'failover: a connect error on one replica goes to the other at once, no backoff', fleet: [{ name: 'a', up: [UP.connectError] }, { name: 'b', up: [UP.ok] }], expect: { status: 200, attempts: 2, upstream: 'b', took: 0, retries: 1 } },
  { name: "failover: a 503 goes to the other replica at once, its Retry-After is the first one's business", fleet: [{ name: 'a', up: [UP.e503RetryAfter9] }, { name: 'b', up: [UP.ok] }], expect: { status: 200, attempts: 2, upstream: 'b', took: 0 } },
  { name: 'every replica failing: each tried once, then the backoff, then the last answer stands', fleet: [{ name: 'a', up: [UP.e503, UP.e503] }, { name: 'b', up: [UP.e503, UP.e503] }], expect: { status: 503, error: 'upstream_503', attempts: 3, tookAtLeast: 100 } },
  { name: 'none routable: 503 no_upstream_available with Retry-After, the body never read', fleet: [{ name: 'a', up: [], breaker: 'open' }, { name: 'b', up: [], breaker: 'open' }], expect: { status: 503, error: 'no_upstream_available', attempts: 0, header: ['retry-after', '1'] } },
  { name: 'the model decides the replica', fleet: [{ name: 'a', up: [], models: ['other'] }, { name: 'b', up: [UP.ok], models: ['m1'] }], expect: { status: 200, attempts: 1, upstream: 'b' } },
  { name: 'a file operation goes to the home upstream and never fails over', url: '/v1/files', fleet: [{ name: 'a', up: [UP.connectError, UP.connectError, UP.connectError] }, { name: 'b', up: [] }], expect: { status: 503, error: 'upstream_unreachable', attempts: 3, upstream: 'a' } },
  { name: "one replica's probe: its verdict comes from the resend after a stale connection", fleet: [{ name: 'a', up: [UP.stale, UP.ok], breaker: 'half_open' }, { name: 'b', up: [] }], expect: { status: 200, attempts: 2, upstream: 'a', breakers: { a: 'closed', b: 'closed' } } },
  { name: 'a stream that breaks on one replica is never retried on another', fleet: [{ name: 'a', up: [UP.sseBreaks] }, { name: 'b', up: [] }], expect: { status: 200, error: 'upstream_stream_broken', attempts: 1 } },
  { name: 'a replica that hangs: TIMEOUT ends the request, it is not retried elsewhere', fleet: [{ name: 'a', up: [UP.hang] }, { name: 'b', up: [] }], expect: { status: 504, attempts: 1, breakers: { a: 'closed', b: 'closed' } } },
];

describe('orchestration table', () => {
  for (const row of ROWS) {
    test(row.name, async () => {
      const r = await run(row);
      r.actDo = row.act?.do;
      if (row.act) assert.ok(r.acted, `the request was never seen in phase ${row.act.at}: the row tests nothing`);
      checkInvariants(r, row.name);
      const rec = r.records[0];
      const e = row.expect;
      assert.equal(rec.status, e.status, 'status in the record');
      if ('error' in e) assert.equal(rec.error, e.error, 'error in the record');
      if ('attempts' in e) assert.equal(rec.attempts, e.attempts, 'attempts');
      if ('breaker' in e) assert.equal(r.breaker.snapshot(r.clock.now()).state === 'half_open' ? 'half_open' : r.breaker.snapshot(r.clock.now()).state, e.breaker, 'breaker after');
      if ('retries' in e) assert.equal(r.stats.totalRetries(), e.retries, 'retries');
      if ('header' in e) assert.equal(String(r.res.headers[e.header[0]]), e.header[1], `header ${e.header[0]}`);
      if ('took' in e) assert.equal(r.took, e.took, 'time taken on the clock');
      if ('tookAtLeast' in e) assert.ok(r.took >= e.tookAtLeast, `took ${r.took}`);
      if ('bodyBytes' in e) assert.equal(r.res.body.length, e.bodyBytes, 'body passed whole');
      if ('lastEvent' in e) assert.equal(lastEvent(r.res), e.lastEvent);
      if ('lastErrorCode' in e) assert.equal(lastEvent(r.res).error.code, e.lastErrorCode);
      if ('upstreamAborted' in e) assert.equal(r.transport.answers.filter((a) => a.aborted).length, e.upstreamAborted, 'upstream answers aborted');
      if ('cancelled' in e) assert.equal(r.transport.cancelled, e.cancelled, 'upstream requests cancelled before their answer');
      if ('ttfb' in e) assert.equal(rec.ttfbMs, e.ttfb, 'ttfb');
      if ('upstream' in e) assert.equal(rec.upstream, e.upstream, 'upstream of the last attempt');
      if ('breakers' in e) for (const f of r.fleet) assert.equal(f.breaker.snapshot(r.clock.now()).state, e.breakers[f.upstream.name], `breaker of ${f.upstream.name}`);
      if ('attemptOutcome' in e) assert.equal(r.stats.attempts.get(e.attemptOutcome), 1);
      if (e.noAttemptOutcome) assert.equal(r.stats.attempts.size, 0, 'a client that left says nothing about the upstream');
      if (e.loggedStack) {
        const line = r.logs.find((l) => l.level === 'ERROR');
        assert.ok(line, 'logged at ERROR');
        assert.match(line.stack, /TypeError: a bug in the proxy/);
      }
    });
  }
});

/**
 * The matrix: every upstream behaviour (first attempt, then a 200) × request body × breaker
 * state × when the client leaves or the proxy shuts down. Exact answers are the table's job;
 * here every combination must keep the invariants, and a client that left must be 499.
 */
describe('orchestration matrix', () => {
  const behaviours = Object.keys(UP);
  const acts = [null, 'reading_body', 'queued', 'attempt', 'backoff', 'holding_error', 'relaying'].flatMap((at) => (at === null ? [null] : [{ at, do: 'leave' }, { at, do: 'shutdown' }]));
  test(`${behaviours.length} behaviours × 3 bodies × 2 breaker states × ${acts.length} acts keep every invariant`, async () => {
    let runs = 0;
    const reached = new Set();
    for (const first of behaviours) {
      for (const body of ['small', 'slow', 'large']) {
        for (const breaker of ['closed', 'half_open']) {
          for (const act of acts) {
            const row = { up: [UP[first], UP.ok, UP.ok], body, breaker, act, busy: act?.at === 'queued' ? 300 : 0 };
            const label = `${first}/${body}/${breaker}/${act ? `${act.do}@${act.at}` : 'stays'}`;
            const r = await run(row);
            r.actDo = act?.do;
            checkInvariants(r, label);
            if (r.acted && act.do === 'shutdown') {
              const rec = r.records[0];
              assert.ok(rec.status === 503 || rec.error === 'draining', `${label}: shutdown is 503 draining, or a stream ended as draining (got ${rec.status} ${rec.error})`);
            }
            runs++;
            if (r.acted) reached.add(`${act.do}@${act.at}`);
          }
        }
      }
    }
    // every act found its phase in some combination: none of the columns tests nothing
    const missing = acts.filter((a) => a !== null && !reached.has(`${a.do}@${a.at}`)).map((a) => `${a.do}@${a.at}`);
    assert.deepEqual(missing, [], 'acts that never met their phase');
    console.log(`# matrix: ${runs} runs`);
  });
});

/**
 * The same matrix with two replicas: the first behaves as the row says, the second answers
 * 200. Every invariant holds for both, and a request whose first replica failed before
 * answering ends with the second one's 200 unless the client left or the proxy shut down.
 */
describe('orchestration matrix, two replicas', () => {
  const acts = [null, 'attempt', 'backoff', 'holding_error', 'relaying'].flatMap((at) => (at === null ? [null] : [{ at, do: 'leave' }, { at, do: 'shutdown' }]));
  test(`${Object.keys(UP).length} behaviours × 2 bodies × ${acts.length} acts keep every invariant`, async () => {
    let runs = 0;
    for (const first of Object.keys(UP)) {
      for (const body of ['small', 'large']) {
        for (const act of acts) {
          const row = { fleet: [{ name: 'a', up: [UP[first], UP.ok] }, { name: 'b', up: [UP.ok, UP.ok] }], body, act };
          const label = `two replicas: ${first}/${body}/${act ? `${act.do}@${act.at}` : 'stays'}`;
          const r = await run(row);
          r.actDo = act?.do;
          checkInvariants(r, label);
          const rec = r.records[0];
          // a body too large to keep is sent once: only a connection that never opened leaves it unread
          const failedBeforeAnswer = first === 'connectError' || (body === 'small' && ['e503', 'e503RetryAfter1', 'e503RetryAfter9', 'reset', 'stale'].includes(first));
          if (!r.acted && failedBeforeAnswer) assert.equal(rec.status, 200, `${label}: failed over to b`);
          runs++;
        }
      }
    }
    console.log(`# two-replica matrix: ${runs} runs`);
  });
});
