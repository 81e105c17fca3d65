/**
 * The benchmark's token-rate part (`--only=tokens`, and in the default run): streams as an
 * LLM server sends them, one SSE event per token at R tokens a second, each event a vLLM
 * `chat.completion.chunk` of about 220 bytes (id, object, created, model,
 * system_fingerprint, choices[{index, delta: {content}, logprobs: null, finish_reason}],
 * usage: null), the last with finish_reason "stop", then the usage chunk
 * (stream_options.include_usage) and [DONE].
 *
 *   ramp   K concurrent streams for K in plan.tokens.steps: a steady state from the first
 *          instant (scripts/fake-upstream paces each stream on a schedule,
 *          x-fake-tokens-per-second; the clients' first streams are cut short so that
 *          the ends and restarts are spread over one stream; token phases are spread over
 *          one token period). Per step, in a measured window after a warm-up: the relay lag
 *          of every token event (arrival at the client − the `"ts"` the upstream stamped at
 *          its write, x-fake-stamp: 1; one machine, one clock), the token events the client
 *          received, and the CPU of the target's processes (the proxy's primary and its
 *          workers: the process tree) divided by them: CPU µs per relayed event. A target's
 *          ramp goes on past the reference step until its lag p99 passes 10 ms (a step over
 *          it is measured once more, the lower kept: one noisy step must not end a ramp).
 *   burst  200 streams started together on fresh connections, a few rounds: time to the
 *          response head (TTFB) p50/p99.
 *
 * Targets: direct, the naive Node proxy, nginx when installed, openai-proxy (features on)
 * with WORKERS=1 and WORKERS=2. The load generator is its own process (loadgen.mjs) and
 * reports the cores it used, as the upstream's are read from /proc: while both stay well
 * under one core they are not what limits a step.
 */
import { join } from 'node:path';
import { backgroundMeter, cpuMicros } from './procs.mjs';

const HOST = '127.0.0.1';
const LAG_LIMIT_MS = 10;

/**
 * @param {any} ctx the bench's context (opts, plan, ups, tmp, nginx)
 * @param {any} h helpers from bench.mjs: directTarget, startNaive, startNginx, startOpenaiProxy,
 *   loadgen, cpuOf, rssOf, getJson, waitQuiet, log, sleep, STREAM_BODY, AUTH, PATH
 */
export async function partTokens(ctx, h) {
  const { opts, ups, tmp } = ctx;
  const p = ctx.plan.tokens;
  const upstreamUrl = `http://${HOST}:${ups.fake}`;
  const proxy = (/** @type {number} */ workers) => () =>
    h.startOpenaiProxy({ name: `openai-proxy, WORKERS=${workers}`, main: opts.proxy, upstreamUrl, features: 'on', logDir: join(tmp, `logs-tokens-w${workers}`), extraEnv: { WORKERS: String(workers) } });
  const makers = [async () => h.directTarget(ups.fake), () => h.startNaive(upstreamUrl)];
  if (ctx.nginx) makers.push(() => h.startNginx({ nginx: ctx.nginx, dir: join(tmp, 'nginx-tokens'), upstreamPort: ups.fake, buffering: false }));
  else h.log('tokens: NGINX IS NOT INSTALLED: its row is skipped (apt-get install nginx-light to compare)');
  makers.push(proxy(1), proxy(2));
  const targets = [];
  for (const make of makers) targets.push(await make());
  /** @type {Map<any, {steps: any[], burst: any, processes: number|null, workersReported: number|null}>} */
  const by = new Map();
  try {
    await h.sleep(500); // cluster workers, if any, come up after the primary's 'listening'
    for (const t of targets) by.set(t, { steps: [], burst: null, processes: t.mainPid ? t.pids().length : null, workersReported: await workersReported(t, h) });
    // step by step, every target still ramping at each step (a drift of the machine touches all alike)
    for (const k of p.steps) {
      for (const t of targets) {
        const mine = /** @type {any} */ (by.get(t));
        if (k > p.refStreams && mine.steps.some((/** @type {any} */ s) => s.lagMs.p99 > LAG_LIMIT_MS)) continue;
        await h.waitQuiet(ctx, `tokens, ${t.name}, ${k} streams`);
        h.log(`tokens: ${t.name}, ${k} streams × ${p.rate} tokens/s = ${(k * p.rate).toLocaleString('en-US')} events/s nominal, ${p.measureMs / 1000} s measured`);
        let step = await rampStep(t, k, ctx, h);
        await h.sleep(300); // the cut streams' cleanup, outside the next window
        if (step.lagMs.p99 > LAG_LIMIT_MS) {
          // one noisy step must not end a ramp: measured once more, the lower lag is kept
          // (on a shared machine noise only ever adds lag), both are in the JSON
          h.log(`tokens: ${t.name}, ${k} streams: lag p99 ${step.lagMs.p99.toFixed(1)} ms > ${LAG_LIMIT_MS} ms, measured once more`);
          const again = await rampStep(t, k, ctx, h);
          await h.sleep(300);
          step = { ...(again.lagMs.p99 < step.lagMs.p99 ? again : step), tries: [step, again] };
        }
        mine.steps.push(step);
      }
    }
    for (const t of targets) {
      await h.waitQuiet(ctx, `tokens burst, ${t.name}`);
      h.log(`tokens: ${t.name}, burst of ${p.burst} streams started together, ${p.burstRounds} rounds`);
      /** @type {any} */ (by.get(t)).burst = await burst(t, ctx, h);
    }
  } finally {
    for (const t of targets) await t.stop();
  }
  const rows = targets.map((t) => {
    const mine = /** @type {any} */ (by.get(t));
    const ref = mine.steps.find((/** @type {any} */ s) => s.streams === p.refStreams) ?? null;
    const firstOver = mine.steps.find((/** @type {any} */ s) => s.lagMs.p99 > LAG_LIMIT_MS) ?? null;
    const under = mine.steps.filter((/** @type {any} */ s) => s.lagMs.p99 <= LAG_LIMIT_MS && (!firstOver || s.streams < firstOver.streams));
    return {
      target: t.name,
      processes: mine.processes,
      workersReported: mine.workersReported,
      ref,
      lastUnderLimit: under.at(-1) ?? null,
      firstOverLimit: firstOver,
      burst: mine.burst,
      steps: mine.steps,
      backgroundCores: Math.max(0, ...mine.steps.map((/** @type {any} */ s) => s.backgroundCores), mine.burst?.backgroundCores ?? 0),
    };
  });
  return { rate: p.rate, chunks: p.chunks, refStreams: p.refStreams, lagLimitMs: LAG_LIMIT_MS, nginx: Boolean(ctx.nginx), rows };
}

/** What the proxy says of its workers in /stats, if it says anything. @param {any} t @param {any} h */
async function workersReported(t, h) {
  if (!t.name.startsWith('openai-proxy')) return null;
  const s = await h.getJson(`http://${HOST}:${t.port}/stats`);
  const w = s?.workers ?? s?.cluster?.workers;
  return typeof w === 'number' ? w : Array.isArray(w) ? w.length : null;
}

/** The request every stream of the part sends. @param {any} ctx @param {any} h */
function baseSpec(ctx, h, /** @type {number} */ port) {
  const p = ctx.plan.tokens;
  return { mode: 'streams', host: HOST, port, path: h.PATH, body: h.STREAM_BODY, headers: { ...h.AUTH, 'x-fake-tokens-per-second': String(p.rate), 'x-fake-stamp': '1' } };
}

/**
 * One step of the ramp: `k` streams in a steady state, measured in a window.
 * @param {any} t @param {number} k @param {any} ctx @param {any} h
 */
async function rampStep(t, k, ctx, h) {
  const p = ctx.plan.tokens;
  const streamMs = (p.chunks * 1000) / p.rate;
  let pids = t.pids();
  let cpu0 = 0;
  let cpu1 = 0;
  let up0 = 0;
  let up1 = 0;
  let rss = null;
  let bg = backgroundMeter();
  let backgroundCores = 0;
  const r = await h.loadgen(
    {
      ...baseSpec(ctx, h, t.port),
      streams: k,
      chunks: p.chunks,
      spreadEnds: true,
      staggerMs: 1000 / p.rate, // token phases spread over one token period
      streamMs,
      keepAlive: true,
      durationMs: p.warmupMs + p.measureMs,
      measureFromMs: p.warmupMs,
      cutAtEnd: true,
      deadlineMs: p.warmupMs + p.measureMs + 30_000,
    },
    (/** @type {any} */ ev) => {
      if (ev.event !== 'window') return;
      if (ev.phase === 'open') {
        pids = t.pids();
        cpu0 = h.cpuOf(pids);
        up0 = cpuMicros(ctx.ups.child.pid);
        bg = backgroundMeter();
      } else {
        cpu1 = h.cpuOf(pids);
        up1 = cpuMicros(ctx.ups.child.pid);
        rss = pids.length ? h.rssOf(pids) : null;
        backgroundCores = bg.stop();
      }
    },
  );
  const w = r.window;
  if (!w) throw new Error(`tokens: ${t.name}, ${k} streams: the load generator measured no window`);
  return {
    streams: k,
    nominalEventsPerSec: k * p.rate,
    events: w.events,
    seconds: w.seconds,
    eventsPerSec: w.events / w.seconds,
    lagMs: r.lagMs,
    cpuUsPerEvent: pids.length && w.events ? (cpu1 - cpu0) / w.events : null,
    proxyCores: pids.length ? (cpu1 - cpu0) / 1e6 / w.seconds : null,
    upstreamCores: (up1 - up0) / 1e6 / w.seconds,
    loadgenCores: w.loadgenCores,
    processes: pids.length || null,
    rssBytes: rss,
    started: r.attempted,
    failed: r.failed,
    failures: r.failures,
    backgroundCores,
  };
}

/** @param {any} t @param {any} ctx @param {any} h */
async function burst(t, ctx, h) {
  const p = ctx.plan.tokens;
  const bg = backgroundMeter();
  const r = await h.loadgen({
    ...baseSpec(ctx, h, t.port),
    streams: p.burst,
    rounds: p.burstRounds,
    warmupRounds: 1,
    chunks: p.burstChunks,
    staggerMs: 0,
    keepAlive: false, // every stream a new client connection, as when users arrive together
    deadlineMs: 60_000,
  });
  return { streams: p.burst, rounds: p.burstRounds, attempted: r.attempted, ttfbMs: r.ttfbMs, lagMs: r.lagMs, failed: r.failed, failures: r.failures, backgroundCores: bg.stop() };
}

/** @param {any} res @param {(header: string[], rows: any[][]) => string} table */
export function tokensTables(res, table) {
  const f = (/** @type {any} */ n, d = 1) => (n === null || n === undefined || Number.isNaN(n) ? '—' : Number(n).toFixed(d));
  const int = (/** @type {any} */ n) => (n === null || n === undefined ? '—' : Math.round(n).toLocaleString('en-US'));
  const MB = (/** @type {any} */ b) => (b === null || b === undefined ? null : b / (1024 * 1024));
  const knee = (/** @type {any} */ r) => {
    if (r.firstOverLimit === null) return `not within the ramp (> ${int(r.steps.at(-1)?.eventsPerSec)})`;
    if (r.lastUnderLimit === null) return `≤ ${int(r.firstOverLimit.eventsPerSec)} (at the first step)`;
    return `${int(r.lastUnderLimit.eventsPerSec)}–${int(r.firstOverLimit.eventsPerSec)}`;
  };
  const ref = res.refStreams * res.rate;
  const summary = table(
    ['target', 'processes', 'workers reported', 'CPU µs/event', 'CPU cores', 'lag p50 ms', 'lag p99 ms', 'RSS MB', 'lag p99 passes 10 ms at ev/s', 'burst TTFB p50 ms', 'burst TTFB p99 ms', 'failed', 'other load'],
    res.rows.map((/** @type {any} */ r) => [
      r.target,
      r.processes ?? '—',
      r.workersReported ?? (r.target.startsWith('openai-proxy') ? 'not reported' : '—'),
      f(r.ref?.cpuUsPerEvent, 2),
      f(r.ref?.proxyCores, 2),
      f(r.ref?.lagMs.p50, 2),
      f(r.ref?.lagMs.p99, 2),
      f(MB(r.ref?.rssBytes), 1),
      knee(r),
      f(r.burst?.ttfbMs.p50, 2),
      f(r.burst?.ttfbMs.p99, 2),
      r.steps.reduce((/** @type {number} */ a, /** @type {any} */ s) => a + s.failed, 0) + (r.burst?.failed ?? 0),
      f(r.backgroundCores, 2),
    ]),
  );
  const steps = [...new Set(res.rows.flatMap((/** @type {any} */ r) => r.steps.map((/** @type {any} */ s) => s.streams)))].sort((a, b) => a - b);
  const ramp = table(
    ['target', ...steps.map((k) => `${k} × ${res.rate}/s`)],
    res.rows.map((/** @type {any} */ r) => [
      r.target,
      ...steps.map((k) => {
        const s = r.steps.find((/** @type {any} */ x) => x.streams === k);
        return s ? `${f(s.lagMs.p99, 2)} ms · ${int(s.eventsPerSec)}/s${s.failed ? ` · ${s.failed} failed` : ''}` : '—';
      }),
    ]),
  );
  const all = res.rows.flatMap((/** @type {any} */ r) => r.steps);
  const most = (/** @type {string} */ k) => Math.max(0, ...all.map((/** @type {any} */ s) => s[k] ?? 0));
  return [
    `CPU, lag and RSS at ${res.refStreams} streams × ${res.rate} tokens/s = ${int(ref)} events/s nominal (CPU: the target's processes, µs per token event the clients received); burst: ${res.rows[0]?.burst?.streams ?? '—'} streams started together on new connections, time to the response head:`,
    '',
    summary,
    '',
    `Ramp: relay lag p99 (client arrival − upstream write) · token events/s received, per step (K streams × ${res.rate} tokens/s):`,
    '',
    ramp,
    '',
    `Harness: the load generator used at most ${f(most('loadgenCores'), 2)} cores in a step, the upstreams' process ${f(most('upstreamCores'), 2)} (a step is not limited by them while both stay well under 1).${res.nginx ? '' : ' nginx is not installed: its row is skipped.'}`,
  ].join('\n');
}
