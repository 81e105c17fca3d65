/**
 * The benchmark's fleet part (`--only=fleet`, and in the default run): several upstreams.
 *
 *   balancing  the proxy (features on) in front of one upstream, then in front of three
 *              (UPSTREAMS_FILE naming the same fixed-answer server three times, so only the
 *              proxy's work differs), least-requests and affinity: CPU µs per request and
 *              req/s at 64 connections, runs interleaved, best of N. Balancing should add
 *              nothing measurable.
 *   failover   three fixed-answer upstreams, each its own process; steady load from the
 *              built-in generator; one upstream is SIGKILLed a third of the way in. Counts
 *              the client requests that failed, and how long after the kill requests still
 *              tried the dead one (its attempt count in /stats, polled every 20 ms).
 *
 * Everything on 127.0.0.1; every process is stopped at the end.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, stop, waitForLine } from './procs.mjs';

const HOST = '127.0.0.1';

/**
 * @param {any} ctx the bench's context (opts, plan, ups, tmp, wrk)
 * @param {any} h helpers from bench.mjs: startOpenaiProxy, throughputPoint, writeLua, loadgen, getJson, log, sleep, baseEnv, HERE, CHAT_BODY, AUTH, PATH
 */
export async function partFleet(ctx, h) {
  return { balancing: await balancing(ctx, h), failover: await failover(ctx, h) };
}

async function balancing(ctx, h) {
  const { opts, ups, tmp } = ctx;
  const url = `http://${HOST}:${ups.fixed}`;
  const file = join(tmp, 'three.json');
  writeFileSync(file, JSON.stringify(['gpu-a', 'gpu-b', 'gpu-c'].map((name) => ({ url, name }))));
  const quiet = { HEALTH_CHECK_INTERVAL: '0', MODEL_DISCOVERY_INTERVAL: '0' };
  const targets = [
    await h.startOpenaiProxy({ name: 'one upstream', main: opts.proxy, upstreamUrl: url, features: 'on', logDir: join(tmp, 'logs-fleet-1') }),
    await h.startOpenaiProxy({ name: 'three upstreams, least-requests', main: opts.proxy, upstreamUrl: url, features: 'on', logDir: join(tmp, 'logs-fleet-3'), extraEnv: { UPSTREAMS_FILE: file, ...quiet } }),
    await h.startOpenaiProxy({ name: 'three upstreams, affinity', main: opts.proxy, upstreamUrl: url, features: 'on', logDir: join(tmp, 'logs-fleet-3a'), extraEnv: { UPSTREAMS_FILE: file, BALANCE: 'affinity', ...quiet } }),
  ];
  const lua = h.writeLua();
  const runs = new Map(targets.map((t) => [t, []]));
  try {
    for (let rep = 1; rep <= ctx.plan.repeat; rep++) {
      for (const t of targets) {
        h.log(`fleet: ${t.name}, 64 connections, ${ctx.plan.durationMs / 1000} s (run ${rep}/${ctx.plan.repeat})`);
        runs.get(t).push(await h.throughputPoint(t, { conns: 64, durationMs: ctx.plan.durationMs, warmupMs: ctx.plan.warmupMs, useWrk: ctx.wrk, lua, upstreamPid: ups.child.pid, ctx }));
      }
    }
  } finally {
    for (const t of targets) await t.stop();
  }
  const rows = targets.map((t) => {
    const all = runs.get(t);
    const best = all.reduce((a, b) => (b.rps > a.rps ? b : a));
    return { target: t.name, rps: best.rps, cpuUsPerRequest: best.cpuUsPerRequest, cpuUsRange: [Math.min(...all.map((r) => r.cpuUsPerRequest)), Math.max(...all.map((r) => r.cpuUsPerRequest))], errors: best.errors, all };
  });
  for (const r of rows) r.cpuVsOne = r.cpuUsPerRequest / rows[0].cpuUsPerRequest;
  return rows;
}

async function failover(ctx, h) {
  const { opts, tmp } = ctx;
  const fleet = [];
  for (let i = 0; i < 3; i++) {
    const child = start(process.execPath, [join(h.HERE, 'upstreams.mjs'), '--fixed-only'], { env: h.baseEnv() });
    fleet.push({ child, port: await waitForLine(child, (l) => JSON.parse(l).fixed, 'a fixed upstream') });
  }
  const file = join(tmp, 'failover.json');
  writeFileSync(file, JSON.stringify(fleet.map((f, i) => ({ url: `http://${HOST}:${f.port}`, name: `gpu-${i}` }))));
  const proxy = await h.startOpenaiProxy({ name: 'failover', main: opts.proxy, upstreamUrl: `http://${HOST}:${fleet[0].port}`, features: 'on', logDir: join(tmp, 'logs-failover'), extraEnv: { UPSTREAMS_FILE: file, HEALTH_CHECK_INTERVAL: '1', RETRY_DELAY: '0.05' } });
  const durationMs = Math.max(6000, ctx.plan.durationMs);
  const killAt = durationMs / 3;
  const dead = 'gpu-1';
  /** @type {{t: number, attempts: number}[]} */
  const seen = [];
  let killedAt = 0;
  let polling = true;
  const attemptsOn = async () => {
    const s = await h.getJson(`http://${HOST}:${proxy.port}/stats`);
    const u = s.upstreams.find((x) => x.name === dead);
    return Object.values(u?.attempts ?? {}).reduce((a, b) => a + b, 0);
  };
  try {
    h.log(`fleet: failover, 3 upstreams, 32 connections for ${durationMs / 1000} s, ${dead} killed at ${killAt / 1000} s`);
    const poll = (async () => {
      while (polling) {
        seen.push({ t: performance.now(), attempts: await attemptsOn() });
        await h.sleep(20);
      }
    })();
    const load = h.loadgen({ mode: 'throughput', host: HOST, port: proxy.port, path: h.PATH, body: h.CHAT_BODY, headers: h.AUTH, connections: 32, durationMs, warmupMs: 0, handshake: true }, undefined, () => {
      setTimeout(() => {
        killedAt = performance.now();
        fleet[1].child.kill('SIGKILL');
      }, killAt);
    });
    const r = await load;
    polling = false;
    await poll;
    const atKill = seen.filter((s) => s.t <= killedAt).at(-1)?.attempts ?? 0;
    // the first sample that shows the final count: after it, nothing tried the dead one
    const total = seen.at(-1)?.attempts ?? atKill;
    const last = total > atKill ? seen.find((s) => s.attempts === total) : undefined;
    const final = await h.getJson(`http://${HOST}:${proxy.port}/stats`);
    return {
      requests: r.requests,
      rps: r.rps,
      failed: (r.errors ?? 0) + (r.non2xx ?? 0),
      attemptsOnDeadAfterKill: total - atKill,
      lastAttemptOnDeadMsAfterKill: last ? last.t - killedAt : 0,
      deadUpstream: final.upstreams.find((x) => x.name === dead),
      /** Each change of the dead one's attempt count after the kill: [ms after the kill, attempts since]. */
      timeline: seen.filter((s, i) => s.t > killedAt && s.attempts !== seen[i - 1]?.attempts).map((s) => [Math.round(s.t - killedAt), s.attempts - atKill]),
      retries: final.retries,
    };
  } finally {
    polling = false;
    await proxy.stop();
    for (const f of fleet) await stop(f.child);
  }
}

/** @param {any} res @param {(header: string[], rows: any[][]) => string} table */
export function fleetTables(res, table) {
  const f = (n, d = 1) => (n === null || n === undefined ? '–' : Number(n).toFixed(d));
  const b = table(
    ['target', 'req/s', 'CPU µs/req', 'CPU µs/req all runs', 'vs one upstream', 'errors'],
    res.balancing.map((r) => [r.target, f(r.rps, 0), f(r.cpuUsPerRequest), `${f(r.cpuUsRange[0])}–${f(r.cpuUsRange[1])}`, `${f(r.cpuVsOne, 3)}×`, r.errors]),
  );
  const o = res.failover;
  const fo = table(
    ['requests', 'req/s', 'failed', 'attempts on the dead one after the kill', 'last of them, ms after the kill (20 ms polls)', 'breaker of the dead one', 'retries by reason'],
    [[o.requests, f(o.rps, 0), o.failed, o.attemptsOnDeadAfterKill, f(o.lastAttemptOnDeadMsAfterKill, 0), o.deadUpstream?.breaker?.state ?? '–', JSON.stringify(o.retries?.by_reason ?? {})]],
  );
  return `${b}\n\nFailover: one of three upstreams SIGKILLed under steady load (32 connections):\n\n${fo}`;
}
