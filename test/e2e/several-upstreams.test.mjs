// Several upstreams, end to end: the real proxy in front of several fake upstreams on
// 127.0.0.1, each stamping its name on its answers (x-fake-upstream). Balancing, a slow
// replica, a replica killed mid-run, model routing, the union /v1/models, active health
// checks, state pinned to the home upstream, SIGHUP reloads, and every upstream dead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeUpstream, wsConnect } from '../../scripts/fake-upstream.mjs';
import { startProxy, json, request, deadPort, logLines, waitFor, stats, health } from './helpers.mjs';

const chat = (model = 'fake-model') => ({ model, messages: [{ role: 'user', content: 'hi' }] });
const servedBy = (r) => r.headers['x-fake-upstream'];

async function fakes(names, opts = {}) {
  return Promise.all(names.map((name) => startFakeUpstream({ name, ...(opts[name] ?? {}) })));
}

function tally(results) {
  const t = {};
  for (const r of results) t[servedBy(r)] = (t[servedBy(r)] ?? 0) + 1;
  return t;
}

/** Runs `total` chat requests, `concurrency` at a time, on one keep-alive agent. */
async function load(url, total, concurrency, payload = chat()) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const results = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        results.push(await json(`${url}/v1/chat/completions`, payload, { agent }).catch((err) => ({ status: 0, headers: {}, error: err.message })));
      }
    }),
  );
  agent.destroy();
  return results;
}

test('requests spread over equal replicas; the request log and /stats say which served each', async () => {
  const fleet = await fakes(['a', 'b', 'c']);
  const proxy = await startProxy({ UPSTREAM_URL: fleet.map((f) => f.url).join(','), RATE_LIMIT_ENABLED: 'false' });
  try {
    const results = await load(proxy.url, 90, 3);
    assert.ok(results.every((r) => r.status === 200));
    const t = tally(results);
    for (const name of ['a', 'b', 'c']) assert.ok(t[name] >= 15, `${name} served ${t[name]} of 90: ${JSON.stringify(t)}`);
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 90);
    const byLog = {};
    for (const l of logLines(proxy.logDir, 'requests.log')) byLog[l.upstream] = (byLog[l.upstream] ?? 0) + 1;
    const names = Object.fromEntries(fleet.map((f) => [new URL(f.url).host, f.name]));
    assert.deepEqual(Object.fromEntries(Object.entries(byLog).map(([k, v]) => [names[k], v])), t, 'the log names the upstream that answered');
    const s = await stats(proxy);
    assert.equal(s.upstreams.length, 3);
    assert.equal(s.upstreams.reduce((n, u) => n + u.attempts.ok, 0), 90);
    const h = await health(proxy);
    assert.deepEqual(h.upstreams.map((u) => [u.state, u.in_flight]), [['up', 0], ['up', 0], ['up', 0]]);
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});

test('a slow replica gets fewer requests (fewest in flight, by two random choices)', async () => {
  const fleet = await fakes(['fast1', 'fast2', 'slow']);
  // slow enough that a loaded machine (which slows the fast ones too) cannot hide it
  fleet[2].fault({ action: 'slow', firstByteDelayMs: 400, times: 1000 });
  const proxy = await startProxy({ UPSTREAM_URL: fleet.map((f) => f.url).join(','), RATE_LIMIT_ENABLED: 'false' });
  try {
    const results = await load(proxy.url, 120, 6);
    assert.ok(results.every((r) => r.status === 200));
    const t = { slow: 0, ...tally(results) }; // the slow one may get none at all
    assert.ok(t.slow < t.fast1 && t.slow < t.fast2, `the slow one got less: ${JSON.stringify(t)}`);
    assert.ok(t.slow < 120 / 3 * 0.6, `well under its equal share: ${JSON.stringify(t)}`);
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});

test('a replica killed mid-run loses no request whose answer had not begun: they fail over', async () => {
  const fleet = await fakes(['a', 'b', 'c']);
  const proxy = await startProxy({ UPSTREAM_URL: fleet.map((f) => f.url).join(','), RATE_LIMIT_ENABLED: 'false', RETRY_DELAY: '0.05' });
  try {
    for (const f of fleet) f.fault({ action: 'slow', firstByteDelayMs: 20, times: 1000 });
    const running = load(proxy.url, 150, 8);
    await waitFor(() => fleet[1].stats.attempts >= 10);
    await fleet[1].close(); // b dies with requests in flight on it
    const results = await running;
    const failed = results.filter((r) => r.status !== 200 || !r.complete);
    assert.deepEqual(failed.map((r) => [r.status, String(r.body ?? r.error).slice(0, 200)]), [], 'no request failed');
    const t = tally(results);
    assert.ok(t.b >= 1 && t.a > 0 && t.c > 0, JSON.stringify(t));
    const s = await stats(proxy);
    const b = s.upstreams.find((u) => u.url === fleet[1].url + '/');
    assert.ok((b.attempts.connect_error ?? 0) + (b.attempts.reset ?? 0) >= 1, `attempts on the dead one failed: ${JSON.stringify(b.attempts)}`);
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});

test('model routing: each model to the upstream that serves it; the union of models from the proxy; an unknown model anywhere', async () => {
  const fleet = await fakes(['llama', 'qwen'], { llama: { models: ['fake-llama'] }, qwen: { models: ['fake-qwen', 'fake-embed'] } });
  const file = join(mkdtempSync(join(tmpdir(), 'oproxy-up-')), 'upstreams.json');
  writeFileSync(file, JSON.stringify([{ url: fleet[0].url, name: 'llama-box' }, { url: fleet[1].url, name: 'qwen-box' }]));
  const proxy = await startProxy({ UPSTREAMS_FILE: file, RATE_LIMIT_ENABLED: 'false', MODEL_DISCOVERY_INTERVAL: '0.2', HEALTH_CHECK_INTERVAL: '0.2' });
  try {
    assert.ok(await waitFor(async () => (await health(proxy)).upstreams.every((u) => u.models !== null)), 'discovery listed both');
    for (let i = 0; i < 6; i++) {
      assert.equal(servedBy(await json(`${proxy.url}/v1/chat/completions`, chat('fake-llama'))), 'llama');
      assert.equal(servedBy(await json(`${proxy.url}/v1/chat/completions`, chat('fake-qwen'))), 'qwen');
    }
    const listed = fleet.map((f) => f.stats.modelListings);
    const models = JSON.parse((await request(`${proxy.url}/v1/models`)).body);
    assert.equal(models.object, 'list');
    assert.deepEqual(models.data.map((m) => [m.id, m.object, m.owned_by]), [['fake-llama', 'model', 'openai-proxy'], ['fake-qwen', 'model', 'openai-proxy'], ['fake-embed', 'model', 'openai-proxy']]);
    assert.ok(fleet.every((f, i) => f.stats.modelListings - listed[i] <= 1), 'answered by the proxy (a listing meanwhile is discovery)');
    const unknown = await json(`${proxy.url}/v1/chat/completions`, chat('fake-other'));
    assert.equal(unknown.status, 404, "the upstream's own 404 comes back");
    const h = await health(proxy);
    assert.deepEqual(h.upstreams.map((u) => [u.name, u.models]), [['llama-box', ['fake-llama']], ['qwen-box', ['fake-qwen', 'fake-embed']]]);
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});

test('a failing health check takes an upstream out of rotation until it passes again; state that lives on one server goes home', async () => {
  const fleet = await fakes(['home', 'other']);
  const proxy = await startProxy({ UPSTREAM_URL: fleet.map((f) => f.url).join(','), RATE_LIMIT_ENABLED: 'false', HEALTH_CHECK_INTERVAL: '0.1' });
  try {
    fleet[1].setHealth(503, 'Loading model');
    assert.ok(await waitFor(async () => (await health(proxy)).upstreams[1].state === 'down'), 'marked down');
    const during = await load(proxy.url, 12, 2);
    assert.deepEqual(tally(during), { home: 12 });
    const metrics = (await request(`${proxy.url}/metrics`)).body.toString();
    assert.match(metrics, new RegExp(`openai_proxy_upstream_up\\{upstream="${new URL(fleet[1].url).host}"\\} 0`));
    fleet[1].setHealth(200);
    assert.ok(await waitFor(async () => (await health(proxy)).upstreams[1].state === 'up'), 'back in rotation');
    assert.ok(fleet[1].stats.healthChecks >= 2);
    // files live on one server: every file operation goes to the home upstream
    for (let i = 0; i < 4; i++) assert.equal(servedBy(await request(`${proxy.url}/v1/files`)), 'home');
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});

test('SIGHUP rereads UPSTREAMS_FILE: a new upstream joins, a removed one finishes and is closed, a broken file keeps the set', async () => {
  const fleet = await fakes(['a', 'b', 'c']);
  const dir = mkdtempSync(join(tmpdir(), 'oproxy-up-'));
  const file = join(dir, 'upstreams.json');
  const write = (names) => writeFileSync(file, JSON.stringify(names.map((n) => ({ url: fleet[['a', 'b', 'c'].indexOf(n)].url, name: n }))));
  write(['a', 'b']);
  const proxy = await startProxy({ UPSTREAMS_FILE: file, RATE_LIMIT_ENABLED: 'false', LOG_LEVEL: 'INFO' });
  try {
    assert.deepEqual(Object.keys(tally(await load(proxy.url, 20, 2))).sort(), ['a', 'b']);
    const slow = json(`${proxy.url}/v1/chat/completions`, { ...chat(), stream: true }, { headers: { 'x-fake-chunks': '10', 'x-fake-chunk-delay-ms': '60' } });
    await waitFor(async () => (await stats(proxy)).in_flight === 1);
    const carrying = (await stats(proxy)).upstreams.find((u) => u.in_flight === 1).name;
    const other = carrying === 'a' ? 'b' : 'a';
    write([other, 'c']);
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'upstreams reloaded'));
    const reloaded = logLines(proxy.logDir, 'proxy.log').find((l) => l.msg === 'upstreams reloaded');
    assert.deepEqual(reloaded.added, ['c']);
    assert.deepEqual(reloaded.removed, [carrying], 'the one carrying the stream is removed');
    const r = await slow;
    assert.equal(r.status, 200);
    assert.ok(r.body.toString().includes('[DONE]'), 'what a removed upstream carried finished whole');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg.startsWith('removed upstream finished')));
    const after = tally(await load(proxy.url, 20, 2));
    assert.deepEqual(Object.keys(after).sort(), [other, 'c'].sort());
    writeFileSync(file, '[{"url": 42}]');
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg.startsWith('upstreams file could not be reloaded')));
    const refused = logLines(proxy.logDir, 'proxy.log').find((l) => l.msg.startsWith('upstreams file could not be reloaded'));
    assert.match(refused.problems[0], /entry 1/);
    assert.deepEqual(Object.keys(tally(await load(proxy.url, 10, 2))).sort(), Object.keys(after).sort(), 'the old set stays');
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});

test('every upstream dead: 503 no_upstream_available with Retry-After until the soonest probe', async () => {
  const ports = [await deadPort(), await deadPort()];
  const proxy = await startProxy({ UPSTREAM_URL: ports.map((p) => `http://127.0.0.1:${p}`).join(','), RATE_LIMIT_ENABLED: 'false', CIRCUIT_BREAKER_THRESHOLD: '1', CIRCUIT_BREAKER_TIMEOUT: '30', MAX_RETRIES: '3', HEALTH_CHECK_INTERVAL: '0' });
  try {
    const first = await json(`${proxy.url}/v1/chat/completions`, chat());
    assert.equal(first.status, 503);
    assert.equal(JSON.parse(first.body).error.code, 'upstream_unreachable');
    const s = await stats(proxy);
    assert.deepEqual(s.upstreams.map((u) => u.attempts.connect_error), [1, 1], 'the retry went to the other one, then nothing was left');
    const next = await json(`${proxy.url}/v1/chat/completions`, chat());
    assert.equal(next.status, 503);
    assert.equal(JSON.parse(next.body).error.code, 'no_upstream_available');
    const wait = Number(next.headers['retry-after']);
    assert.ok(wait >= 28 && wait <= 30, `Retry-After ${wait}`);
    assert.deepEqual((await health(proxy)).upstreams.map((u) => u.state), ['breaker_open', 'breaker_open']);
    assert.equal((await request(`${proxy.url}/health`)).status, 200, 'the proxy itself is fine');
  } finally {
    await proxy.stop();
  }
});

test('affinity: a session keeps its replica, sessions spread; a WebSocket goes to the replica of its model', async () => {
  const fleet = await fakes(['a', 'b', 'c'], { a: { models: ['fake-model', 'fake-rt-a'] }, b: { models: ['fake-model', 'fake-rt-b'] }, c: { models: ['fake-model'] } });
  const proxy = await startProxy({ UPSTREAM_URL: fleet.map((f) => f.url).join(','), RATE_LIMIT_ENABLED: 'false', BALANCE: 'affinity', MODEL_DISCOVERY_INTERVAL: '0.2' });
  try {
    assert.ok(await waitFor(async () => (await health(proxy)).upstreams.every((u) => u.models !== null)));
    const homeOf = new Map();
    for (let i = 0; i < 24; i++) {
      const session = `conv-${i % 8}`;
      const r = await json(`${proxy.url}/v1/chat/completions`, chat(), { headers: { 'x-session-id': session } });
      assert.equal(r.status, 200);
      if (!homeOf.has(session)) homeOf.set(session, servedBy(r));
      assert.equal(servedBy(r), homeOf.get(session), `${session} stays on its replica`);
    }
    assert.ok(new Set(homeOf.values()).size >= 2, `8 sessions over 3 replicas: ${JSON.stringify([...homeOf])}`);
    // the same conversation, growing, without a session header: the prompt's start is the key
    const system = { role: 'system', content: 'You are the assistant of a long-running support conversation. '.repeat(20) };
    const turns = [system, { role: 'user', content: 'first question' }];
    const first = servedBy(await json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', messages: turns }));
    turns.push({ role: 'assistant', content: 'an answer' }, { role: 'user', content: 'a follow-up' });
    assert.equal(servedBy(await json(`${proxy.url}/v1/chat/completions`, { model: 'fake-model', messages: turns })), first, 'the prefix cache holder again');
    const ws = await wsConnect(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=fake-rt-b`);
    assert.equal(ws.response.headers['x-fake-upstream'], 'b');
    await ws.close();
  } finally {
    await proxy.stop();
    await Promise.all(fleet.map((f) => f.close()));
  }
});
