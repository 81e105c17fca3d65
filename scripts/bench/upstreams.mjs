#!/usr/bin/env node
/**
 * The benchmark's upstreams, in one child process of their own (so they never share an event
 * loop with the proxy or the load generator). Prints one JSON line with their ports:
 *
 * - `fixed`: the cheapest possible answer, a raw node:http server replying a fixed 611-byte
 *   chat completion with keep-alive: the non-streaming throughput case measures the proxy,
 *   not a fake model.
 * - `sse`: a tiny SSE chat-completion stream whose every chunk carries `"ts"`, the absolute
 *   send time in ms (`performance.timeOrigin + performance.now()`, sub-ms precision). The
 *   client, on the same machine and clock, computes arrival − send per chunk: the relay lag.
 *   Honours `x-fake-chunks` and `x-fake-chunk-delay-ms` like the fake upstream.
 * - `fake`, `fakeH2c`: scripts/fake-upstream.mjs over HTTP/1.1 and cleartext HTTP/2, for the
 *   slow streams held open by the concurrency part.
 * With `--fixed-only`, just one `fixed` server (the fleet part starts three, kills one).
 *
 * Loopback only. Stops on SIGTERM/SIGINT.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { startFakeUpstream } from '../fake-upstream.mjs';

const HOST = '127.0.0.1';

/** A chat completion of exactly 611 bytes (padded in the content), like a short real answer. */
export function fixedCompletion(size = 611) {
  const make = (/** @type {string} */ content) =>
    JSON.stringify({
      id: 'chatcmpl-bench0000000000000000000000',
      object: 'chat.completion',
      created: 1700000000,
      model: 'fake-model',
      system_fingerprint: 'fp_bench',
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 12, completion_tokens: 40, total_tokens: 52 },
    });
  const base = make('');
  const words = 'The quick brown fox jumps over the lazy dog. '.repeat(20).slice(0, size - Buffer.byteLength(base));
  const out = Buffer.from(make(words));
  if (out.length !== size) throw new Error(`fixed completion is ${out.length} bytes, not ${size}`);
  return out;
}

function startFixed() {
  const body = fixedCompletion();
  const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
  const server = http.createServer((req, res) => {
    req.resume(); // the body does not matter; reading it keeps the connection reusable
    res.writeHead(200, headers);
    res.end(body);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  return listen(server);
}

const nowMs = () => performance.timeOrigin + performance.now();

/** @param {unknown} v @param {number} def @param {number} max */
const intHeader = (v, def, max) => {
  const n = Number(v);
  return typeof v === 'string' && Number.isInteger(n) && n >= 0 ? Math.min(n, max) : def;
};

function startSse() {
  let seq = 0;
  const server = http.createServer((req, res) => {
    const chunks = intHeader(req.headers['x-fake-chunks'], 20, 10_000);
    const delay = intHeader(req.headers['x-fake-chunk-delay-ms'], 20, 600_000);
    const id = `chatcmpl-bench${++seq}`;
    const created = Math.floor(Date.now() / 1000);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      let i = 0;
      /** @type {NodeJS.Timeout|undefined} */
      let timer;
      res.on('close', () => clearTimeout(timer));
      const next = () => {
        if (res.destroyed) return;
        if (i < chunks) {
          const delta = i === 0 ? `{"role":"assistant","content":"tok${i} "}` : `{"content":"tok${i} "}`;
          // `ts` last, written at the moment of the write: the relay lag is arrival − ts
          res.write(`data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"fake-model","choices":[{"index":0,"delta":${delta},"finish_reason":null}],"ts":${nowMs().toFixed(3)}}\n\n`);
          i++;
          timer = setTimeout(next, delay);
          return;
        }
        res.end(
          `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"fake-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":${chunks},"total_tokens":${12 + chunks}}}\n\ndata: [DONE]\n\n`,
        );
      };
      timer = setTimeout(next, delay);
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  return listen(server);
}

/** @param {http.Server} server @returns {Promise<{port: number, close: () => void}>} */
function listen(server) {
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: HOST, backlog: 4096 }, () => {
      const port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
      resolve({
        port,
        close: () => {
          server.close();
          for (const s of sockets) s.destroy();
        },
      });
    });
  });
}

async function main() {
  if (process.argv.includes('--fixed-only')) {
    // one fixed upstream alone in its process, which the fleet part kills mid-run
    const fixed = await startFixed();
    process.stdout.write(JSON.stringify({ ready: true, fixed: fixed.port }) + '\n');
    return;
  }
  const fixed = await startFixed();
  const sse = await startSse();
  const fake = await startFakeUpstream({ port: 0 });
  const fakeH2c = await startFakeUpstream({ port: 0, h2c: true });
  process.stdout.write(JSON.stringify({ ready: true, fixed: fixed.port, sse: sse.port, fake: fake.port, fakeH2c: fakeH2c.port }) + '\n');
  const bye = () => {
    fixed.close();
    sse.close();
    void fake.close();
    void fakeH2c.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once('SIGTERM', bye);
  process.once('SIGINT', bye);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`upstreams: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
