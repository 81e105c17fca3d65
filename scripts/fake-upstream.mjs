#!/usr/bin/env node
/**
 * fake-upstream.mjs: a dependency-free, OpenAI-compatible fake LLM server.
 *
 * The demo, the end-to-end tests and the benchmark of the proxy talk to it
 * instead of a real model server. Answers are deterministic (a request with
 * `tools` gets a tool call, streamed as vLLM streams it), streams are paced
 * by timers, and a FIFO queue of faults (close, status, hang, reset, slow)
 * lets a test script exactly how the next requests fail. Counters in `stats`
 * let tests see what reached the upstream: retries, aborts, connection reuse,
 * health checks and model listings.
 *
 * Several fakes make a fleet: each has a `name`, sent on every answer as the
 * `x-fake-upstream` header (and as `system_fingerprint: "fake-<name>"` in chat,
 * completions and embeddings bodies and chunks), may serve only a `models` list,
 * and answers `GET /health` 200 until `setHealth(503)` makes it a server still
 * loading its model. `close()` kills one; a new fake on the same `port` is it
 * coming back.
 *
 * It serves HTTP/1.1 (with WebSocket echo on /v1/realtime) or cleartext HTTP/2
 * with prior knowledge (h2c), and only ever listens on 127.0.0.1.
 *
 * Library:  import { startFakeUpstream, wsConnect } from './fake-upstream.mjs'
 * CLI:      node scripts/fake-upstream.mjs [--port N] [--name NAME] [--models a,b] [--h2c] [--chunks N] [--chunk-delay-ms N]
 * Control:  GET /_fake/stats, POST /_fake/fault (JSON fault), POST /_fake/health {"status":503}, POST /_fake/reset
 *
 * This file is the library's entry and the CLI; the server lives in
 * ./fake-upstream/ (server.mjs starts it, request-handler.mjs and routes.mjs
 * answer, faults.mjs scripts failures, ws-*.mjs speak WebSocket).
 */
import { pathToFileURL } from 'node:url';
import { startFakeUpstream } from './fake-upstream/server.mjs';

export { startFakeUpstream } from './fake-upstream/server.mjs';
export { wsConnect } from './fake-upstream/ws-client.mjs';
export { parseMultipart } from './fake-upstream/multipart.mjs';
export { encodeFrame } from './fake-upstream/ws-frames.mjs';

/**
 * @typedef {import('./fake-upstream/server.mjs').FakeUpstream} FakeUpstream
 * @typedef {import('./fake-upstream/state.mjs').FakeUpstreamOptions} FakeUpstreamOptions
 * @typedef {import('./fake-upstream/state.mjs').Stats} Stats
 * @typedef {import('./fake-upstream/state.mjs').LastRequest} LastRequest
 * @typedef {import('./fake-upstream/faults.mjs').Fault} Fault
 * @typedef {import('./fake-upstream/faults.mjs').FaultAction} FaultAction
 * @typedef {import('./fake-upstream/multipart.mjs').MultipartPart} MultipartPart
 * @typedef {import('./fake-upstream/ws-client-connection.mjs').WsClient} WsClient
 * @typedef {import('./fake-upstream/ws-client-connection.mjs').WsMessage} WsMessage
 */

const USAGE = `usage: node scripts/fake-upstream.mjs [--port N] [--name NAME] [--models a,b,c] [--h2c] [--chunks N] [--chunk-delay-ms N] [--verbose]
  --port N            listen on 127.0.0.1:N (default: env FAKE_UPSTREAM_PORT, else a free port)
  --name NAME         sent as the x-fake-upstream header of every answer and as
                      system_fingerprint "fake-NAME" in completions (default: fake)
  --models a,b,c      serve only these model ids (default: every id starting with "fake")
  --h2c               cleartext HTTP/2 with prior knowledge instead of HTTP/1.1
  --chunks N          streamed chunks per answer (default 5; header x-fake-chunks)
  --chunk-delay-ms N  delay between chunks (default 10; header x-fake-chunk-delay-ms)
                      (header x-fake-tokens-per-second R, a decimal: chunks at R a second
                      on a schedule from the stream's start, so late timers do not drift it;
                      header x-fake-stamp: 1 adds "ts", the write's wall-clock ms, to each)
                      (header x-fake-cached-tokens N: chat and completions usage reports
                      N of the prompt tokens as cached, prompt_tokens_details.cached_tokens)
  --verbose           log each request to stderr
  GET /health answers 200 {"status":"ok"}; POST /_fake/health {"status":503} makes it
  answer 503 like a server loading its model. Also: GET /_fake/stats, POST /_fake/fault,
  POST /_fake/reset (clears faults, counters and the health status).`;

/**
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 * @returns {FakeUpstreamOptions & {verbose?: boolean, help?: boolean}}
 */
function parseCliArgs(argv, env) {
  /** @type {FakeUpstreamOptions & {verbose?: boolean, help?: boolean}} */
  const opts = {};
  if (env.FAKE_UPSTREAM_PORT) opts.port = Number(env.FAKE_UPSTREAM_PORT);
  /** @type {Record<string, 'port'|'chunks'|'chunkDelayMs'>} */
  const numeric = { '--port': 'port', '--chunks': 'chunks', '--chunk-delay-ms': 'chunkDelayMs' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const raw = inline ?? argv[++i];
      if (raw === undefined) throw new Error(`${flag} needs a value`);
      return raw;
    };
    if (flag === '--name') opts.name = value();
    else if (flag === '--models') opts.models = value().split(',').map((id) => id.trim()).filter(Boolean);
    else if (flag === '--h2c') opts.h2c = true;
    else if (flag === '--verbose') opts.verbose = true;
    else if (flag === '--help' || flag === '-h') opts.help = true;
    else if (flag in numeric) {
      const raw = inline ?? argv[++i];
      const n = Number(raw);
      if (raw === undefined || raw === '' || !Number.isFinite(n)) throw new Error(`${flag} needs a number`);
      opts[numeric[flag]] = n;
    } else throw new Error(`unknown argument: ${argv[i]}`);
  }
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseCliArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${/** @type {Error} */ (err).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { verbose, help: _help, ...serverOpts } = opts;
  // stdout carries exactly one line (scripts parse it); request logs go to stderr.
  const logger = verbose ? (/** @type {string} */ line) => process.stderr.write(`${line}\n`) : null;
  let fake;
  try {
    fake = await startFakeUpstream({ ...serverOpts, logger });
  } catch (err) {
    if (!(err instanceof RangeError)) throw err; // a bad option value; listen errors keep their stack
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const shutdown = async () => {
    await fake.close();
    process.exit(0);
  };
  // Handlers first: a script may signal us as soon as it reads the line below.
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  process.stdout.write(`fake-upstream listening on ${fake.url} (${fake.h2c ? 'h2c' : 'http/1.1'})\n`);
}

const isMain = (() => {
  try {
    return Boolean(process.argv[1]) && import.meta.url === pathToFileURL(process.argv[1]).href;
  } catch {
    return false;
  }
})();

if (isMain) {
  main().catch((err) => {
    process.stderr.write(`fake-upstream: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
