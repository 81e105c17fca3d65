// Per-client limits end to end: keys with their own rpm, tpm, max_parallel and weight;
// token estimates reserved and settled to the real usage; the x-ratelimit-*-tokens headers;
// the fair queue in front of a slow upstream; what /stats, /metrics and the log show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, json, request, logLines, waitFor, stats } from './helpers.mjs';

const KEYS = { alice: 'sk-alice-0123456789', bob: 'sk-bob-0123456789', heavy: 'sk-heavy-0123456789', light: 'sk-light-0123456789' };
const as = (id) => ({ authorization: `Bearer ${KEYS[id]}` });
const chat = (extra = {}) => ({ model: 'fake-model', messages: [{ role: 'user', content: 'one two three four five' }], ...extra });

function keysFile(lines) {
  const file = join(mkdtempSync(join(tmpdir(), 'oproxy-keys-')), 'keys');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function rig(keyLines, env = {}, fakeOpts = {}) {
  const fake = await startFakeUpstream(fakeOpts);
  const file = keysFile(keyLines);
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, PROXY_API_KEYS_FILE: file, ...env });
  return { fake, proxy, file, close: async () => (await proxy.stop(), await fake.close()) };
}

test("a key's own rpm and max_parallel: 429 with the reason, another key untouched; SIGHUP keeps the buckets of keys that stay", async () => {
  const { fake, proxy, file, close } = await rig([`alice=${KEYS.alice} rpm=2`, `bob=${KEYS.bob} max_parallel=1`]);
  try {
    for (let i = 0; i < 2; i++) assert.equal((await json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('alice') })).status, 200);
    const third = await json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('alice') });
    assert.equal(third.status, 429);
    assert.equal(JSON.parse(third.body).error.code, 'rate_limit_exceeded');
    assert.equal(third.headers['x-ratelimit-limit-requests'], '2');
    assert.ok(Number(third.headers['retry-after']) >= 29, 'one request per 30 s');
    // bob: one at a time
    fake.fault({ action: 'slow', firstByteDelayMs: 300 });
    const slow = json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('bob') });
    await waitFor(async () => (await stats(proxy)).in_flight === 1);
    const second = await json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('bob') });
    assert.equal(second.status, 429);
    assert.equal(JSON.parse(second.body).error.code, 'concurrency_limit_exceeded');
    assert.equal((await slow).status, 200);
    assert.equal((await json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('bob') })).status, 200, 'free again once the first ended');
    // a reload that keeps alice keeps what she used
    writeFileSync(file, [`alice=${KEYS.alice} rpm=2`, `bob=${KEYS.bob} max_parallel=1`, '# reloaded'].join('\n'));
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'client keys reloaded'));
    assert.equal((await json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('alice') })).status, 429, 'her bucket survived the reload');
    const s = await stats(proxy);
    assert.deepEqual(s.rate_limited_by_reason, { requests: 2, tokens: 0, parallel: 1 });
    assert.deepEqual(s.clients.alice.rejected, { requests: 2, tokens: 0, parallel: 0 });
    const metrics = (await request(`${proxy.url}/metrics`)).body.toString();
    assert.match(metrics, /^openai_proxy_rate_limited_total\{reason="requests"\} 2$/m);
    assert.match(metrics, /^openai_proxy_rate_limited_total\{reason="parallel"\} 1$/m);
  } finally {
    await close();
  }
});

test('tokens per minute: the estimate is reserved, settled to prompt + completion, and the headers show it on every answer', async () => {
  const { proxy, close } = await rig([`alice=${KEYS.alice} tpm=3000`]);
  try {
    const first = await json(`${proxy.url}/v1/chat/completions`, chat({ max_tokens: 1000 }), { headers: as('alice') });
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-ratelimit-limit-tokens'], '3000');
    const usage = JSON.parse(first.body).usage;
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 1, 10_000), 'the request was logged');
    const [rec] = logLines(proxy.logDir, 'requests.log');
    assert.equal(rec.tokens_charged, usage.prompt_tokens + usage.completion_tokens, 'prompt + completion, not only the output');
    // the refund made room again at once: estimates of ~1,000 fit again and again
    for (let i = 0; i < 5; i++) assert.equal((await json(`${proxy.url}/v1/chat/completions`, chat({ max_tokens: 1000 }), { headers: as('alice') })).status, 200, `request ${i + 2}: settled, not blocked`);
    const big = await json(`${proxy.url}/v1/chat/completions`, chat({ max_tokens: 2990 }), { headers: as('alice') });
    assert.equal(big.status, 429, 'an estimate that does not fit');
    const err = JSON.parse(big.body).error;
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.equal(err.type, 'tokens');
    assert.ok(Number(big.headers['retry-after']) >= 1);
    assert.match(big.headers['x-ratelimit-reset-tokens'], /^\d+(\.\d+)?m?s$|^\d+m\d+(\.\d+)?s$/);
    const s = await stats(proxy);
    assert.equal(s.clients.alice.rejected.tokens, 1);
    assert.deepEqual(s.client_limits, { clients_tracked: 1, tokens_reserved: 0 }, 'every reservation settled');
    assert.equal(s.clients.alice.tokens_charged, logLines(proxy.logDir, 'requests.log').reduce((n, l) => n + (l.tokens_charged ?? 0), 0));
  } finally {
    await close();
  }
});

test('a prefix-cache hit is charged prompt + completion once: cached tokens are inside prompt_tokens, never added (JSON and stream)', async () => {
  const { proxy, close } = await rig([`alice=${KEYS.alice} tpm=100000`]);
  try {
    const headers = { ...as('alice'), 'x-fake-cached-tokens': '4' };
    const whole = await json(`${proxy.url}/v1/chat/completions`, chat({ max_tokens: 50 }), { headers });
    const usage = JSON.parse(whole.body).usage;
    assert.equal(usage.prompt_tokens_details.cached_tokens, 4, 'the fake reported a cache hit');
    const streamed = await request(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(chat({ max_tokens: 50, stream: true, stream_options: { include_usage: true } })) });
    assert.match(streamed.body.toString(), /"cached_tokens":4/);
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 2);
    for (const rec of logLines(proxy.logDir, 'requests.log')) {
      assert.equal(rec.prompt_tokens, usage.prompt_tokens);
      assert.equal(rec.tokens_charged, usage.prompt_tokens + usage.completion_tokens, `${rec.stream ? 'stream' : 'JSON'}: prompt + completion, cached not added`);
    }
    const after = await request(`${proxy.url}/v1/models`, { headers: as('alice') });
    assert.equal(after.headers['x-ratelimit-remaining-tokens'], String(100000 - 2 * (usage.prompt_tokens + usage.completion_tokens)), 'the window holds exactly the two charges');
  } finally {
    await close();
  }
});

test('a stream the client abandons is settled to what was streamed: the key is not left blocked', async () => {
  const { proxy, close } = await rig([`alice=${KEYS.alice} tpm=2000`]);
  try {
    // 1,900 reserved for a long stream the client abandons after its first tokens
    let reservedWhileStreaming = null;
    await new Promise((resolve) => {
      const body = JSON.stringify(chat({ max_tokens: 1880, stream: true }));
      const req = http.request(`${proxy.url}/v1/chat/completions`, { method: 'POST', agent: false, headers: { ...as('alice'), 'content-type': 'application/json', 'x-fake-chunks': '200', 'x-fake-chunk-delay-ms': '20' } }, (res) => {
        res.once('data', async () => {
          reservedWhileStreaming = (await stats(proxy)).client_limits.tokens_reserved;
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => resolve());
      req.end(body);
    });
    assert.ok(await waitFor(() => logLines(proxy.logDir, 'requests.log').length === 1, 10_000), 'the request was logged');
    const [rec] = logLines(proxy.logDir, 'requests.log');
    assert.equal(rec.status, 499);
    assert.ok(reservedWhileStreaming > 1880, `/stats showed the open reservation (${reservedWhileStreaming})`);
    assert.equal((await stats(proxy)).client_limits.tokens_reserved, 0);
    assert.ok(rec.tokens_charged < 200, `charged ${rec.tokens_charged} for a prompt and a few tokens, not the 1,900 reserved`);
    const next = await json(`${proxy.url}/v1/chat/completions`, chat({ max_tokens: 1500 }), { headers: as('alice') });
    assert.equal(next.status, 200, 'the reservation was settled when the client left');
  } finally {
    await close();
  }
});

test('the fair queue: one client flooding the slots does not keep another waiting behind all of it', async () => {
  const { fake, proxy, close } = await rig([`heavy=${KEYS.heavy}`, `light=${KEYS.light}`], { MAX_CONCURRENT_REQUESTS: '1', QUEUE_SIZE: '40', QUEUE_TIMEOUT: '30', RATE_LIMIT_ENABLED: 'false' });
  try {
    fake.fault({ action: 'slow', firstByteDelayMs: 60, times: 1000 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const order = [];
    const heavy = Array.from({ length: 12 }, () => json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('heavy'), agent }).then((r) => (order.push('heavy'), r)));
    await waitFor(async () => (await stats(proxy)).queue.depth >= 6);
    const light = json(`${proxy.url}/v1/chat/completions`, chat(), { headers: as('light'), agent }).then((r) => (order.push('light'), r));
    assert.equal((await light).status, 200);
    const queuedWhenLightDone = order.filter((x) => x === 'heavy').length;
    assert.ok(queuedWhenLightDone <= 3, `the light request was served after ${queuedWhenLightDone} heavy ones, not after all 12`);
    const s = await stats(proxy);
    assert.equal(s.queue.order, 'fair');
    await Promise.all(heavy);
    agent.destroy();
    const waits = (await stats(proxy)).queue.wait_ms_by_client;
    assert.ok(waits.light && waits.heavy, JSON.stringify(waits));
    assert.ok(waits.light.max_ms < waits.heavy.max_ms, 'the light client waited less than the heavy one');
  } finally {
    await close();
  }
});
