// Active health checks and model discovery on a fake clock against scripted upstreams: what
// takes an upstream out of rotation and brings it back, and what it is known to serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Upstream } from '../../dist/upstream/upstream.js';
import { HealthChecker } from '../../dist/upstream/health-checker.js';
import { ModelDiscovery, modelIds } from '../../dist/upstream/model-discovery.js';
import { Logger } from '../../dist/logging/logger.js';
import { FakeClock, FakeTransport, flush } from './orchestration-fakes.mjs';

const spec = (name, models = null) => ({ name, url: new URL(`http://${name}.internal:8000/base`), weight: 1, models, maxConcurrent: 0 });

/** An upstream whose answers follow `script` (one entry per request), and what it was asked. */
function scripted(clock, name, script, models = null) {
  const transport = new FakeTransport(clock, script);
  const asked = [];
  const send = transport.send.bind(transport);
  transport.send = (r, cancel) => (asked.push(`${r.method} ${r.path} host=${r.headers.host ?? '-'} auth=${r.headers.authorization ?? '-'}`), send(r, cancel));
  return { u: new Upstream(spec(name, models), transport, null), asked };
}

function logger() {
  const lines = [];
  return { lines, log: new Logger('DEBUG', [{ writeLine: (l) => lines.push(JSON.parse(l)) }], () => 0) };
}

const ok = { answer: 200, body: '{"status":"ok"}' };
const loading = { answer: 503, body: '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}' };

test('a failed health check takes an upstream out of rotation until one passes; each change is logged once', async () => {
  const clock = new FakeClock();
  const { u, asked } = scripted(clock, 'gpu-a', [ok, loading, loading, ok]);
  const { lines, log } = logger();
  const checker = new HealthChecker(() => [u], clock, log, { intervalMs: 10_000, path: '/health', http2: false });
  const states = [];
  checker.start();
  for (let i = 0; i < 4; i++) {
    if (i > 0) clock.advance(10_000);
    await flush();
    states.push(u.healthy);
  }
  checker.stop();
  assert.deepEqual(states, [true, false, false, true]);
  assert.equal(u.routable(clock.now()), true);
  assert.deepEqual(asked, Array(4).fill('GET /health host=gpu-a.internal:8000 auth=-'), 'the origin, not the base path; never a completion');
  assert.deepEqual(lines.map((l) => l.msg), ['upstream out of rotation: its health check failed', 'upstream back in rotation: its health check passed']);
  assert.deepEqual(u.lastProbe, { status: 200, error: null });
  assert.equal(clock.pending(), 0, 'stopped: nothing armed');
});

test('a probe without an answer fails at min(5 s, the interval), and its request is cancelled', async () => {
  const clock = new FakeClock();
  const { u } = scripted(clock, 'gpu-a', [{ hang: true }]);
  const checker = new HealthChecker(() => [u], clock, logger().log, { intervalMs: 2000, path: '/health', http2: true });
  const done = checker.probe(u);
  await flush();
  clock.fireNext();
  await done;
  assert.equal(clock.now(), 1000 + 2000);
  assert.equal(u.healthy, false);
  assert.match(u.lastProbe.error, /TIMEOUT/);
  assert.equal(u.transport.cancelled, 1);
});

test('discovery: data[].id of GET {base}/v1/models with the upstream key; a failed listing keeps what was known', async () => {
  const clock = new FakeClock();
  const listing = { answer: 200, body: JSON.stringify({ object: 'list', data: [{ id: 'llama-3.1-8b' }, { id: 'qwen3' }, { nope: 1 }, { id: '' }] }) };
  const { u, asked } = scripted(clock, 'gpu-a', [listing, { answer: 500, body: '{}' }, { answer: 200, body: 'not json' }, { fail: 'connect_error' }]);
  const { u: fixed } = scripted(clock, 'gpu-b', [], ['only-this']);
  const discovery = new ModelDiscovery(() => [u, fixed], clock, logger().log, { intervalMs: 30_000, http2: false, headers: { authorization: 'Bearer sk-upstream' } });
  discovery.start();
  await flush();
  assert.deepEqual([...u.served], ['llama-3.1-8b', 'qwen3']);
  for (let i = 0; i < 3; i++) {
    clock.advance(30_000);
    await flush();
    assert.deepEqual([...u.served], ['llama-3.1-8b', 'qwen3'], `listing ${i + 2} failed: what was known stays`);
  }
  discovery.stop();
  assert.deepEqual(asked, Array(4).fill('GET /base/v1/models host=gpu-a.internal:8000 auth=Bearer sk-upstream'));
  assert.deepEqual([...fixed.served], ['only-this'], 'an upstream with a models list is never asked');
  assert.equal(fixed.transport.sent, 0);
});

test('model ids: bounded in number and length, only strings', () => {
  assert.equal(modelIds(Buffer.from('{"data":"no"}')), null);
  assert.equal(modelIds(Buffer.from('[1,2]')), null);
  const many = { data: Array.from({ length: 1500 }, (_, i) => ({ id: `m${i}` })).concat([{ id: 'x'.repeat(300) }]) };
  assert.equal(modelIds(Buffer.from(JSON.stringify(many))).length, 1000);
  assert.deepEqual(modelIds(Buffer.from(JSON.stringify({ data: [{ id: 'x'.repeat(257) }, { id: 7 }, null, { id: 'ok' }] }))), ['ok']);
});
