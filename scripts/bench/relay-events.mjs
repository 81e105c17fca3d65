#!/usr/bin/env node
/**
 * The cost of one relayed SSE event (issue 15): bursts of `--streams` streaming chat
 * completions started at once, each `--chunks` events `--delay` ms apart, through the naive
 * Node pipe proxy (the floor) and one or more builds of openai-proxy, measured in the same
 * run. Per target and repetition: the proxy process's CPU (utime+stime from /proc/<pid>/stat)
 * over the measured rounds divided by the events it relayed (per stream the chunks, the usage
 * event and `[DONE]`: the stream's own setup is in the figure, as a real fleet pays it too);
 * the time to the response head of the burst's streams, and the per-chunk relay lag. The
 * load comes from bench/loadgen.mjs in a child process, the stream from bench/upstreams.mjs.
 * Targets run interleaved, repetitions are summarised by their median (the machine is shared).
 *
 *   npm run build && node scripts/bench/relay-events.mjs [--proxy=dist/main.js[:label]]...
 *     [--streams=200] [--chunks=100] [--delay=10] [--rounds=2] [--repeat=5] [--features=on|off]
 *     [--profile=DIR]  (the first proxy under node --cpu-prof, one extra run, then summarised)
 *
 * Loopback only; every process it starts is stopped at the end, on error and on Ctrl-C.
 */
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyseProfile, formatAnalysis } from './cpuprofile.mjs';
import { readFileSync } from 'node:fs';
import { baseEnv, clockTicks, killAll, runLoadgen, start, stop, waitForLine } from './procs.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const HOST = '127.0.0.1';
const BODY = JSON.stringify({ model: 'fake-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello! Stream something.' }] });

function parseArgs(argv) {
  const o = { proxies: /** @type {{main: string, label: string}[]} */ ([]), streams: 200, chunks: 100, delay: 10, rounds: 2, repeat: 5, features: 'on', profile: '' };
  for (const a of argv) {
    const [k, v = ''] = a.replace(/^--/, '').split(/=(.*)/s);
    if (k === 'proxy') {
      const [main, label] = v.split(':');
      o.proxies.push({ main: resolve(main), label: label ?? main });
    } else if (k === 'features' || k === 'profile') o[k] = v;
    else if (k in o) o[k] = Number(v);
    else throw new Error(`unknown option ${a}`);
  }
  if (o.proxies.length === 0) o.proxies.push({ main: join(ROOT, 'dist', 'main.js'), label: 'openai-proxy' });
  return o;
}

const FEATURES = {
  on: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_REQUESTS: '1000000000', RATE_LIMIT_WINDOW: '1', TOKEN_LIMIT_TPM: '1000000000000', CIRCUIT_BREAKER_ENABLED: 'true', MAX_RETRIES: '3', METRICS_ENABLED: 'true', REQUEST_LOG_ENABLED: 'true' },
  off: { RATE_LIMIT_ENABLED: 'false', CIRCUIT_BREAKER_ENABLED: 'false', MAX_RETRIES: '0', METRICS_ENABLED: 'false', REQUEST_LOG_ENABLED: 'false' },
};

async function startNaive(upstreamUrl) {
  const child = start(process.execPath, [join(HERE, 'naive-proxy.mjs')], { env: { ...baseEnv(), UPSTREAM_URL: upstreamUrl } });
  const port = await waitForLine(child, (l) => JSON.parse(l).port, 'the naive proxy');
  return { label: 'naive node proxy', port, pid: /** @type {number} */ (child.pid), stop: () => stop(child) };
}

async function startProxy(p, upstreamUrl, features, nodeArgs = []) {
  const logDir = mkdtempSync(join(tmpdir(), 'relay-events-logs-'));
  const env = { ...baseEnv(), UPSTREAM_URL: upstreamUrl, HOST, PORT: '0', LOG_DIR: logDir, LOG_LEVEL: 'INFO', LOG_STDOUT: 'true', POOL_SIZE: '20000', ...FEATURES[features] };
  const child = start(process.execPath, [...nodeArgs, p.main], { env, cwd: dirname(dirname(p.main)) });
  const port = await waitForLine(child, (l) => (JSON.parse(l).msg === 'listening' ? JSON.parse(l).port : undefined), p.label);
  return { label: p.label, port, pid: /** @type {number} */ (child.pid), stop: () => stop(child, 10_000) };
}


async function measure(o, t) {
  const spec = {
    mode: 'streams',
    host: HOST,
    port: t.port,
    path: '/v1/chat/completions',
    body: BODY,
    headers: { authorization: 'Bearer sk-bench-0123456789abcdef', 'x-fake-chunks': String(o.chunks), 'x-fake-chunk-delay-ms': String(o.delay) },
    streams: o.streams,
    keepAlive: true,
    expectChunks: o.chunks,
    deadlineMs: 120_000,
    rounds: o.rounds,
    staggerMs: 0,
    warmupRounds: 1,
    handshake: true,
  };
  let cpu0 = [0, 0];
  const r = await runLoadgen(spec, undefined, () => (cpu0 = cpuSplit(t.pid)));
  const cpu1 = cpuSplit(t.pid);
  const events = r.ok * (o.chunks + 2);
  return { usPerEvent: events ? (cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]) / events : NaN, sysPerEvent: events ? (cpu1[1] - cpu0[1]) / events : NaN, failed: r.failed, ttfbP50: r.ttfbMs.p50, ttfbP99: r.ttfbMs.p99, lagP50: r.lagMs.p50, lagP99: r.lagMs.p99 };
}

const median = (xs) => {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  return a.length === 0 ? NaN : a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
};
/** [user, system] CPU of a process so far, µs (utime and stime of /proc/<pid>/stat). @param {number} pid */
function cpuSplit(pid) {
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()?.split(' ') ?? [];
  return [(Number(rest[11]) * 1e6) / clockTicks(), (Number(rest[12]) * 1e6) / clockTicks()];
}
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ups = start(process.execPath, [join(HERE, 'upstreams.mjs')], { env: baseEnv() });
  const ports = await waitForLine(ups, (l) => (JSON.parse(l).ready ? JSON.parse(l) : undefined), 'the upstreams');
  const upstreamUrl = `http://${HOST}:${ports.sse}`;
  const targets = [await startNaive(upstreamUrl)];
  for (const p of o.proxies) targets.push(await startProxy(p, upstreamUrl, o.features));
  const runs = new Map(targets.map((t) => [t, /** @type {any[]} */ ([])]));
  const load = `${o.streams} streams at once × ${o.chunks} events ${o.delay} ms apart, ${o.rounds} rounds, features ${o.features}`;
  process.stderr.write(`relay-events: ${load}, ${o.repeat} repetitions\n`);
  try {
    for (let rep = 1; rep <= o.repeat; rep++) {
      for (const t of targets) {
        const r = await measure(o, t);
        runs.get(t)?.push(r);
        process.stderr.write(`  ${rep}/${o.repeat} ${t.label}: ${f(r.usPerEvent)} µs/event (sys ${f(r.sysPerEvent)}), head p50 ${f(r.ttfbP50)} ms, lag p99 ${f(r.lagP99)} ms, failed ${r.failed}\n`);
      }
    }
  } finally {
    for (const t of targets) await t.stop();
  }
  const naive = median(/** @type {any[]} */ (runs.get(targets[0])).map((r) => r.usPerEvent));
  const lines = [`## relay cost per event: ${load}`, '', '| target | µs CPU/event (median) | of which sys | × naive | runs (µs/event) | head TTFB p50 / p99 ms | lag p50 / p99 ms | failed |', '| --- | ---: | ---: | ---: | --- | --- | --- | ---: |'];
  for (const t of targets) {
    const rs = /** @type {any[]} */ (runs.get(t));
    const us = median(rs.map((r) => r.usPerEvent));
    lines.push(`| ${t.label} | ${f(us)} | ${f(median(rs.map((r) => r.sysPerEvent)))} | ${f(us / naive)} | ${rs.map((r) => f(r.usPerEvent, 1)).join(' ')} | ${f(median(rs.map((r) => r.ttfbP50)))} / ${f(median(rs.map((r) => r.ttfbP99)))} | ${f(median(rs.map((r) => r.lagP50)))} / ${f(median(rs.map((r) => r.lagP99)))} | ${rs.reduce((a, r) => a + r.failed, 0)} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (o.profile) {
    mkdirSync(o.profile, { recursive: true });
    const t = await startProxy(o.proxies[0], upstreamUrl, o.features, ['--cpu-prof', `--cpu-prof-dir=${resolve(o.profile)}`]);
    try {
      await measure(o, t);
    } finally {
      await t.stop();
    }
    const file = readdirSync(o.profile).filter((n) => n.endsWith('.cpuprofile')).map((n) => join(o.profile, n)).sort().pop();
    if (file) process.stdout.write('\n' + formatAnalysis(analyseProfile(file, { cwd: dirname(dirname(o.proxies[0].main)), top: 30 }), 30) + '\n');
  }
  await stop(ups);
}

process.once('SIGINT', () => {
  killAll();
  process.exit(130);
});
main().catch((err) => {
  process.stderr.write(`relay-events: ${err?.stack ?? err}\n`);
  killAll();
  process.exit(1);
});
