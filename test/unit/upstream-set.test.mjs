// Several upstreams without a socket: which one an attempt may use (model, pinning, breaker,
// health, max_concurrent, a retry preferring one not tried), the Retry-After when none can,
// reloads that keep, add and retire upstreams, and the routing of a request to a Route.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Upstream } from '../../dist/upstream/upstream.js';
import { UpstreamSet, BALANCED } from '../../dist/upstream/upstream-set.js';
import { createBalancer } from '../../dist/upstream/balancer.js';
import { CircuitBreaker } from '../../dist/resilience/circuit-breaker.js';
import { routeOf, promptHead } from '../../dist/proxy/routing.js';
import { ResponseHomes } from '../../dist/proxy/response-homes.js';

const NOW = 1000;

/** A transport that only records whether it was closed. */
function transport() {
  return { closed: 0, send: () => Promise.reject(new Error('not used')), stats: () => ({ protocol: 'http/1.1', openConnections: 0, connectionsOpened: 0 }), close() {
    this.closed++;
    return Promise.resolve();
  } };
}

const spec = (name, extra = {}) => ({ name, url: new URL(`http://${name}.internal:8000`), weight: 1, models: null, maxConcurrent: 0, ...extra });

/** A set of upstreams named by `specs`, each with a breaker (threshold 1, open 10 s); `made` lists every one built. */
function fleet(specs, { policy = 'round-robin' } = {}) {
  const made = [];
  const retired = [];
  const make = (s) => {
    const u = new Upstream(s, transport(), new CircuitBreaker({ threshold: 1, openMs: 10_000 }));
    made.push(u);
    return u;
  };
  const set = new UpstreamSet(specs, make, createBalancer(policy, { random: () => 0.5 }), (u) => retired.push(u.name));
  return { set, made, retired, get: (name) => set.find(name) };
}

const pick = (set, route = BALANCED, tried = new Set()) => set.choose(route, tried, NOW)?.name ?? null;

describe('choosing an upstream', () => {
  test('one upstream: it, while routable; nothing when its breaker is open', () => {
    const { set, get } = fleet([spec('a')]);
    assert.equal(set.several, false);
    assert.equal(pick(set), 'a');
    get('a').breaker.recordFailure(NOW, false);
    assert.equal(pick(set), null);
    assert.equal(set.available(BALANCED, NOW), false);
    assert.equal(set.retryAfterMs(BALANCED, NOW, 10_000), 10_000, 'until its breaker lets a probe through');
  });

  test('the model decides among those known to serve it; a model nobody is known to serve goes anywhere', () => {
    const { set } = fleet([spec('a', { models: ['llama'] }), spec('b', { models: ['qwen'] }), spec('c')]);
    for (let i = 0; i < 5; i++) assert.equal(pick(set, { model: 'qwen', key: null, pinned: null }), 'b');
    const anywhere = new Set();
    for (let i = 0; i < 6; i++) anywhere.add(pick(set, { model: 'mistral', key: null, pinned: null }));
    assert.deepEqual([...anywhere].sort(), ['a', 'b', 'c']);
    assert.deepEqual(set.models(), ['llama', 'qwen']);
  });

  test('discovered models count like configured ones; an upstream whose list is unknown is left out when others know the model', () => {
    const { set, get } = fleet([spec('a'), spec('b')]);
    get('a').discovered = new Set(['llama']);
    assert.equal(pick(set, { model: 'llama', key: null, pinned: null }), 'a');
    assert.equal(pick(set, { model: 'llama', key: null, pinned: null }), 'a');
  });

  test('not routable: down by its health check, breaker open, at max_concurrent, retiring', () => {
    const { set, get } = fleet([spec('a'), spec('b', { maxConcurrent: 2 }), spec('c'), spec('d')]);
    get('a').healthy = false;
    get('b').inFlight = 2;
    get('c').breaker.recordFailure(NOW, false);
    assert.deepEqual([get('a'), get('b'), get('c'), get('d')].map((u) => u.state(NOW)), ['down', 'full', 'breaker_open', 'up']);
    for (let i = 0; i < 4; i++) assert.equal(pick(set), 'd');
    set.replace([spec('a'), spec('b', { maxConcurrent: 2 }), spec('c')]); // d removed
    assert.equal(pick(set), null);
    assert.equal(set.retryAfterMs(BALANCED, NOW, 7000), 1000, 'the full one frees a slot soonest');
  });

  test('a retry prefers an upstream not tried yet, and comes back to a tried one when it is the only one left', () => {
    const { set, get } = fleet([spec('a'), spec('b')]);
    const tried = new Set([get('a')]);
    for (let i = 0; i < 4; i++) assert.equal(pick(set, BALANCED, tried), 'b');
    assert.equal(set.untried(BALANCED, tried, NOW), true);
    tried.add(get('b'));
    assert.equal(set.untried(BALANCED, tried, NOW), false);
    assert.ok(['a', 'b'].includes(pick(set, BALANCED, tried)));
  });

  test('a pinned request goes to its upstream or nowhere; a pinned name removed since goes home', () => {
    const { set, get } = fleet([spec('home'), spec('b')]);
    const pinned = { model: null, key: null, pinned: 'b' };
    assert.equal(pick(set, pinned), 'b');
    get('b').healthy = false;
    assert.equal(pick(set, pinned), null, 'no failover: its state lives there');
    assert.equal(set.untried(pinned, new Set(), NOW), false);
    assert.equal(pick(set, { model: null, key: null, pinned: 'gone' }), 'home');
  });
});

describe('reloads', () => {
  test('kept upstreams keep their object (connections, breaker, counts), new ones join, removed ones retire once idle', async () => {
    const { set, get, made, retired } = fleet([spec('a'), spec('b'), spec('c')]);
    const a = get('a');
    const b = get('b');
    a.breaker.recordFailure(NOW, false);
    set.enter(b);
    const r = set.replace([spec('a', { weight: 3, models: ['m'] }), spec('d'), spec('c', { url: new URL('http://elsewhere.internal:9000') })]);
    assert.deepEqual(r, { added: ['d', 'c'], removed: ['b', 'c'], kept: ['a'] });
    assert.equal(get('a'), a, 'same object');
    assert.equal(a.weight, 3);
    assert.deepEqual([...a.models], ['m']);
    assert.equal(a.breaker.snapshot(NOW).state, 'open', 'its breaker stays as it was');
    assert.deepEqual(set.all.map((u) => u.name), ['a', 'd', 'c']);
    assert.equal(b.retiring, true);
    assert.deepEqual(retired, ['c'], 'the old c carried nothing: closed at once');
    assert.equal(b.transport.closed, 0, 'b still carries a request');
    set.leave(b);
    assert.equal(b.transport.closed, 1);
    assert.deepEqual(retired, ['c', 'b']);
    assert.equal(made.length, 5);
    await set.close();
    assert.ok(set.all.every((u) => u.transport.closed === 1));
  });

  test('an empty list is refused', () => {
    assert.throws(() => fleet([]), /at least one upstream/);
  });
});

describe('routing a request', () => {
  const homes = new ResponseHomes(3);
  const route = (over) => routeOf({ method: 'POST', url: '/v1/chat/completions', headers: {}, model: 'm', body: null, ...over }, { home: 'home', responses: homes, affinity: false });

  test('a completion is balanced by its model; the model of GET /v1/models/{id} and of a realtime query count too', () => {
    assert.deepEqual(route({}), { model: 'm', key: null, pinned: null });
    assert.equal(route({ method: 'GET', url: '/v1/models/Qwen%2FQwen3', model: null }).model, 'Qwen/Qwen3');
    assert.equal(route({ method: 'GET', url: '/v1/realtime?model=rt-1', model: null }).model, 'rt-1');
  });

  test('state that lives on one server goes home', () => {
    for (const url of ['/v1/files', '/v1/files/file-1/content', '/v1/batches/b1', '/v1/vector_stores', '/v1/uploads/u1/parts', '/v1/threads/t/runs', '/v1/chat/completions/cmpl-1', '/v1/fine_tuning/jobs']) {
      assert.equal(route({ url, model: null }).pinned, 'home', url);
    }
  });

  test('a stored response goes to the upstream that made it, an unknown one home; previous_response_id follows it', () => {
    homes.remember('resp_1', 'gpu-b');
    assert.equal(route({ method: 'GET', url: '/v1/responses/resp_1', model: null }).pinned, 'gpu-b');
    assert.equal(route({ method: 'DELETE', url: '/v1/responses/resp_1/cancel', model: null }).pinned, 'gpu-b');
    assert.equal(route({ method: 'GET', url: '/v1/responses/resp_zz', model: null }).pinned, 'home');
    assert.equal(route({ url: '/v1/responses/input_tokens' }).pinned, null, 'an operation, not an id');
    const next = route({ url: '/v1/responses', body: Buffer.from(JSON.stringify({ model: 'm', previous_response_id: 'resp_1', input: 'and then?' })) });
    assert.deepEqual(next, { model: 'm', key: null, pinned: 'gpu-b' });
    assert.equal(route({ url: '/v1/responses', body: Buffer.from('{"model":"m","input":"hi"}') }).pinned, null);
  });

  test('the ids are learned from the start of the answer, JSON or stream, and the oldest are forgotten past the bound', () => {
    const h = new ResponseHomes(2);
    h.watch('gpu-a').push(Buffer.from('{"id":"resp_json","object":"response"'));
    const s = h.watch('gpu-b');
    s.push(Buffer.from('event: response.created\ndata: {"type":"response.created","response":{"id":"re'));
    s.push(Buffer.from('sp_sse","object":"response"}}\n\n'));
    assert.equal(h.get('resp_json'), 'gpu-a');
    assert.equal(h.get('resp_sse'), 'gpu-b');
    h.remember('resp_3', 'gpu-c');
    assert.equal(h.size, 2);
    assert.equal(h.get('resp_json'), undefined, 'the oldest went');
    const late = h.watch('gpu-d');
    late.push(Buffer.alloc(5000, 'x'));
    late.push(Buffer.from('"id":"resp_late"'));
    assert.equal(h.get('resp_late'), undefined, 'only the first 4 KiB are looked at');
  });

  test('affinity: x-session-id, else the body user, else the start of the prompt', () => {
    const aff = (over) => routeOf({ method: 'POST', url: '/v1/chat/completions', headers: {}, model: 'm', body: null, ...over }, { home: 'home', responses: homes, affinity: true }).key;
    const body = (o) => Buffer.from(JSON.stringify({ model: 'm', ...o }));
    assert.equal(aff({ headers: { 'x-session-id': 'conv-7' }, body: body({ user: 'u1' }) }), 'conv-7');
    assert.equal(aff({ body: body({ user: 'u1', messages: [{ role: 'user', content: 'hi' }] }) }), 'user:u1');
    const system = 'You are a careful assistant. '.repeat(60);
    const first = aff({ body: body({ messages: [{ role: 'system', content: system }, { role: 'user', content: 'question one' }] }) });
    const later = aff({ body: body({ messages: [{ role: 'system', content: system }, { role: 'user', content: 'question one' }, { role: 'assistant', content: 'answer' }, { role: 'user', content: 'two' }] }) });
    assert.equal(first, later, 'the same conversation keeps its key as it grows');
    assert.ok(first.length <= 1024 + 'prompt:'.length);
    assert.equal(promptHead({ prompt: 'complete me' }), 'complete me');
    assert.equal(promptHead({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }] }), '[{"type":"input_text","text":"hi"}]\n');
    assert.equal(aff({ body: Buffer.from('not json at all') }), 'body:not json at all');
    assert.equal(aff({}), null);
  });
});
