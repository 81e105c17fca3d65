#!/usr/bin/env node
/**
 * What watching an SSE answer costs per chunk (after `npm run build`):
 * `node scripts/bench/sse-watch.mjs [other-dist-dir...]`. The watcher sees every chunk of every
 * streamed answer, so this is the proxy's per-token overhead for token accounting.
 *
 * The chunks are shaped like vLLM's (one event per chunk, compact JSON, 215–275 bytes): a
 * chat stream of plain content deltas, one of a reasoning model (reasoning then content), one
 * of tool-call argument deltas, a legacy completions stream and a Responses API stream, none
 * with usage except the Responses one (`response.completed`). Each stream is 256 chunks and
 * a fresh watcher, as per request. Given other builds' dist directories (say a copy of dist/
 * taken before a change), all are timed in the same process, runs interleaved, for a
 * before/after. On a shared VM the figures move by ±15% from one process to the next: run it
 * a few times.
 *
 * Prints ns per chunk (best of 15 runs of ~1M chunks) and the mean chunk size.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const RUNS = 15;
const STREAM_CHUNKS = 256;
const STREAMS = 16; // distinct streams, so no single byte pattern is learnt
const PASSES = 250; // 16 × 256 × 250 ≈ 1M chunks per run

const here = new URL('../../dist/observe/usage.js', import.meta.url);
const builds = [{ name: 'this build', url: here }];
for (const dir of process.argv.slice(2).reverse()) builds.unshift({ name: dir, url: pathToFileURL(resolve(dir, 'observe/usage.js')) });
for (const b of builds) b.Watcher = (await import(b.url.href)).SseUsageWatcher;

const TOKENS = [' the', ' of', ' and', ' to', ' a', ' in', ' is', ' that', ' for', ' it', 'Hello', ',', '.', ' world', '\n\n', '\n', ' café', ' naïve', ' 日本', '語', ' "quoted"', ' 🙂', '**', ' function', '()', ' {', '    ', ' return', ' x', ' =', ' 42', ';', ' München', ' über', ' résumé'];
const ARGS = ['{"', 'city', '":', ' "', 'Paris', '",', ' "', 'unit', '":', ' "', 'celsius', '"}'];
const hex = (n, seed) => Array.from({ length: n }, (_, i) => ((seed * 31 + i * 7) % 16).toString(16)).join('');

function chatStream(seed, kind) {
  const id = `chatcmpl-${hex(32, seed)}`;
  const model = seed % 2 ? 'Qwen/Qwen3-8B' : 'meta-llama/Llama-3.1-8B-Instruct';
  const head = `{"id":"${id}","object":"chat.completion.chunk","created":${1730000000 + seed},"model":"${model}","choices":[{"index":0,"delta":`;
  const tail = ',"logprobs":null,"finish_reason":null}]}';
  const out = [`data: ${head}{"role":"assistant","content":""}${tail}\n\n`];
  for (let i = 1; i < STREAM_CHUNKS - 1; i++) {
    const t = TOKENS[(seed + i * 7) % TOKENS.length];
    let delta;
    if (kind === 'tools') delta = i === 1 ? { tool_calls: [{ id: `chatcmpl-tool-${hex(32, i)}`, type: 'function', index: 0, function: { name: 'get_weather', arguments: '' } }] } : { tool_calls: [{ index: 0, function: { arguments: ARGS[i % ARGS.length] } }] };
    else if (kind === 'reasoning' && i < STREAM_CHUNKS / 2) delta = { reasoning: t };
    else delta = { content: t };
    out.push(`data: ${head}${JSON.stringify(delta)}${tail}\n\n`);
  }
  out.push(`data: ${head}{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}\n\n`);
  out.push('data: [DONE]\n\n');
  return out.slice(0, STREAM_CHUNKS);
}

function completionsStream(seed) {
  const head = `{"id":"cmpl-${hex(32, seed)}","object":"text_completion","created":${1730000000 + seed},"model":"meta-llama/Llama-3.1-8B","choices":[{"index":0,"text":`;
  return Array.from({ length: STREAM_CHUNKS }, (_, i) => `data: ${head}${JSON.stringify(TOKENS[(seed + i) % TOKENS.length])},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}\n\n`);
}

function responsesStream(seed) {
  const item = `msg_${hex(32, seed)}`;
  const out = [`event: response.created\ndata: {"response":{"id":"resp_${hex(32, seed)}","created_at":1730000000,"model":"Qwen/Qwen3-8B","object":"response","output":[],"status":"in_progress","usage":null},"sequence_number":0,"type":"response.created"}\n\n`];
  for (let i = 1; i < STREAM_CHUNKS - 1; i++) {
    out.push(`event: response.output_text.delta\ndata: {"content_index":0,"delta":${JSON.stringify(TOKENS[(seed + i) % TOKENS.length])},"item_id":"${item}","logprobs":[],"output_index":0,"sequence_number":${i},"type":"response.output_text.delta"}\n\n`);
  }
  out.push(`event: response.completed\ndata: {"response":{"id":"resp_${hex(32, seed)}","model":"Qwen/Qwen3-8B","object":"response","output":[],"status":"completed","usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":254,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":284}},"sequence_number":${STREAM_CHUNKS - 1},"type":"response.completed"}\n\n`);
  return out;
}

const SHAPES = {
  'chat, content': (s) => chatStream(s, 'content'),
  'chat, reasoning': (s) => chatStream(s, 'reasoning'),
  'chat, tool calls': (s) => chatStream(s, 'tools'),
  completions: completionsStream,
  responses: responsesStream,
};

function time(Watcher, streams) {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < PASSES; p++) {
    for (const chunks of streams) {
      const w = new Watcher();
      for (let i = 0; i < chunks.length; i++) w.push(chunks[i]);
      sink += w.usage() === null ? 0 : 1;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  return { ns, sink };
}

console.log(`node ${process.version}, ${STREAMS} streams × ${STREAM_CHUNKS} chunks × ${PASSES} passes per run, best of ${RUNS} runs\n`);
console.log(`| shape | bytes/chunk | ${builds.map((b) => `${b.name} ns/chunk`).join(' | ')} |`);
console.log(`| --- | ---: | ${builds.map(() => '---:').join(' | ')} |`);
for (const [shape, make] of Object.entries(SHAPES)) {
  const streams = Array.from({ length: STREAMS }, (_, s) => make(s).map((c) => Buffer.from(c)));
  const chunks = streams.flat();
  const bytes = chunks.reduce((n, c) => n + c.length, 0) / chunks.length;
  for (const b of builds) time(b.Watcher, streams); // warm-up
  const best = builds.map(() => Infinity);
  for (let r = 0; r < RUNS; r++) {
    builds.forEach((b, k) => {
      best[k] = Math.min(best[k], time(b.Watcher, streams).ns / (PASSES * chunks.length));
    });
  }
  console.log(`| ${shape} | ${bytes.toFixed(0)} | ${best.map((ns) => ns.toFixed(0)).join(' | ')} |`);
}
