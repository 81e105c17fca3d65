/**
 * The benchmark's fairness part (`--only=fairness`, and in the default run): per-client
 * limits and the fair queue, measured against a slow upstream of its own (every answer
 * after a fixed service time S, with a usage the bench chooses).
 *
 *   fairness  MAX_CONCURRENT_REQUESTS=4; a heavy client keeps 50 requests in flight, a light
 *             client sends one at a time; the light client's wait (latency − S), p50/p99 in
 *             units of S, with QUEUE_ORDER=fifo and with fair. Target: fair p99 ≤ 2 S, against
 *             ~12 S in fifo.
 *   accuracy  a key with tpm T under a steady stream of mixed requests (max_tokens from 50
 *             to 600, answers using a random part of it) for 2 minutes: the tokens served in
 *             every 60-second window, against T + one request's maximum.
 *
 * Everything on 127.0.0.1; every process is stopped at the end.
 */
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const HOST = '127.0.0.1';

/** An upstream that answers every chat completion after `serviceMs`, with the usage the request asks for in x-bench-usage. */
function slowUpstream(serviceMs) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const [prompt, completion] = String(req.headers['x-bench-usage'] ?? '20,30').split(',').map(Number);
      const body = JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion', created: 0, model: 'fake-model', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } });
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, serviceMs);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, HOST, () => resolve({ port: server.address().port, close: () => (server.closeAllConnections(), server.close()) })));
}

function post(port, key, agent, { maxTokens = 100, usage = '20,30' } = {}) {
  const body = JSON.stringify({ model: 'fake-model', max_tokens: maxTokens, messages: [{ role: 'user', content: 'How long is a piece of string?' }] });
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request({ host: HOST, port, path: '/v1/chat/completions', method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-bench-usage': usage } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0, at: performance.now(), retryAfter: Number(res.headers['retry-after'] ?? 0) }));
    });
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0, at: performance.now(), retryAfter: 0 }));
    req.end(body);
  });
}

const pct = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

/**
 * @param {any} ctx the bench's context (opts, plan, tmp)
 * @param {any} h helpers from bench.mjs: startOpenaiProxy, log, sleep
 */
export async function partFairness(ctx, h) {
  return { fairness: await fairness(ctx, h), accuracy: await accuracy(ctx, h) };
}

async function fairness(ctx, h) {
  const serviceMs = 200;
  const seconds = ctx.opts.quick ? 10 : 20;
  const up = await slowUpstream(serviceMs);
  const keys = join(ctx.tmp, 'fair-keys');
  writeFileSync(keys, 'heavy=sk-bench-heavy-000\nlight=sk-bench-light-000\n');
  const rows = [];
  try {
    for (const order of ['fifo', 'fair']) {
      const proxy = await h.startOpenaiProxy({ name: `fairness, ${order}`, main: ctx.opts.proxy, upstreamUrl: `http://${HOST}:${up.port}`, features: 'on', logDir: join(ctx.tmp, `logs-fair-${order}`), extraEnv: { PROXY_API_KEYS_FILE: keys, MAX_CONCURRENT_REQUESTS: '4', QUEUE_SIZE: '100', QUEUE_TIMEOUT: '120', QUEUE_ORDER: order, TIMEOUT: '120' } });
      h.log(`fairness: ${order}, heavy client 50 in flight, light client 1 at a time, ${seconds} s, service ${serviceMs} ms`);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
      const until = performance.now() + seconds * 1000;
      let heavyDone = 0;
      const heavy = Array.from({ length: 50 }, async () => {
        while (performance.now() < until) if ((await post(proxy.port, 'sk-bench-heavy-000', agent)).status === 200) heavyDone++;
      });
      await h.sleep(1000); // the heavy client fills the queue first
      const waits = [];
      while (performance.now() < until) {
        const r = await post(proxy.port, 'sk-bench-light-000', agent);
        if (r.status === 200) waits.push(Math.max(0, r.ms - serviceMs));
      }
      await Promise.all(heavy);
      agent.destroy();
      await proxy.stop();
      rows.push({ order, serviceMs, lightRequests: waits.length, heavyRequests: heavyDone, p50Ms: pct(waits, 50), p99Ms: pct(waits, 99), maxMs: Math.max(...waits), p50S: pct(waits, 50) / serviceMs, p99S: pct(waits, 99) / serviceMs });
    }
  } finally {
    up.close();
  }
  return rows;
}

async function accuracy(ctx, h) {
  const tpm = 6000;
  const seconds = ctx.opts.quick ? 65 : 120;
  const up = await slowUpstream(50);
  const keys = join(ctx.tmp, 'tpm-keys');
  writeFileSync(keys, `metered=sk-bench-metered-00 tpm=${tpm}\n`);
  const proxy = await h.startOpenaiProxy({ name: 'accuracy', main: ctx.opts.proxy, upstreamUrl: `http://${HOST}:${up.port}`, features: 'on', logDir: join(ctx.tmp, 'logs-tpm'), extraEnv: { PROXY_API_KEYS_FILE: keys, RATE_LIMIT_ENABLED: 'false' } });
  h.log(`accuracy: tpm ${tpm}, 4 clients of one key sending mixed requests for ${seconds} s`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const served = []; // [completed at ms, tokens]
  let refused = 0;
  let maxRequest = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  try {
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (performance.now() < until) {
          const maxTokens = 50 + Math.floor(rand() * 551);
          const completion = Math.floor(maxTokens * (0.2 + 0.8 * rand()));
          const prompt = 20;
          maxRequest = Math.max(maxRequest, prompt + maxTokens);
          const r = await post(proxy.port, 'sk-bench-metered-00', agent, { maxTokens, usage: `${prompt},${completion}` });
          if (r.status === 200) served.push([r.at - start, prompt + completion]);
          else {
            refused++;
            await h.sleep(Math.min(2000, Math.max(50, r.retryAfter * 1000))); // as a client honouring Retry-After
          }
        }
      }),
    );
  } finally {
    agent.destroy();
    await proxy.stop();
    up.close();
  }
  // every 60 s window, slid by 1 s
  let worst = 0;
  for (let t = 0; t + 60_000 <= seconds * 1000; t += 1000) {
    const inWindow = served.filter(([at]) => at >= t && at < t + 60_000).reduce((n, [, tokens]) => n + tokens, 0);
    worst = Math.max(worst, inWindow);
  }
  const total = served.reduce((n, [, tokens]) => n + tokens, 0);
  return { tpm, seconds, requests: served.length, refused, tokensServed: total, perMinuteAverage: (total / seconds) * 60, worstWindow: worst, bound: tpm + maxRequest, withinBound: worst <= tpm + maxRequest };
}

/** @param {any} res @param {(header: string[], rows: any[][]) => string} table */
export function fairnessTables(res, table) {
  const f = (n, d = 1) => (n === null || n === undefined ? '–' : Number(n).toFixed(d));
  const a = table(
    ['queue order', 'light requests', 'heavy requests', 'light wait p50 ms', 'p99 ms', 'max ms', 'p50 / S', 'p99 / S'],
    res.fairness.map((r) => [r.order, r.lightRequests, r.heavyRequests, f(r.p50Ms, 0), f(r.p99Ms, 0), f(r.maxMs, 0), f(r.p50S, 2), f(r.p99S, 2)]),
  );
  const x = res.accuracy;
  const b = table(
    ['tpm', 'seconds', 'requests served', 'refused (429)', 'tokens served', 'average per minute', 'worst 60 s window', 'bound (tpm + one request)'],
    [[x.tpm, x.seconds, x.requests, x.refused, x.tokensServed, f(x.perMinuteAverage, 0), x.worstWindow, `${x.bound} ${x.withinBound ? '(within)' : '(EXCEEDED)'}`]],
  );
  return `${a}\n\nToken limit accuracy:\n\n${b}`;
}
