#!/usr/bin/env node
/**
 * What one `Balancer.pick` costs, per policy, at 3, 16 and 64 candidates (after `npm run
 * build`): `node scripts/bench/balancer-pick.mjs`. pick runs once per attempt, so this is
 * the balancer's whole share of a request's CPU. Candidates carry varied loads (0–19 in
 * flight, weights 1–3) and affinity gets a rotating set of 4,096 session keys, so branches
 * and the ring walk are exercised as in traffic rather than on one hot path.
 *
 * Prints ns per pick (best of 5 runs of 1M picks) and the scavenges (young-generation GCs)
 * seen during the runs. least-requests shows some: each call of the injected `random`
 * returns a fresh heap number (16 bytes; a bare Math.random loop does the same), the one
 * allocation the interface makes unavoidable. The other policies allocate nothing.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { createBalancer, BALANCE_POLICIES } from '../../dist/upstream/balancer.js';

const PICKS = 1_000_000;
const RUNS = 5;
const KEYS = Array.from({ length: 4096 }, (_, i) => `conversation-${i}-${(i * 2654435761) >>> 0}`);

let scavenges = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
}).observe({ entryTypes: ['gc'] });

function candidateSets(n) {
  // One name string per upstream, as when every candidate list is drawn from the same
  // Upstream objects; 16 sets with different loads, so no single branch is learnt.
  const names = Array.from({ length: n }, (_, i) => `http://10.0.0.${i}:8000`);
  return Array.from({ length: 16 }, (_, s) =>
    names.map((name, i) => ({ name, weight: 1 + (i % 3), inFlight: (i * 7 + s * 3) % 20 })),
  );
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20)); // lets GC entries arrive

async function measure(policy, n) {
  const sets = candidateSets(n);
  const b = createBalancer(policy, { random: Math.random });
  b.setMembers(sets[0].map(({ name, weight }) => ({ name, weight })));
  let sink = 0;
  const run = (count) => {
    for (let i = 0; i < count; i++) sink += b.pick(sets[i & 15], KEYS[i & 4095]).inFlight;
  };
  run(500_000); // warm-up: let the JIT settle before timing
  await settle();
  let best = Infinity;
  const before = scavenges;
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    run(PICKS);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / PICKS);
  }
  await settle();
  return { ns: best, scavenges: scavenges - before, sink };
}

console.log(`node ${process.version}, ${PICKS.toLocaleString('en')} picks × ${RUNS} runs, best run\n`);
console.log('| policy | candidates | ns/pick | scavenges |');
console.log('| --- | ---: | ---: | ---: |');
for (const policy of BALANCE_POLICIES) {
  for (const n of [3, 16, 64]) {
    const { ns, scavenges: gcs } = await measure(policy, n);
    console.log(`| ${policy} | ${n} | ${ns.toFixed(0)} | ${gcs} |`);
  }
}
