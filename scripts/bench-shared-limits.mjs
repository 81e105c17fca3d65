// Scratch micro benchmark (not a test): what one request's enter + reserve + leave costs
// with the limits in this process (LocalLimits) and in a primary over a real fork() IPC pipe
// (RemoteLimits → LimitsHost), and a gate acquire + charge + release round over the same pipe.
//   npm run build && node scripts/bench-shared-limits.mjs [rounds] [serialization: json|advanced]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { systemClock as clock } from '../dist/clock.js';
import { LimitsHost } from '../dist/cluster/limits-host.js';
import { RemoteGate } from '../dist/cluster/remote-gate.js';
import { RemoteLimits } from '../dist/cluster/remote-limits.js';
import { parseConfig } from '../dist/config.js';
import { LocalLimits } from '../dist/resilience/local-limits.js';

const ROUNDS = Number(process.argv[2] ?? 20_000);
const SERIALIZATION = process.argv[3] ?? 'json';
const CONFIG = parseConfig({ MAX_CONCURRENT_REQUESTS: '1000', QUEUE_SIZE: '1000' });
const POLICY = { requests: { capacity: 1e12, windowSec: 60 }, tokensPerMinute: 1e12, maxParallel: 1000, weight: 1 };

/** One request's round on a store: enter, reserve, leave. */
async function round(store, i) {
  const e = await store.enter(`client-${i & 63}`, POLICY);
  await store.reserve(e.ticket, 1000);
  store.leave(e.ticket, 500);
}

/** µs per round: `loops` requests at a time, ROUNDS in all. */
async function measure(fn, loops) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: loops }, async () => {
    while (next < ROUNDS) await fn(next++);
  }));
  return ((performance.now() - t0) * 1000) / ROUNDS;
}

if (process.argv.includes('--worker')) {
  const link = { send: (m) => process.send(m), on: (ch, fn) => process.on('message', (m) => m.ch === ch && fn(m)) };
  const remote = new RemoteLimits(link, clock);
  const gate = new RemoteGate(link, clock, { queueTimeoutMs: CONFIG.queueTimeoutMs });
  const gateRound = async (i) => {
    const key = `client-${i & 63}`;
    const release = await gate.acquire({ key, weight: 1 });
    gate.charge(key, 500);
    release();
  };
  const out = {};
  await measure((i) => round(remote, i), 1); // warm-up
  out.remote_sequential_us = await measure((i) => round(remote, i), 1);
  out.remote_64_at_once_us = await measure((i) => round(remote, i), 64);
  out.gate_sequential_us = await measure(gateRound, 1);
  out.gate_64_at_once_us = await measure(gateRound, 64);
  out.failed_open = remote.failedOpen;
  process.send({ ch: 'result', out });
} else {
  const local = new LocalLimits(clock);
  await measure((i) => round(local, i), 1);
  const localUs = await measure((i) => round(local, i), 1);
  const child = fork(fileURLToPath(import.meta.url), [String(ROUNDS), SERIALIZATION, '--worker'], { serialization: SERIALIZATION });
  const on = new Map();
  const link = {
    sendTo: (_id, m) => child.send(m),
    on: (ch, fn) => on.set(ch, fn),
    workers: () => [1],
    onExit: (fn) => child.on('exit', () => fn(1)),
  };
  const host = new LimitsHost(link, CONFIG, clock);
  child.on('message', (m) => {
    if (m.ch === 'result') {
      console.log(JSON.stringify({ rounds: ROUNDS, serialization: SERIALIZATION, local_sequential_us: +localUs.toFixed(2), ...Object.fromEntries(Object.entries(m.out).map(([k, v]) => [k, +v.toFixed?.(2) || v])), host_outstanding_after: host.limits.outstanding() }));
      child.disconnect();
      return;
    }
    on.get(m.ch)?.(1, m);
  });
}
