#!/usr/bin/env node
/**
 * The benchmark of openai-proxy (`npm run bench`, after `npm run build`).
 *
 * In one run, on 127.0.0.1 only, it measures direct vs a naive Node pipe proxy (the floor)
 * vs openai-proxy with every feature on vs with them off vs nginx (when installed):
 *
 *   throughput   POST /v1/chat/completions against a fixed 611-byte answer, at 16 and 64
 *                keep-alive connections: req/s and ratio to direct, p50/p99, the proxy's CPU
 *                µs per request (utime+stime from /proc/<pid>/stat) and RSS. Load from wrk
 *                when installed, else from the built-in generator (a child process).
 *   streaming    200 concurrent SSE streams of 20 chunks 20 ms apart from an upstream that
 *                stamps every chunk with its send time: time to first byte, per-chunk relay
 *                lag (arrival − send) p50/p99, total time p50 and what the proxy adds to it.
 *   concurrency  1,000 and 10,000 slow streams held open at once (10 chunks 2 s apart): the
 *                proxy's RSS, descriptors, and how many streams were dropped.
 *   fleet        three upstreams against one: CPU per request of balancing; and failover,
 *                one of three upstreams killed under steady load (bench/fleet.mjs).
 *   fairness     a heavy and a light client behind 4 slots, fifo against fair queue order;
 *                and a key's tokens per minute held under 2 minutes of load (bench/fairness.mjs).
 *   tokens       K streams of one ~220-byte SSE event per token at R tokens/s, K ramped:
 *                CPU µs per relayed event, relay lag p99 and where it passes 10 ms, RSS;
 *                TTFB of 200 streams started together; WORKERS=1 and 2 (bench/tokens.mjs).
 *
 * Prints Markdown tables, then one PASS/MISS line per target of the issue, and writes
 * everything as JSON to bench/results/<ISO date>.json (compare two with --compare=a,b).
 * Every process it starts is killed at the end, on error and on Ctrl-C.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, release as osRelease, tmpdir } from 'node:os';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backgroundMeter, baseEnv, cpuMicros, killAll, openFds, processTree, runLoadgen as loadgen, softNofile, start, statusBytes, stop, track, waitForLine, which } from './bench/procs.mjs';
import { runWrk, writeLuaScript } from './bench/wrk.mjs';
import { freePort, writeNginxConfig } from './bench/nginx.mjs';
import { analyseProfile, formatAnalysis } from './bench/cpuprofile.mjs';
import { fleetTables, partFleet } from './bench/fleet.mjs';
import { fairnessTables, partFairness } from './bench/fairness.mjs';
import { partTokens, tokensTables } from './bench/tokens.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HERE = join(ROOT, 'scripts', 'bench');
const HOST = '127.0.0.1';
const PATH = '/v1/chat/completions';
const AUTH = { authorization: 'Bearer sk-bench-0123456789abcdef' };
const CHAT_BODY = JSON.stringify({ model: 'fake-model', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello! Say something short.' }] });
const STREAM_BODY = JSON.stringify({ model: 'fake-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello! Stream something.' }] });

const USAGE = `usage: node scripts/bench.mjs [options]     (npm run bench -- [options])
  --quick                 short run: 3 s per point, 64 connections only, 1,000 held streams only
  --only=PARTS            throughput,streaming,concurrency,fleet,fairness,tokens,profile
                          (comma-separated; default all but profile)
  --profile               also profile openai-proxy (features on) with node --cpu-prof under the
                          throughput and the streaming loads, and print where its CPU time goes
  --loadgen=wrk|node      force the load generator (default: wrk when installed)
  --aligned               streaming: rounds of streams all started at once, every chunk of every
                          stream due at the same instant (default: steady state, each stream
                          replaced when it ends, starts spread out)
  --no-nginx              skip nginx even when installed
  --proxy=PATH            the proxy's entry point (default dist/main.js)
  --duration=S            seconds per throughput run (default 5, quick 3)
  --repeat=N              runs per throughput point, interleaved across targets; the best is
                          kept, all are in the JSON (default 3, quick 1)
  --wait=S                before each point, wait up to S s (default 15; 0 = never) for the rest
                          of the machine to be quiet (< 0.25 cores busy), 90 s in all at most;
                          the cores other processes used during each point are reported anyway
 --label=TEXT            what is measured, recorded in the JSON (default: git describe of the proxy's tree)
  --out=FILE              JSON result path (default bench/results/<ISO date>.json)
  --compare=A.json,B.json print the differences between two saved runs, run nothing`;

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

function parseArgs(argv) {
  const o = { quick: false, only: new Set(['throughput', 'streaming', 'concurrency', 'fleet', 'fairness', 'tokens']), profile: false, aligned: false, loadgen: /** @type {string|null} */ (null), nginx: true, proxy: join(ROOT, 'dist', 'main.js'), label: '', duration: 0, repeat: 0, wait: 15, out: '', compare: /** @type {string[]|null} */ (null) };
  for (const arg of argv) {
    const [k, v] = arg.split(/=(.*)/s, 2);
    if (k === '--quick') o.quick = true;
    else if (k === '--profile') o.profile = true;
    else if (k === '--no-nginx') o.nginx = false;
    else if (k === '--aligned') o.aligned = true;
    else if (k === '--only' && v) {
      o.only = new Set(v.split(','));
      for (const p of o.only) if (!['throughput', 'streaming', 'concurrency', 'fleet', 'fairness', 'tokens', 'profile'].includes(p)) throw new Error(`--only: unknown part ${p}`);
      if (o.only.has('profile')) o.profile = true;
    } else if (k === '--loadgen' && (v === 'wrk' || v === 'node')) o.loadgen = v;
    else if (k === '--proxy' && v) o.proxy = resolve(v);
    else if (k === '--duration' && Number(v) > 0) o.duration = Number(v);
    else if (k === '--repeat' && Number.isInteger(Number(v)) && Number(v) > 0) o.repeat = Number(v);
    else if (k === '--out' && v) o.out = resolve(v);
    else if (k === '--label' && v) o.label = v;
    else if (k === '--wait' && v !== undefined && Number(v) >= 0) o.wait = Number(v);
    else if (k === '--compare' && v) o.compare = v.split(',');
    else if (k === '--help' || k === '-h') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else throw new Error(`unknown argument: ${arg}\n${USAGE}`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// small helpers
// ---------------------------------------------------------------------------

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
const MB = (/** @type {number} */ b) => b / (1024 * 1024);
const f = (/** @type {number|null|undefined} */ v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(d));
const int = (/** @type {number|null|undefined} */ v) => (v === null || v === undefined ? '—' : Math.round(v).toLocaleString('en-US'));
const log = (/** @type {string} */ s) => process.stderr.write(`[bench] ${s}\n`);

/** @param {string[]} header @param {(string|number)[][]} rows */
function table(header, rows) {
  const out = [`| ${header.join(' | ')} |`, `| ${header.map((h, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
}

/** @param {string} cmd @param {string[]} args */
function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return null;
  }
}

/** A tool's version line, whatever stream it prints it on. @param {string} cmd @param {string[]} args */
function versionOf(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim() || null;
}

/** GET a text document from a local URL, null on any failure. @param {string} url @returns {Promise<string|null>} */
function getText(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(res.statusCode === 200 ? text : null));
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => req.destroy());
  });
}

/** nodejs_heap_size_used_bytes from a Prometheus exposition. @param {string|null} text */
function heapFromMetrics(text) {
  const m = text === null ? null : /^nodejs_heap_size_used_bytes(?:\{[^}]*\})?\s+([\d.e+]+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** GET a JSON document from a local URL (the proxy's /stats), null on any failure. @param {string} url */
async function getJson(url) {
  const text = await getText(url);
  try {
    return text === null ? null : JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * Other work on the machine skews every figure (two cores are shared): wait, within a
 * budget, until what this benchmark did not start uses less than QUIET_CORES.
 */
const QUIET_CORES = 0.25;
let quietBudgetMs = 90_000;
/** @param {{opts: {wait: number}}} ctx @param {string} what */
async function waitQuiet(ctx, what) {
  if (ctx.opts.wait <= 0 || quietBudgetMs <= 0) return;
  const t0 = Date.now();
  const until = t0 + Math.min(ctx.opts.wait * 1000, quietBudgetMs);
  let quiet = 0;
  let bg = 0;
  while (Date.now() < until) {
    const m = backgroundMeter();
    await sleep(500);
    bg = m.stop();
    if (bg < QUIET_CORES) {
      if (++quiet >= 2) break;
    } else quiet = 0;
  }
  const waited = Date.now() - t0;
  quietBudgetMs -= waited;
  if (waited > 1500) log(`${what}: waited ${f(waited / 1000, 1)} s for the machine to be quiet (other processes: ${f(bg, 2)} cores${bg >= QUIET_CORES ? ', still busy: measuring anyway' : ''})`);
}

// ---------------------------------------------------------------------------
// the processes: upstreams, targets, load
// ---------------------------------------------------------------------------


async function startUpstreams() {
  const child = start(process.execPath, [join(HERE, 'upstreams.mjs')], { env: baseEnv() });
  const ports = await waitForLine(child, (l) => (JSON.parse(l).ready ? JSON.parse(l) : undefined), 'the upstreams');
  return { child, ...ports };
}

/**
 * @typedef {object} Target
 * @property {string} name
 * @property {number} port
 * @property {() => number[]} pids      processes whose CPU and RSS are the target's ("" for direct)
 * @property {number|null} mainPid
 * @property {(() => Promise<void>)} stop
 */

/** @param {number} port @returns {Target} */
function directTarget(port) {
  return { name: 'direct', port, pids: () => [], mainPid: null, stop: async () => {} };
}

/** @param {string} upstreamUrl @returns {Promise<Target>} */
async function startNaive(upstreamUrl) {
  const child = start(process.execPath, [join(HERE, 'naive-proxy.mjs')], { env: { ...baseEnv(), UPSTREAM_URL: upstreamUrl } });
  const port = await waitForLine(child, (l) => JSON.parse(l).port, 'the naive proxy');
  return { name: 'naive node proxy', port, pids: () => [/** @type {number} */ (child.pid)], mainPid: child.pid ?? null, stop: () => stop(child) };
}

const FEATURES_ON = {
  RATE_LIMIT_ENABLED: 'true',
  RATE_LIMIT_REQUESTS: '1000000000', // a bucket so big that nothing is ever refused
  RATE_LIMIT_WINDOW: '1',
  TOKEN_LIMIT_TPM: '1000000000000', // a token window nothing fills: every request reserves and settles
  CIRCUIT_BREAKER_ENABLED: 'true',
  MAX_RETRIES: '3',
  METRICS_ENABLED: 'true',
  REQUEST_LOG_ENABLED: 'true',
};
const WORKERS2 = 'openai-proxy, features on, WORKERS=2';
const WORKERS2_OFF = 'openai-proxy, features off, WORKERS=2';
const FEATURES_OFF = { RATE_LIMIT_ENABLED: 'false', CIRCUIT_BREAKER_ENABLED: 'false', MAX_RETRIES: '0', METRICS_ENABLED: 'false', REQUEST_LOG_ENABLED: 'false' };

/**
 * @param {{name: string, main: string, upstreamUrl: string, features: 'on'|'off', logDir: string, extraEnv?: Record<string,string>, nodeArgs?: string[]}} o
 * @returns {Promise<Target & {child: any}>}
 */
async function startOpenaiProxy(o) {
  mkdirSync(o.logDir, { recursive: true });
  const env = {
    ...baseEnv(),
    UPSTREAM_URL: o.upstreamUrl,
    HOST,
    PORT: '0',
    LOG_DIR: o.logDir,
    LOG_LEVEL: 'INFO',
    LOG_STDOUT: 'true', // the 'listening' line tells the port
    POOL_SIZE: '20000',
    WORKERS: '1', // one process unless a row asks for more: every row keeps its meaning whatever the default becomes
    ...(o.features === 'on' ? FEATURES_ON : FEATURES_OFF),
    ...(o.extraEnv ?? {}),
  };
  const child = start(process.execPath, [...(o.nodeArgs ?? []), o.main], { env, cwd: dirname(dirname(o.main)) });
  const port = await waitForLine(
    child,
    (l) => {
      const j = JSON.parse(l);
      return j.msg === 'listening' ? j.port : undefined;
    },
    `openai-proxy (${o.name})`,
  );
  // the process tree: with WORKERS > 1 the primary's cluster workers are its children
  return { name: o.name, port, pids: () => (child.pid ? processTree(child.pid) : []), mainPid: child.pid ?? null, stop: () => stop(child, 10_000), child };
}

/**
 * @param {{nginx: string, dir: string, upstreamPort: number, buffering: boolean}} o
 * @returns {Promise<Target>}
 */
async function startNginx(o) {
  mkdirSync(o.dir, { recursive: true });
  const port = /** @type {number} */ (await freePort());
  const hard = Number(tryRun('bash', ['-c', 'ulimit -Hn'])) || 20000;
  const conf = writeNginxConfig({ dir: o.dir, port, upstreamPort: o.upstreamPort, buffering: o.buffering, maxFiles: hard });
  const child = start(o.nginx, ['-p', o.dir, '-c', conf, '-e', '/dev/null'], { env: baseEnv() });
  // ready when the port accepts connections
  const until = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise((res) => {
      const req = http.get({ host: HOST, port, path: '/', agent: false }, (r) => {
        r.resume();
        res(true);
      });
      req.on('error', () => res(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > until) throw new Error(`nginx did not start:\n${child.tail.join('')}`);
    await sleep(50);
  }
  return { name: 'nginx', port, pids: () => (child.pid ? processTree(child.pid) : []), mainPid: child.pid ?? null, stop: () => stop(child) };
}

/** @param {number[]} pids */
const cpuOf = (pids) => pids.reduce((a, p) => a + cpuMicros(p), 0);
/** @param {number[]} pids */
const rssOf = (pids, field = /** @type {'VmRSS'|'VmHWM'} */ ('VmRSS')) => pids.reduce((a, p) => a + statusBytes(p, field), 0);


// ---------------------------------------------------------------------------
// part 1: throughput
// ---------------------------------------------------------------------------

/**
 * One measured point: warm up, read /proc, load, read /proc.
 * @param {Target} t
 * @param {{conns: number, durationMs: number, warmupMs: number, useWrk: string|null, lua: string, upstreamPid: number, ctx: any}} o
 */
async function throughputPoint(t, o) {
  const url = `http://${HOST}:${t.port}${PATH}`;
  const pids = t.pids();
  /** @type {{cpu: number, up: number, bg: ReturnType<typeof backgroundMeter>}|null} */
  let before = null;
  const mark = () => {
    before = { cpu: cpuOf(pids), up: cpuMicros(o.upstreamPid), bg: backgroundMeter() };
  };
  await waitQuiet(o.ctx, `${t.name}, ${o.conns} conns`);
  /** @type {any} */
  let r;
  if (o.useWrk) {
    await runWrk({ wrk: o.useWrk, url, script: o.lua, connections: o.conns, durationMs: o.warmupMs }, track);
    await sleep(300);
    mark();
    r = await runWrk({ wrk: o.useWrk, url, script: o.lua, connections: o.conns, durationMs: o.durationMs }, track);
  } else {
    r = await loadgen({ mode: 'throughput', host: HOST, port: t.port, path: PATH, body: CHAT_BODY, headers: AUTH, connections: o.conns, durationMs: o.durationMs, warmupMs: o.warmupMs, handshake: true }, undefined, mark);
  }
  const b = /** @type {{cpu: number, up: number, bg: ReturnType<typeof backgroundMeter>}} */ (/** @type {unknown} */ (before));
  const backgroundCores = b.bg.stop();
  const cpu0 = b.cpu;
  const up0 = b.up;
  const cpu1 = cpuOf(pids);
  const up1 = cpuMicros(o.upstreamPid);
  return {
    target: t.name,
    connections: o.conns,
    requests: r.requests,
    seconds: r.seconds,
    rps: r.rps,
    latencyMs: r.latencyMs,
    errors: (r.errors ?? 0) + (r.non2xx ?? 0),
    cpuUsPerRequest: pids.length ? (cpu1 - cpu0) / r.requests : null,
    cpuShare: pids.length ? (cpu1 - cpu0) / 1e6 / r.seconds : null,
    upstreamCpuUsPerRequest: (up1 - up0) / r.requests,
    rssBytes: pids.length ? rssOf(pids) : null,
    peakRssBytes: pids.length ? rssOf(pids, 'VmHWM') : null,
    processes: pids.length || null,
    backgroundCores,
  };
}

/** @param {any} ctx */
async function partThroughput(ctx) {
  const { opts, ups, tmp } = ctx;
  const upstreamUrl = `http://${HOST}:${ups.fixed}`;
  const lua = writeLuaScript(tmp, { body: CHAT_BODY, headers: AUTH });
  /** @type {(() => Promise<Target>)[]} */
  const makers = [
    async () => directTarget(ups.fixed),
    () => startNaive(upstreamUrl),
    () => startOpenaiProxy({ name: 'openai-proxy, features on', main: opts.proxy, upstreamUrl, features: 'on', logDir: join(tmp, 'logs-on') }),
    () => startOpenaiProxy({ name: 'openai-proxy, features off', main: opts.proxy, upstreamUrl, features: 'off', logDir: join(tmp, 'logs-off') }),
    // CPU and RSS of the primary and its workers (the process tree)
    () => startOpenaiProxy({ name: WORKERS2, main: opts.proxy, upstreamUrl, features: 'on', logDir: join(tmp, 'logs-on-w2'), extraEnv: { WORKERS: '2' } }),
    // the cluster alone: nothing crosses IPC per request (no limits, no request log)
    () => startOpenaiProxy({ name: WORKERS2_OFF, main: opts.proxy, upstreamUrl, features: 'off', logDir: join(tmp, 'logs-off-w2'), extraEnv: { WORKERS: '2' } }),
  ];
  if (ctx.nginx) makers.push(() => startNginx({ nginx: ctx.nginx, dir: join(tmp, 'nginx-tp'), upstreamPort: ups.fixed, buffering: true }));
  const targets = [];
  for (const make of makers) targets.push(await make());
  const rows = [];
  try {
    // repetitions interleaved (every target once, then again), so a slow drift of the machine
    // touches all targets alike; per point the run with the most req/s is kept (the least
    // disturbed: on a shared machine noise only ever takes away), every run is in the JSON
    for (const conns of ctx.plan.connections) {
      /** @type {Map<Target, any[]>} */
      const runs = new Map(targets.map((t) => [t, []]));
      for (let rep = 1; rep <= ctx.plan.repeat; rep++) {
        for (const t of targets) {
          log(`throughput: ${t.name}, ${conns} connections, ${ctx.plan.durationMs / 1000} s (run ${rep}/${ctx.plan.repeat})`);
          runs.get(t)?.push(await throughputPoint(t, { conns, durationMs: ctx.plan.durationMs, warmupMs: ctx.plan.warmupMs, useWrk: ctx.wrk, lua, upstreamPid: ups.child.pid, ctx }));
        }
      }
      for (const t of targets) {
        const all = /** @type {any[]} */ (runs.get(t));
        const best = all.reduce((a, b) => (b.rps > a.rps ? b : a));
        rows.push({ ...best, runs: all.length, rpsRange: [Math.min(...all.map((r) => r.rps)), Math.max(...all.map((r) => r.rps))], cpuUsRange: best.cpuUsPerRequest === null ? null : [Math.min(...all.map((r) => r.cpuUsPerRequest)), Math.max(...all.map((r) => r.cpuUsPerRequest))], all });
      }
    }
  } finally {
    for (const t of targets) await t.stop();
  }
  for (const r of rows) {
    const d = rows.find((x) => x.target === 'direct' && x.connections === r.connections);
    r.ratioToDirect = d ? r.rps / d.rps : null;
  }
  return rows;
}

/** @param {any[]} rows */
function throughputTable(rows) {
  return table(
    ['target', 'conns', 'req/s', 'vs direct', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU cores', 'RSS MB', 'errors', 'req/s all runs', 'other load'],
    rows.map((r) => [
      r.target,
      r.connections,
      int(r.rps),
      `${f(r.ratioToDirect, 2)}×`,
      f(r.latencyMs.p50, 2),
      f(r.latencyMs.p99, 2),
      f(r.cpuUsPerRequest, 1),
      f(r.cpuShare, 2),
      f(r.rssBytes === null ? null : MB(r.rssBytes), 1),
      r.errors,
      r.runs > 1 ? `${int(r.rpsRange[0])}–${int(r.rpsRange[1])}` : '—',
      f(r.backgroundCores, 2),
    ]),
  );
}

// ---------------------------------------------------------------------------
// part 2: streaming
// ---------------------------------------------------------------------------

/**
 * The streaming load: `plan.streams` SSE streams open at once, in steady state: each of
 * `plan.streams` virtual users starts its next stream when the last ended, first starts
 * spread over one stream's length, for plan.streamSeconds. With --aligned instead:
 * `rounds` lock-step rounds, all streams started at once (every chunk of every stream due at
 * the same instant: the worst burst, and new requests land on the proxy all together).
 * @param {any} plan @param {number} port @param {number} rounds
 */
function streamSpec(plan, port, rounds) {
  const streamMs = plan.chunks * plan.chunkDelayMs;
  return {
    mode: 'streams',
    host: HOST,
    port,
    path: PATH,
    body: STREAM_BODY,
    headers: { ...AUTH, 'x-fake-chunks': String(plan.chunks), 'x-fake-chunk-delay-ms': String(plan.chunkDelayMs) },
    streams: plan.streams,
    keepAlive: true,
    expectChunks: plan.chunks,
    deadlineMs: 120_000,
    ...(plan.aligned
      ? { rounds, staggerMs: 0 }
      : // steady state: each virtual user streams back to back; first starts spread over one stream
        { durationMs: plan.streamSeconds * 1000, staggerMs: streamMs, streamMs }),
  };
}

/** The streaming load in words. @param {any} plan */
function streamLoad(plan) {
  const what = `${plan.streams} concurrent SSE streams × ${plan.chunks} chunks ${plan.chunkDelayMs} ms apart`;
  return plan.aligned ? `${what}, all started at once, ${plan.streamRounds} rounds` : `${what}, steady (each ended stream replaced at once) for ${plan.streamSeconds} s`;
}

/** @param {any} ctx */
async function partStreaming(ctx) {
  const { opts, ups, tmp, plan } = ctx;
  const upstreamUrl = `http://${HOST}:${ups.sse}`;
  /** @type {(() => Promise<Target>)[]} */
  const makers = [
    async () => directTarget(ups.sse),
    () => startNaive(upstreamUrl),
    () => startOpenaiProxy({ name: 'openai-proxy, features on', main: opts.proxy, upstreamUrl, features: 'on', logDir: join(tmp, 'logs-stream') }),
  ];
  if (ctx.nginx) makers.push(() => startNginx({ nginx: ctx.nginx, dir: join(tmp, 'nginx-sse'), upstreamPort: ups.sse, buffering: false }));
  const spec = (/** @type {number} */ port, /** @type {number} */ rounds) => streamSpec(plan, port, rounds);
  const targets = [];
  for (const make of makers) targets.push(await make());
  /** @type {Map<Target, any[]>} */
  const runs = new Map(targets.map((t) => [t, []]));
  try {
    for (const t of targets) await loadgen(spec(t.port, 1)); // a first round each warms the targets up
    // repetitions interleaved across targets; per target the run with the lowest lag p99 is kept
    for (let rep = 1; rep <= plan.streamRepeat; rep++) {
      for (const t of targets) {
        log(`streaming: ${t.name}, ${streamLoad(plan)} (run ${rep}/${plan.streamRepeat})`);
        await waitQuiet(ctx, `streaming, ${t.name}`);
        const pids = t.pids();
        let cpu0 = 0;
        let bg = backgroundMeter();
        // one warm-up round in the client's own process (its JIT, its keep-alive sockets), then measure
        const r = await loadgen({ ...spec(t.port, plan.streamRounds), ...(plan.aligned ? { warmupRounds: 1 } : { warmupMs: 1000 }), handshake: true }, undefined, () => {
          cpu0 = cpuOf(pids);
          bg = backgroundMeter();
        });
        const backgroundCores = bg.stop();
        const cpu1 = cpuOf(pids);
        runs.get(t)?.push({
          target: t.name,
          streams: plan.streams,
          rounds: plan.aligned ? plan.streamRounds : null,
          attempted: r.attempted,
          ok: r.ok,
          failed: r.failed,
          failures: r.failures,
          ttfbMs: r.ttfbMs,
          lagMs: r.lagMs,
          totalMs: r.totalMs,
          cpuUsPerStream: pids.length ? (cpu1 - cpu0) / r.attempted : null,
          rssBytes: pids.length ? rssOf(pids) : null,
          backgroundCores,
        });
      }
    }
  } finally {
    for (const t of targets) await t.stop();
  }
  const rows = targets.map((t) => {
    const all = /** @type {any[]} */ (runs.get(t));
    const best = all.reduce((a, b) => ((b.lagMs.p99 ?? Infinity) < (a.lagMs.p99 ?? Infinity) ? b : a));
    return { ...best, runs: all.length, lagP99Range: [Math.min(...all.map((r) => r.lagMs.p99)), Math.max(...all.map((r) => r.lagMs.p99))], all };
  });
  const direct = rows.find((r) => r.target === 'direct');
  for (const r of rows) r.addedTotalP50Ms = direct && r.totalMs.p50 !== null ? r.totalMs.p50 - direct.totalMs.p50 : null;
  return rows;
}

/** @param {any[]} rows */
function streamingTable(rows) {
  return table(
    ['target', 'streams (in all)', 'TTFB p50 ms', 'TTFB p99 ms', 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'total p50 ms', 'added p50 ms', 'CPU µs/stream', 'RSS MB', 'failed', 'lag p99 all runs', 'other load'],
    rows.map((r) => [
      r.target,
      `${r.streams} (${int(r.attempted)})`,
      f(r.ttfbMs.p50, 2),
      f(r.ttfbMs.p99, 2),
      f(r.lagMs.p50, 2),
      f(r.lagMs.p99, 2),
      f(r.lagMs.max, 1),
      f(r.totalMs.p50, 1),
      f(r.addedTotalP50Ms, 2),
      f(r.cpuUsPerStream, 0),
      f(r.rssBytes === null ? null : MB(r.rssBytes), 1),
      r.failed,
      r.runs > 1 ? `${f(r.lagP99Range[0], 2)}–${f(r.lagP99Range[1], 2)}` : '—',
      f(r.backgroundCores, 2),
    ]),
  );
}

// ---------------------------------------------------------------------------
// part 3: concurrency (streams held open)
// ---------------------------------------------------------------------------

/** @param {any} ctx */
async function partConcurrency(ctx) {
  const { opts, ups, tmp, plan } = ctx;
  const rows = [];
  const cases = [];
  const on = (/** @type {number} */ n, h2 = false) => ({
    n,
    label: `openai-proxy, features on${h2 ? ', UPSTREAM_HTTP2' : ''}`,
    make: () =>
      startOpenaiProxy({
        name: `openai-proxy, features on${h2 ? ', UPSTREAM_HTTP2' : ''}`,
        main: opts.proxy,
        upstreamUrl: `http://${HOST}:${h2 ? ups.fakeH2c : ups.fake}`,
        features: 'on',
        logDir: join(tmp, `logs-held-${n}${h2 ? '-h2' : ''}`),
        extraEnv: h2 ? { UPSTREAM_HTTP2: 'true' } : {},
      }),
  });
  for (const n of plan.held) cases.push(on(n));
  const most = Math.max(...plan.held);
  if (most >= 10_000) {
    // an HTTP/1.1 upstream costs the proxy a descriptor per stream on each side; over h2
    // the upstream side is ~100 sessions
    cases.push(on(most, true));
    cases.push({ n: most, label: 'naive node proxy', make: () => startNaive(`http://${HOST}:${ups.fake}`) });
    if (ctx.nginx) cases.push({ n: most, label: 'nginx', make: () => startNginx({ nginx: ctx.nginx, dir: join(tmp, `nginx-held-${most}`), upstreamPort: ups.fake, buffering: false }) });
  }
  for (const c of cases) {
    await waitQuiet(ctx, `concurrency, ${c.label}, ${c.n}`);
    const t = await c.make();
    try {
      await sleep(300);
      const pids = t.pids();
      const idleRss = rssOf(pids);
      const nofile = t.mainPid ? softNofile(pids[pids.length - 1]) : 0;
      log(`concurrency: ${t.name}, ${int(c.n)} streams held (${plan.heldChunks} chunks ${plan.heldDelayMs / 1000} s apart)`);
      let peakRss = idleRss;
      let peakFds = 0;
      let rssAllOpen = null;
      /** @type {Promise<number|null>|null} */
      let heapAllOpen = null;
      const sampler = setInterval(() => {
        const ps = t.pids();
        peakRss = Math.max(peakRss, rssOf(ps));
        peakFds = Math.max(peakFds, ps.reduce((a, p) => a + openFds(p), 0));
      }, 200);
      const cpu0 = cpuOf(pids);
      const bg = backgroundMeter();
      const r = await loadgen(
        {
          mode: 'streams',
          host: HOST,
          port: t.port,
          path: PATH,
          body: STREAM_BODY,
          headers: { ...AUTH, 'x-fake-chunks': String(plan.heldChunks), 'x-fake-chunk-delay-ms': String(plan.heldDelayMs) },
          streams: c.n,
          rounds: 1,
          keepAlive: false,
          maxConnecting: 256,
          windowOn: 'connect',
          expectChunks: plan.heldChunks,
          deadlineMs: plan.heldDeadlineMs,
          progressMs: 1000,
        },
        (ev) => {
          if (ev.event === 'allOpen') {
            rssAllOpen = rssOf(t.pids());
            if (t.name.startsWith('openai-proxy')) heapAllOpen = getText(`http://${HOST}:${t.port}/metrics`).then(heapFromMetrics);
          }
        },
      );
      clearInterval(sampler);
      const backgroundCores = bg.stop();
      const cpu1 = cpuOf(pids);
      const stats = t.name.startsWith('openai-proxy') ? await getJson(`http://${HOST}:${t.port}/stats`) : null;
      rows.push({
        target: t.name,
        streams: c.n,
        ok: r.ok,
        dropped: r.failed,
        failures: r.failures,
        peakOpen: r.peakOpen,
        allOpenAtMs: r.allOpenAtMs,
        seconds: r.seconds,
        idleRssBytes: idleRss,
        rssAllOpenBytes: rssAllOpen,
        heapUsedAllOpenBytes: heapAllOpen === null ? null : await heapAllOpen,
        peakRssBytes: peakRss,
        peakFds,
        nofileLimit: nofile,
        cpuUsPerStream: (cpu1 - cpu0) / c.n,
        ttfbMs: r.ttfbMs,
        backgroundCores,
        proxyStats: stats ? { requests: stats.requests?.by_status, streams: stats.streams, last_upstream_error: stats.last_upstream_error, upstream: stats.upstream } : null,
      });
    } finally {
      await t.stop();
    }
    await sleep(500);
  }
  return rows;
}

/** @param {any[]} rows */
function concurrencyTable(rows) {
  return table(
    ['target', 'streams', 'completed', 'dropped', 'why', 'peak open', 'RSS idle MB', 'RSS all open MB', 'JS heap all open MB', 'RSS peak MB', 'fds peak / limit', 'CPU µs/stream', 'other load'],
    rows.map((r) => [
      r.target,
      int(r.streams),
      int(r.ok),
      int(r.dropped),
      Object.entries(r.failures)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || '—',
      int(r.peakOpen),
      f(MB(r.idleRssBytes), 1),
      f(r.rssAllOpenBytes === null ? null : MB(r.rssAllOpenBytes), 1),
      f(r.heapUsedAllOpenBytes === null ? null : MB(r.heapUsedAllOpenBytes), 1),
      f(MB(r.peakRssBytes), 1),
      `${int(r.peakFds)} / ${int(r.nofileLimit)}`,
      f(r.cpuUsPerStream, 0),
      f(r.backgroundCores, 2),
    ]),
  );
}

// ---------------------------------------------------------------------------
// profile
// ---------------------------------------------------------------------------

/** @param {any} ctx */
async function partProfile(ctx) {
  const { opts, ups, tmp, plan } = ctx;
  const out = {};
  for (const kind of /** @type {const} */ (['throughput', 'streaming'])) {
    const dir = join(tmp, `cpuprof-${kind}`);
    mkdirSync(dir, { recursive: true });
    const upstreamUrl = `http://${HOST}:${kind === 'throughput' ? ups.fixed : ups.sse}`;
    const t = await startOpenaiProxy({ name: `openai-proxy, features on (profiled, ${kind})`, main: opts.proxy, upstreamUrl, features: 'on', logDir: join(tmp, `logs-prof-${kind}`), nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
    let point;
    try {
      if (kind === 'throughput') {
        const conns = Math.max(...plan.connections);
        log(`profile: openai-proxy (features on) under node --cpu-prof, throughput load, ${conns} connections, ${plan.durationMs / 1000} s`);
        point = await throughputPoint(t, { conns, durationMs: plan.durationMs, warmupMs: plan.warmupMs, useWrk: ctx.wrk, lua: writeLuaScript(tmp, { body: CHAT_BODY, headers: AUTH }), upstreamPid: ups.child.pid, ctx });
        point = { rps: point.rps, cpuUsPerRequest: point.cpuUsPerRequest };
      } else {
        log(`profile: openai-proxy (features on) under node --cpu-prof, streaming load, ${streamLoad(plan)}`);
        await waitQuiet(ctx, 'profile, streaming');
        const r = await loadgen(streamSpec(plan, t.port, plan.streamRounds));
        point = { lagP99Ms: r.lagMs.p99, lagP50Ms: r.lagMs.p50, failed: r.failed };
      }
    } finally {
      await t.stop(); // SIGTERM: the profile is written on exit
    }
    const file = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'));
    if (!file) throw new Error('node --cpu-prof wrote no profile');
    mkdirSync(ctx.resultsDir, { recursive: true });
    const kept = join(ctx.resultsDir, `${ctx.stamp}-openai-proxy-${kind}.cpuprofile`);
    copyFileSync(join(dir, file), kept);
    out[kind] = { profile: relative(ROOT, kept), underProfiler: point, analysis: analyseProfile(kept, { cwd: dirname(dirname(opts.proxy)), top: 30 }) };
  }
  return out;
}

// ---------------------------------------------------------------------------
// targets of the issue
// ---------------------------------------------------------------------------

/** @param {any} res */
function evaluateTargets(res) {
  /** @type {{status: 'PASS'|'MISS'|'SKIP', target: string, figures: string}[]} */
  const out = [];
  /** @param {boolean|null} ok @param {string} target @param {string} figures @param {any[]} [rows] the measurements it rests on */
  const add = (ok, target, figures, rows = []) => {
    const bg = Math.max(0, ...rows.filter(Boolean).map((r) => r.backgroundCores ?? 0));
    out.push({ status: ok === null ? 'SKIP' : ok ? 'PASS' : 'MISS', target, figures: bg >= QUIET_CORES ? `${figures} [noisy: other processes used ${f(bg, 2)} cores]` : figures });
  };
  const tp = res.throughput ?? [];
  const levels = [...new Set(tp.map((/** @type {any} */ r) => r.connections))];
  const row = (/** @type {string} */ name, /** @type {number} */ c) => tp.find((/** @type {any} */ r) => r.target === name && r.connections === c);
  if (levels.length === 0) add(null, 'throughput targets', 'throughput not run');
  for (const c of levels) {
    const on = row('openai-proxy, features on', c);
    const off = row('openai-proxy, features off', c);
    const naive = row('naive node proxy', c);
    const ngx = row('nginx', c);
    const ratio = on.rps / naive.rps;
    add(ratio >= 1, `features on ≥ naive Node proxy throughput (${c} conns; aim 1.3×)`, `${int(on.rps)} vs ${int(naive.rps)} req/s = ${f(ratio, 2)}×${ratio >= 1.3 ? ' (aim met)' : ' (aim 1.3× not met)'}`, [on, naive]);
    add(on.cpuUsPerRequest <= 60, `features on ≤ 60 µs CPU per request (${c} conns)`, `${f(on.cpuUsPerRequest, 1)} µs/req (naive ${f(naive.cpuUsPerRequest, 1)}, off ${f(off.cpuUsPerRequest, 1)})`, [on]);
    if (ngx) add(on.cpuUsPerRequest <= 4 * ngx.cpuUsPerRequest, `features on CPU per request within 4× nginx's (${c} conns)`, `${f(on.cpuUsPerRequest, 1)} vs nginx ${f(ngx.cpuUsPerRequest, 1)} µs/req = ${f(on.cpuUsPerRequest / ngx.cpuUsPerRequest, 2)}×`, [on, ngx]);
    else add(null, `features on CPU within 4× nginx's (${c} conns)`, 'nginx not installed');
    add(ratio >= 1.3, `features on ≥ 1.3× the naive Node proxy's throughput (${c} conns)`, `${int(on.rps)} vs ${int(naive.rps)} req/s = ${f(ratio, 2)}×`, [on, naive]);
    const w2 = row(WORKERS2, c);
    if (w2) add(w2.rps >= 1.4 * on.rps, `WORKERS=2 ≥ 1.4× the throughput of WORKERS=1, features on (${c} conns)`, `${int(w2.rps)} vs ${int(on.rps)} req/s = ${f(w2.rps / on.rps, 2)}× (${w2.processes ?? '?'} proxy processes; CPU ${f(w2.cpuUsPerRequest, 1)} vs ${f(on.cpuUsPerRequest, 1)} µs/req)`, [w2, on]);
    const w2off = row(WORKERS2_OFF, c);
    if (w2off) add(w2off.rps >= 1.4 * off.rps, `WORKERS=2 ≥ 1.4× the throughput of WORKERS=1, features off (${c} conns)`, `${int(w2off.rps)} vs ${int(off.rps)} req/s = ${f(w2off.rps / off.rps, 2)}× (${w2off.processes ?? '?'} proxy processes; CPU ${f(w2off.cpuUsPerRequest, 1)} vs ${f(off.cpuUsPerRequest, 1)} µs/req)`, [w2off, off]);
    const diff = Math.abs(off.rps - on.rps) / off.rps;
    add(diff < 0.15, `features off vs on differ by < 15% (${c} conns)`, `off ${int(off.rps)} vs on ${int(on.rps)} req/s: ${f(100 * diff, 1)}% (CPU ${f(off.cpuUsPerRequest, 1)} vs ${f(on.cpuUsPerRequest, 1)} µs/req)`, [on, off]);
  }
  const st = res.streaming ?? [];
  const sOn = st.find((/** @type {any} */ r) => r.target === 'openai-proxy, features on');
  const sNgx = st.find((/** @type {any} */ r) => r.target === 'nginx');
  const sDirect = st.find((/** @type {any} */ r) => r.target === 'direct');
  if (sOn) {
    add(sOn.lagMs.p99 <= 2 && sOn.failed === 0, `streaming per-chunk relay lag p99 ≤ 2 ms at ${sOn.streams} streams`, `p99 ${f(sOn.lagMs.p99, 2)} ms, p50 ${f(sOn.lagMs.p50, 2)} ms (direct p99 ${f(sDirect?.lagMs.p99, 2)} ms${sNgx ? `, nginx ${f(sNgx.lagMs.p99, 2)} ms` : ''}); failed ${sOn.failed}`, [sOn, sDirect, sNgx]);
    if (sNgx) add(sOn.addedTotalP50Ms - sNgx.addedTotalP50Ms <= 10, 'streaming added total p50 within 10 ms of nginx', `added ${f(sOn.addedTotalP50Ms, 2)} ms vs nginx ${f(sNgx.addedTotalP50Ms, 2)} ms (Δ ${f(sOn.addedTotalP50Ms - sNgx.addedTotalP50Ms, 2)} ms)`, [sOn, sNgx, sDirect]);
    else add(null, 'streaming added total p50 within 10 ms of nginx', 'nginx not installed');
  } else add(null, 'streaming targets', 'streaming not run');
  const tk = res.tokens?.rows ?? [];
  const tW1 = tk.find((/** @type {any} */ r) => r.target === 'openai-proxy, WORKERS=1');
  const tW2 = tk.find((/** @type {any} */ r) => r.target === 'openai-proxy, WORKERS=2');
  const tNaive = tk.find((/** @type {any} */ r) => r.target === 'naive node proxy');
  if (tW1?.ref && tNaive?.ref) {
    const at = `${res.tokens.refStreams} streams × ${res.tokens.rate} tokens/s`;
    const ratio = tW1.ref.cpuUsPerEvent / tNaive.ref.cpuUsPerEvent;
    const w2 = tW2?.ref ? `; WORKERS=2 ${f(tW2.ref.cpuUsPerEvent, 2)} µs/event (${tW2.ref.processes ?? '?'} processes)` : '';
    add(ratio <= 0.8, `token streams: CPU per relayed event ≤ 0.8× the naive proxy's (${at})`, `WORKERS=1 ${f(tW1.ref.cpuUsPerEvent, 2)} vs naive ${f(tNaive.ref.cpuUsPerEvent, 2)} µs/event = ${f(ratio, 2)}×${w2}`, [tW1.ref, tNaive.ref]);
    const b1 = tW1.burst;
    const bn = tNaive.burst;
    const b2 = tW2?.burst ? `; WORKERS=2 ${f(tW2.burst.ttfbMs.p50, 2)} / ${f(tW2.burst.ttfbMs.p99, 2)} ms` : '';
    add(b1.ttfbMs.p50 <= bn.ttfbMs.p50 && b1.ttfbMs.p99 <= bn.ttfbMs.p99 && b1.failed === 0, `token streams: TTFB of a ${b1.streams}-stream burst ≤ the naive proxy's (p50 and p99)`, `WORKERS=1 p50 / p99 ${f(b1.ttfbMs.p50, 2)} / ${f(b1.ttfbMs.p99, 2)} ms vs naive ${f(bn.ttfbMs.p50, 2)} / ${f(bn.ttfbMs.p99, 2)} ms${b2}; failed ${b1.failed}`, [b1, bn]);
  } else add(null, 'token-rate targets', res.tokens ? 'no reference step for openai-proxy or the naive proxy' : 'tokens not run');
  const cc = res.concurrency ?? [];
  const big = cc.filter((/** @type {any} */ r) => r.target === 'openai-proxy, features on').sort((/** @type {any} */ a, /** @type {any} */ b) => b.streams - a.streams)[0];
  if (big && big.streams >= 10_000) {
    add(big.peakRssBytes < 300 * 1024 * 1024 && big.dropped === 0, `${int(big.streams)} concurrent open streams: RSS < 300 MB, none dropped`, `RSS peak ${f(MB(big.peakRssBytes), 1)} MB, dropped ${int(big.dropped)} of ${int(big.streams)}, peak open ${int(big.peakOpen)}, fds peak ${int(big.peakFds)} / limit ${int(big.nofileLimit)}`, [big]);
    const h2 = cc.find((/** @type {any} */ r) => r.target.includes('UPSTREAM_HTTP2') && r.streams === big.streams);
    if (h2) add(h2.peakRssBytes < 300 * 1024 * 1024 && h2.dropped === 0, `${int(h2.streams)} concurrent open streams over an HTTP/2 upstream (UPSTREAM_HTTP2): RSS < 300 MB, none dropped`, `RSS peak ${f(MB(h2.peakRssBytes), 1)} MB, dropped ${int(h2.dropped)}, peak open ${int(h2.peakOpen)}, fds peak ${int(h2.peakFds)}`, [h2]);
  } else add(null, '10,000 concurrent open streams: RSS < 300 MB, none dropped', big ? `only ${int(big.streams)} streams in this run (${f(MB(big.peakRssBytes), 1)} MB, dropped ${big.dropped})` : 'concurrency not run');
  const fair = res.fairness?.fairness.find((/** @type {any} */ r) => r.order === 'fair');
  const fifo = res.fairness?.fairness.find((/** @type {any} */ r) => r.order === 'fifo');
  if (fair) add(fair.p99S <= 2, 'fair queue: a light client behind a flooding one waits p99 ≤ 2 service times', `fair p99 ${f(fair.p99S, 2)} S, p50 ${f(fair.p50S, 2)} S (fifo p99 ${f(fifo?.p99S, 2)} S); light requests ${fair.lightRequests} vs ${fifo?.lightRequests} in fifo`);
  else add(null, 'fair queue: light client p99 ≤ 2 service times', 'fairness not run');
  const acc = res.fairness?.accuracy;
  if (acc) add(acc.withinBound && acc.perMinuteAverage >= 0.8 * acc.tpm, "token limit: every 60 s window ≤ tpm + one request, and ≥ 80% of tpm served", `worst window ${int(acc.worstWindow)} ≤ ${int(acc.bound)}: ${acc.withinBound ? 'yes' : 'no'}; ${int(acc.perMinuteAverage)} per minute on average of tpm ${int(acc.tpm)}`);
  else add(null, 'token limit accuracy', 'fairness not run');
  return out;
}

// ---------------------------------------------------------------------------
// compare two saved runs
// ---------------------------------------------------------------------------

/** @param {string} a @param {string} b */
function compare(a, b) {
  const A = JSON.parse(readFileSync(a, 'utf8'));
  const B = JSON.parse(readFileSync(b, 'utf8'));
  const pct = (/** @type {number} */ x, /** @type {number} */ y) => (x ? `${y >= x ? '+' : ''}${f((100 * (y - x)) / x, 1)}%` : '—');
  const lines = [`# ${a} → ${b}`, ''];
  const tp = (B.throughput ?? []).map((/** @type {any} */ r) => {
    const o = (A.throughput ?? []).find((/** @type {any} */ x) => x.target === r.target && x.connections === r.connections);
    return [r.target, r.connections, o ? int(o.rps) : '—', int(r.rps), o ? pct(o.rps, r.rps) : '—', o ? f(o.cpuUsPerRequest, 1) : '—', f(r.cpuUsPerRequest, 1), o && r.cpuUsPerRequest ? pct(o.cpuUsPerRequest, r.cpuUsPerRequest) : '—'];
  });
  if (tp.length) lines.push(table(['target', 'conns', 'req/s A', 'req/s B', 'Δ', 'CPU µs A', 'CPU µs B', 'Δ'], tp), '');
  const st = (B.streaming ?? []).map((/** @type {any} */ r) => {
    const o = (A.streaming ?? []).find((/** @type {any} */ x) => x.target === r.target);
    return [r.target, o ? f(o.lagMs.p99, 2) : '—', f(r.lagMs.p99, 2), o ? f(o.addedTotalP50Ms, 2) : '—', f(r.addedTotalP50Ms, 2)];
  });
  if (st.length) lines.push(table(['target', 'lag p99 A', 'lag p99 B', 'added p50 A', 'added p50 B'], st), '');
  const cc = (B.concurrency ?? []).map((/** @type {any} */ r) => {
    const o = (A.concurrency ?? []).find((/** @type {any} */ x) => x.target === r.target && x.streams === r.streams);
    return [r.target, int(r.streams), o ? f(MB(o.peakRssBytes), 1) : '—', f(MB(r.peakRssBytes), 1), o ? int(o.dropped) : '—', int(r.dropped)];
  });
  if (cc.length) lines.push(table(['target', 'streams', 'RSS MB A', 'RSS MB B', 'dropped A', 'dropped B'], cc), '');
  const tk = (B.tokens?.rows ?? []).map((/** @type {any} */ r) => {
    const o = (A.tokens?.rows ?? []).find((/** @type {any} */ x) => x.target === r.target);
    return [r.target, f(o?.ref?.cpuUsPerEvent, 2), f(r.ref?.cpuUsPerEvent, 2), f(o?.ref?.lagMs.p99, 2), f(r.ref?.lagMs.p99, 2), f(o?.burst?.ttfbMs.p99, 2), f(r.burst?.ttfbMs.p99, 2)];
  });
  if (tk.length) lines.push(table(['target', 'CPU µs/event A', 'CPU µs/event B', 'token lag p99 A', 'token lag p99 B', 'burst TTFB p99 A', 'burst TTFB p99 B'], tk), '');
  const ta = new Map((A.targets ?? []).map((/** @type {any} */ t) => [t.target, t.status]));
  for (const t of B.targets ?? []) lines.push(`${ta.get(t.target) ?? '?'} → ${t.status}  ${t.target}`);
  process.stdout.write(lines.join('\n') + '\n');
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.compare) {
    if (opts.compare.length !== 2) throw new Error('--compare needs two files: --compare=a.json,b.json');
    compare(opts.compare[0], opts.compare[1]);
    return;
  }
  if (!existsSync(opts.proxy)) throw new Error(`${opts.proxy} not found: run npm run build first`);
  const tokens = opts.quick
    ? { rate: 50, chunks: 100, steps: [50, 100, 150, 200, 300], refStreams: 100, warmupMs: 1000, measureMs: 3000, burst: 200, burstRounds: 3, burstChunks: 10 }
    : { rate: 50, chunks: 200, steps: [25, 50, 100, 150, 200, 300, 400, 600, 800], refStreams: 100, warmupMs: 1500, measureMs: 5000, burst: 200, burstRounds: 5, burstChunks: 10 };
  const plan = opts.quick
    ? { connections: [64], durationMs: (opts.duration || 3) * 1000, warmupMs: 1000, repeat: opts.repeat || 1, streams: 200, chunks: 20, chunkDelayMs: 20, streamRounds: 2, streamSeconds: 3, streamRepeat: 1, held: [1000], heldChunks: 10, heldDelayMs: 2000, heldDeadlineMs: 90_000 }
    : { connections: [16, 64], durationMs: (opts.duration || 5) * 1000, warmupMs: 1000, repeat: opts.repeat || 3, streams: 200, chunks: 20, chunkDelayMs: 20, streamRounds: 5, streamSeconds: 5, streamRepeat: 3, held: [1000, 10_000], heldChunks: 10, heldDelayMs: 2000, heldDeadlineMs: 120_000 };
  Object.assign(plan, { aligned: opts.aligned, tokens });
  const wrkPath = which('wrk');
  const nginxPath = opts.nginx ? which('nginx') : null;
  const useWrk = opts.loadgen === 'node' ? null : wrkPath;
  if (opts.loadgen === 'wrk' && !wrkPath) throw new Error('--loadgen=wrk but wrk is not installed');
  const tmp = mkdtempSync(join(tmpdir(), 'openai-proxy-bench-'));
  tmpDir = tmp;
  const started = new Date();
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const resultsDir = join(ROOT, 'bench', 'results');
  const hardNofile = Number(tryRun('bash', ['-c', 'ulimit -Hn'])) || null;
  const env = {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    kernel: osRelease(),
    nofileHardLimit: hardNofile,
    loadgen: useWrk ? `${versionOf(useWrk, ['-v'])?.replace(/ \[.*$/, '') ?? 'wrk'}, 1 thread` : 'built-in node load generator',
    nginx: nginxPath ? versionOf(nginxPath, ['-v'])?.replace(/^nginx version: /, '') ?? 'nginx' : null,
    proxy: relative(ROOT, opts.proxy) || opts.proxy,
    label: opts.label || null,
    git: spawnSync('git', ['-C', dirname(dirname(opts.proxy)), 'describe', '--always', '--dirty'], { encoding: 'utf8' }).stdout?.trim() || null,
  };
  log(`node ${env.node}, ${env.cpus} cpus, load: ${env.loadgen}, nginx: ${env.nginx ?? 'not installed'}, open files limit ${hardNofile}`);
  const ups = await startUpstreams();
  const ctx = { opts, plan, ups, tmp, wrk: useWrk, nginx: nginxPath, resultsDir, stamp };
  /** @type {any} */
  const res = { version: 1, startedAt: started.toISOString(), args: process.argv.slice(2), plan, env };
  try {
    if (opts.only.has('throughput')) res.throughput = await partThroughput(ctx);
    if (opts.only.has('streaming')) res.streaming = await partStreaming(ctx);
    if (opts.only.has('concurrency')) res.concurrency = await partConcurrency(ctx);
    if (opts.only.has('fleet')) {
      const writeLua = () => writeLuaScript(tmp, { body: CHAT_BODY, headers: AUTH });
      res.fleet = await partFleet(ctx, { startOpenaiProxy, throughputPoint, writeLua, loadgen, getJson, log, sleep, baseEnv, HERE, CHAT_BODY, AUTH, PATH });
    }
    if (opts.only.has('fairness')) res.fairness = await partFairness(ctx, { startOpenaiProxy, log, sleep });
    if (opts.only.has('tokens')) res.tokens = await partTokens(ctx, { directTarget, startNaive, startNginx, startOpenaiProxy, loadgen, cpuOf, rssOf, getJson, waitQuiet, log, sleep, STREAM_BODY, AUTH, PATH });
    if (opts.profile) res.profile = await partProfile(ctx);
  } finally {
    await stop(ups.child);
  }
  res.finishedAt = new Date().toISOString();
  res.targets = evaluateTargets(res);

  const out = [];
  out.push(`## openai-proxy benchmark, ${res.startedAt}`, '', `node ${env.node} · ${env.cpus} CPUs (${env.cpuModel}) · load: ${env.loadgen} · nginx: ${env.nginx ?? 'not installed'} · proxy: ${env.proxy} (${env.label ?? env.git ?? 'no git'})`, '');
  if (res.throughput) out.push(`### Throughput: POST ${PATH}, fixed 611-byte answer, ${plan.durationMs / 1000} s per run, best of ${plan.repeat} runs`, '', throughputTable(res.throughput), '');
  if (res.streaming) out.push(`### Streaming: ${streamLoad(plan)}, best of ${plan.streamRepeat} runs (lag = client arrival − upstream send time of each chunk)`, '', streamingTable(res.streaming), '');
  if (res.concurrency) out.push(`### Concurrency: slow streams held open (${plan.heldChunks} chunks ${plan.heldDelayMs / 1000} s apart)`, '', concurrencyTable(res.concurrency), '');
  if (res.fleet) out.push(`### Several upstreams: balancing cost at 64 connections, best of ${plan.repeat} runs`, '', fleetTables(res.fleet, table), '');
  if (res.fairness) out.push(`### Fairness: a heavy client (50 in flight) and a light one (1 at a time) behind 4 slots, service time S = ${res.fairness.fairness[0]?.serviceMs} ms`, '', fairnessTables(res.fairness, table), '');
  if (res.tokens) out.push(`### Token rate: streams of one SSE event per token at ${res.tokens.rate} tokens/s, ${res.tokens.chunks} tokens each, features on`, '', tokensTables(res.tokens, table), '');
  if (res.profile?.throughput) out.push(`### CPU profile of openai-proxy, features on, throughput load (${res.profile.throughput.profile}; ${int(res.profile.throughput.underProfiler.rps)} req/s under the profiler)`, '', formatAnalysis(res.profile.throughput.analysis, 20), '');
  if (res.profile?.streaming) out.push(`### CPU profile of openai-proxy, features on, streaming load (${res.profile.streaming.profile}; lag p99 ${f(res.profile.streaming.underProfiler.lagP99Ms, 1)} ms under the profiler)`, '', formatAnalysis(res.profile.streaming.analysis, 20), '');
  out.push('### Targets', '', '```');
  for (const t of res.targets) out.push(`${t.status}  ${t.target}: ${t.figures}`);
  out.push('```');
  process.stdout.write(out.join('\n') + '\n');

  mkdirSync(resultsDir, { recursive: true });
  const file = opts.out || join(resultsDir, `${stamp}.json`);
  writeFileSync(file, JSON.stringify(res, null, 2) + '\n');
  log(`results: ${relative(ROOT, file)}`);
}

/** The run's temp dir (logs, nginx config, profiles): removed at exit, whatever happened. */
let tmpDir = '';
process.on('exit', () => {
  killAll();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(sig, () => {
    log(`${sig}: stopping every process started`);
    killAll();
    process.exit(130);
  });
}

main().catch((err) => {
  process.stderr.write(`bench: ${err?.stack ?? err}\n`);
  killAll();
  process.exit(1);
});
