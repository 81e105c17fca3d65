#!/usr/bin/env node
// `npm run demo`: the bundled fake LLM on 127.0.0.1 and the compiled proxy in front of it,
// then curl examples to try. Ctrl-C stops both. PORT / FAKE_PORT choose the ports (defaults
// 8000 and 8001; 0 = any free port); any other proxy variable passes through.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { startFakeUpstream } from './fake-upstream.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fakePort = Number(process.env.FAKE_PORT ?? 8001);
const proxyPort = process.env.PORT ?? '8000';

let fake;
try {
  fake = await startFakeUpstream({ port: fakePort, chunks: 8, chunkDelayMs: 150 });
} catch (err) {
  console.error(`demo: cannot start the fake LLM on 127.0.0.1:${fakePort} (${err.code ?? err.message}); set FAKE_PORT=0 or free the port`);
  process.exit(1);
}

const proxy = spawn(process.execPath, [join(root, 'dist', 'main.js')], {
  env: { LOG_DIR: join(root, 'logs'), ...process.env, HOST: process.env.HOST ?? '127.0.0.1', PORT: proxyPort, UPSTREAM_URL: fake.url },
  stdio: ['ignore', 'pipe', 'inherit'],
});

let shown = false;
proxy.stdout.setEncoding('utf8').on('data', (text) => {
  process.stdout.write(text);
  const m = !shown && /"msg":"listening"[^\n]*"port":(\d+)/.exec(text);
  if (!m) return;
  shown = true;
  const base = `http://127.0.0.1:${m[1]}`;
  console.log(`
openai-proxy demo: the proxy on ${base}, in front of the fake LLM on ${fake.url}

Try:
  curl ${base}/health
  curl ${base}/v1/models
  curl ${base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"fake-model","messages":[{"role":"user","content":"Hello!"}]}'
  curl -N ${base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'
  curl ${base}/stats

OpenAI SDKs: set base_url / baseURL to ${base}/v1 (any api key works with the fake).
Logs: ${join(root, 'logs')}/proxy.log and requests.log. Ctrl-C stops the demo.
`);
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  proxy.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
proxy.on('exit', async (code) => {
  await fake.close();
  process.exit(stopping ? 0 : (code ?? 1));
});
