import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer, BALANCE_POLICIES, DEFAULT_LOAD_FACTOR } from '../../dist/upstream/balancer.js';
import { HashRing } from '../../dist/upstream/hash-ring.js';

// Tolerances: a share of N = 10,000 independent picks has a binomial standard deviation of
// at most 0.005, so ±0.02 is 4σ: it holds for the seeds below and for almost any other,
// which makes the tests about the policy rather than about one lucky seed. Round-robin is
// deterministic and is asserted exactly.
const N = 10_000;
const TOL = 0.02;

/** mulberry32: a tiny seeded PRNG, so every run draws the same numbers. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function balancer(policy, seed = 1, extra = {}) {
  return createBalancer(policy, { random: mulberry32(seed), ...extra });
}

/** Candidates from [name, weight, inFlight?] triples; mutable so simulations can load them. */
function candidates(spec) {
  return spec.map(([name, weight, inFlight = 0]) => ({ name, weight, inFlight }));
}

/** A balancer of `policy` whose membership is exactly `cands`. */
function withMembers(policy, cands, seed) {
  const b = balancer(policy, seed);
  b.setMembers(cands.map(({ name, weight }) => ({ name, weight })));
  return b;
}

/** Shares of `n` picks with nothing in flight; affinity gets a distinct key per pick. */
function idleShares(b, cands, n = N) {
  const counts = Object.fromEntries(cands.map((c) => [c.name, 0]));
  for (let i = 0; i < n; i++) counts[b.pick(cands, `session-${i}`).name]++;
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
}

/**
 * One arrival per tick; each pick holds its upstream for `hold(name)` ticks. `observe` sees
 * every pick before it is counted in flight. Returns the shares of the picks.
 */
function simulate(b, cands, { picks = N, hold, keyOf = () => null, observe = () => {} }) {
  const ending = new Map();
  const counts = Object.fromEntries(cands.map((c) => [c.name, 0]));
  for (let t = 0; t < picks; t++) {
    for (const c of ending.get(t) ?? []) c.inFlight--;
    ending.delete(t);
    const key = keyOf(t);
    const c = b.pick(cands, key);
    observe(c, key);
    c.inFlight++;
    counts[c.name]++;
    const end = t + hold(c.name);
    ending.set(end, [...(ending.get(end) ?? []), c]);
  }
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / picks]));
}

function assertShares(actual, expected, tol = TOL) {
  for (const [name, want] of Object.entries(expected)) {
    assert.ok(Math.abs(actual[name] - want) <= tol, `${name}: ${actual[name]} vs ${want} ± ${tol} in ${JSON.stringify(actual)}`);
  }
}

const EQUAL = [['g1', 1], ['g2', 1], ['g3', 1]];
const WEIGHTED = [['g1', 1], ['g2', 2], ['g3', 3]];

// ---- the contract -------------------------------------------------------------------------

test('the policies are least-requests (the default, listed first), round-robin and affinity', () => {
  assert.deepEqual(BALANCE_POLICIES, ['least-requests', 'round-robin', 'affinity']);
  assert.ok(Object.isFrozen(BALANCE_POLICIES));
  assert.equal(DEFAULT_LOAD_FACTOR, 1.25);
});

test('createBalancer refuses an unknown policy, a load factor ≤ 1 and a missing random', () => {
  assert.throws(() => balancer('fastest'), /unknown balance policy "fastest"/);
  for (const loadFactor of [1, 0.5, NaN, Infinity]) {
    assert.throws(() => balancer('affinity', 1, { loadFactor }), RangeError);
  }
  assert.throws(() => createBalancer('round-robin', {}), TypeError);
});

test('every policy returns a lone candidate without drawing a random number', () => {
  for (const policy of BALANCE_POLICIES) {
    const b = createBalancer(policy, { random: () => assert.fail('random was called') });
    const only = { name: 'g1', weight: 3, inFlight: 7 };
    assert.equal(b.pick([only], 'session-1'), only, policy);
  }
});

test('a random source gone wrong (1, NaN) still yields one of the candidates', () => {
  for (const value of [1, NaN]) {
    const b = createBalancer('least-requests', { random: () => value });
    const cands = candidates([['a', 1], ['b', 2], ['c', 3]]);
    assert.ok(cands.includes(b.pick(cands, null)));
  }
});

// ---- distribution -------------------------------------------------------------------------

test('every policy shares equal replicas evenly: 1/3 each of 10,000 picks', () => {
  for (const policy of BALANCE_POLICIES) {
    const cands = candidates(EQUAL);
    assertShares(idleShares(withMembers(policy, cands), cands), { g1: 1 / 3, g2: 1 / 3, g3: 1 / 3 });
  }
  const cands = candidates(EQUAL);
  assert.deepEqual(idleShares(withMembers('round-robin', cands), cands, 9999), { g1: 1 / 3, g2: 1 / 3, g3: 1 / 3 });
});

test('every policy honours weights 1:2:3 with nothing in flight', () => {
  // least-requests: every pair ties at 0, the tie goes to the first drawn, and the first
  // draw is by weight; affinity: each member has 1000 points on the ring per weight unit.
  for (const policy of BALANCE_POLICIES) {
    const cands = candidates(WEIGHTED);
    assertShares(idleShares(withMembers(policy, cands), cands), { g1: 1 / 6, g2: 2 / 6, g3: 3 / 6 });
  }
  const cands = candidates(WEIGHTED);
  assert.deepEqual(idleShares(withMembers('round-robin', cands), cands, 6000), { g1: 1 / 6, g2: 2 / 6, g3: 3 / 6 });
});

test('least-requests honours weights 1:2:3 under load too (about 60 requests in flight)', () => {
  const shares = simulate(balancer('least-requests'), candidates(WEIGHTED), { hold: () => 60 });
  assertShares(shares, { g1: 1 / 6, g2: 2 / 6, g3: 3 / 6 });
});

test('fractional weights 0.5 and 1.5 share 1:3 under every policy', () => {
  for (const policy of BALANCE_POLICIES) {
    const cands = candidates([['a', 0.5], ['b', 1.5]]);
    assertShares(idleShares(withMembers(policy, cands), cands), { a: 0.25, b: 0.75 });
  }
  const cands = candidates([['a', 0.1], ['b', 0.2], ['c', 0.3]]);
  const shares = idleShares(withMembers('round-robin', cands), cands, 6000);
  assertShares(shares, { a: 1 / 6, b: 2 / 6, c: 3 / 6 }, 1 / 6000); // at most one pick off from float sums
});

test('names with odd characters balance like any others under every policy', () => {
  const odd = ['', 'g#1', 'g', 'http://[::1]:8000', 'ünïcødé 🚀', 'a"b\\c\n'];
  for (const policy of BALANCE_POLICIES) {
    const cands = candidates(odd.map((n) => [n, 1]));
    assertShares(idleShares(withMembers(policy, cands), cands), Object.fromEntries(odd.map((n) => [n, 1 / odd.length])));
  }
});

// ---- least-requests -----------------------------------------------------------------------

test('least-requests sends less to a replica whose requests take 3× longer', () => {
  const slowC = (name) => (name === 'g3' ? 90 : 30);
  const lr = simulate(balancer('least-requests'), candidates(EQUAL), { hold: slowC });
  const rr = simulate(balancer('round-robin'), candidates(EQUAL), { hold: slowC });
  // Equal in-flight counts would mean shares in proportion to speed: 3:3:1, g3 at 1/7 ≈ 0.14.
  assert.ok(lr.g3 < 0.2, `slow replica share ${lr.g3}`);
  assert.ok(lr.g1 > 0.38 && lr.g2 > 0.38, JSON.stringify(lr));
  assert.ok(Math.abs(rr.g3 - 1 / 3) < 0.001, 'round-robin, blind to load, keeps sending it a third');
});

test('least-requests does not herd: tied counts that never change still share evenly', () => {
  // What an "always the least busy" scan does with stale or tied counts: the first wins all.
  const cands = candidates([['g1', 1, 5], ['g2', 1, 5], ['g3', 1, 5], ['g4', 1, 5]]);
  assertShares(idleShares(balancer('least-requests'), cands), { g1: 0.25, g2: 0.25, g3: 0.25, g4: 0.25 });
});

test('least-requests: a stale minimum wins only the pairs it is drawn into, about half', () => {
  // g1 looks idlest and nothing updates; it is in a random pair with probability
  // 1 − (3/4)(2/3) = 1/2, and the rest go evenly to the others.
  const cands = candidates([['g1', 1, 0], ['g2', 1, 5], ['g3', 1, 5], ['g4', 1, 5]]);
  assertShares(idleShares(balancer('least-requests'), cands), { g1: 0.5, g2: 1 / 6, g3: 1 / 6, g4: 1 / 6 });
});

test('least-requests compares requests in flight per unit of weight', () => {
  // a: 2 in flight at weight 1 (2 per unit); b: 4 at weight 4 (1 per unit): b every time.
  const cands = candidates([['a', 1, 2], ['b', 4, 4]]);
  assert.deepEqual(idleShares(balancer('least-requests'), cands, 1000), { a: 0, b: 1 });
});

// ---- round-robin --------------------------------------------------------------------------

test('round-robin with weights 5, 1, 1 gives nginx\'s smooth sequence a a b a c a a, repeating', () => {
  const b = balancer('round-robin');
  const cands = candidates([['a', 5], ['b', 1], ['c', 1]]);
  const seq = Array.from({ length: 14 }, () => b.pick(cands, null).name).join(' ');
  assert.equal(seq, 'a a b a c a a a a b a c a a');
});

test('round-robin: a member absent from one call resumes its turn, and the cycle stays exact', () => {
  const b = balancer('round-robin');
  const [a, bb, c] = candidates([['a', 5], ['b', 1], ['c', 1]]);
  // Call 3 is b's turn, but b is absent (from the middle of the list): c's turn comes
  // early and b has its turn three calls later, keeping the credit it had banked. State
  // kept by position would have handed b's credit to c.
  const seq = Array.from({ length: 40 }, (_, i) => b.pick(i === 2 ? [a, c] : [a, bb, c], null).name);
  assert.equal(seq.slice(0, 8).join(' '), 'a a c a a b a a');
  for (let start = 3; start + 7 <= seq.length; start++) {
    const window = seq.slice(start, start + 7);
    assert.deepEqual(['a', 'b', 'c'].map((n) => window.filter((x) => x === n).length), [5, 1, 1], `window at ${start}`);
  }
});

test('round-robin: a name dropped from the config loses its banked turn', () => {
  const b = balancer('round-robin');
  const cands = candidates([['a', 5], ['b', 1], ['c', 1]]);
  const seq = Array.from({ length: 4 }, () => b.pick(cands, null).name);
  assert.deepEqual(seq, ['a', 'a', 'b', 'a']); // c is next in line...
  b.setMembers([{ name: 'a', weight: 5 }, { name: 'b', weight: 1 }]);
  b.setMembers([{ name: 'a', weight: 5 }, { name: 'b', weight: 1 }, { name: 'c', weight: 1 }]);
  assert.equal(b.pick(cands, null).name, 'a'); // ...but came back with a clean slate
});

// ---- affinity -----------------------------------------------------------------------------

const G = ['http://g1:8000', 'http://g2:8000', 'http://g3:8000', 'http://g4:8000', 'http://g5:8000'];
const KEYS = Array.from({ length: N }, (_, i) => `session-${i}`);

function ownersOf(b, cands) {
  return KEYS.map((k) => b.pick(cands, k).name);
}

test('affinity keeps a key on its upstream until that upstream reaches its bound, then spills to the next on the ring', () => {
  // Neighbours hold 8 each. The owner at x takes the key while x < ceil(f × (x + 17) / 3):
  // up to 13 at f = 1.25 (12 if the bound forgot the request being placed), 17 at f = 1.5.
  for (const [loadFactor, spillsAt] of [[1.25, 13], [1.5, 17]]) {
    const cands = candidates(G.slice(0, 3).map((n) => [n, 1, 8]));
    const b = createBalancer('affinity', { random: mulberry32(1), loadFactor });
    b.setMembers(cands);
    const [first, second] = new HashRing(cands).lookup('session-7');
    const owner = cands.find((c) => c.name === first);
    for (let i = 0; i < 100 && b.pick(cands, 'session-7').name === first; i++) owner.inFlight++;
    assert.equal(owner.inFlight, spillsAt, `loadFactor ${loadFactor}`);
    assert.equal(b.pick(cands, 'session-7').name, second);
    // Once the owner drains below its bound, the key is back home.
    owner.inFlight = 8;
    assert.equal(b.pick(cands, 'session-7').name, first);
  }
});

test('affinity never lets an upstream go above its bound, even under a hot key', () => {
  const cands = candidates(G.map((n, i) => [n, [1, 1, 2, 2, 3][i]]));
  const b = withMembers('affinity', cands, 7);
  const ring = new HashRing(cands);
  const rand = mulberry32(99);
  let spilled = 0;
  let tightest = 0;
  simulate(b, cands, {
    picks: 20_000,
    hold: () => 1 + Math.floor(rand() * 200), // ~100 requests in flight
    keyOf: () => (rand() < 0.3 ? 'hot-session' : `session-${Math.floor(rand() * 2000)}`),
    observe: (c, key) => {
      const T = cands.reduce((s, x) => s + x.inFlight, 0);
      const bound = Math.ceil((1.25 * (T + 1) * c.weight) / 9); // 9: the total weight
      assert.ok(c.inFlight + 1 <= bound, `${c.name} would hold ${c.inFlight + 1} > bound ${bound} at T = ${T}`);
      tightest = Math.max(tightest, (c.inFlight + 1) / bound);
      if (ring.lookup(key)[0] !== c.name) spilled++;
    },
  });
  assert.equal(tightest, 1, 'the bound was reached, so the check above was exercised');
  assert.ok(spilled > 2000, `only ${spilled} picks spilled: the hot key was never capped`);
});

test('affinity: an upstream joining takes about 1/(n+1) of the keys, all for itself', () => {
  const four = candidates(G.slice(0, 4).map((n) => [n, 1]));
  const five = candidates(G.map((n) => [n, 1]));
  const b = withMembers('affinity', four);
  const before = ownersOf(b, four);
  b.setMembers(five);
  const after = ownersOf(b, five);
  const moved = after.filter((o, i) => o !== before[i]);
  assert.ok(moved.every((o) => o === G[4]), 'a key moved between two old members');
  // 1/5 expected; the joiner's share of the ring strays ~2.7% relative plus sampling.
  assert.ok(Math.abs(moved.length / N - 0.2) < TOL, `moved ${moved.length / N}`);
});

test('affinity: an upstream leaving moves exactly its own keys', () => {
  const four = candidates(G.slice(0, 4).map((n) => [n, 1]));
  const three = four.filter((c) => c.name !== G[1]);
  const b = withMembers('affinity', four);
  const before = ownersOf(b, four);
  b.setMembers(three);
  const after = ownersOf(b, three);
  KEYS.forEach((k, i) => {
    if (before[i] !== G[1]) assert.equal(after[i], before[i], `${k} moved though its upstream stayed`);
  });
});

test('affinity: a reload that only reorders the config moves no key', () => {
  const all = candidates(G.map((n) => [n, 1]));
  const b = withMembers('affinity', all);
  const before = ownersOf(b, all);
  b.setMembers([...all].reverse());
  assert.deepEqual(ownersOf(b, all), before);
});

test('affinity: keys stay put while an upstream is briefly not a candidate, and its own come back', () => {
  const all = candidates(G.slice(0, 4).map((n) => [n, 1]));
  const b = withMembers('affinity', all);
  const ring = new HashRing(all);
  const before = ownersOf(b, all);
  const during = ownersOf(b, all.filter((c) => c.name !== G[2]));
  KEYS.forEach((k, i) => {
    // G[2]'s keys go to the next upstream on their ring, so they too stick while it is out.
    if (before[i] === G[2]) assert.equal(during[i], ring.lookup(k)[1], `${k} left for a random upstream`);
    else assert.equal(during[i], before[i], `${k} moved`);
  });
  assert.deepEqual(ownersOf(b, all), before);
});

test('affinity with a null key, or with no membership set, is least-requests', () => {
  const rand = mulberry32(5);
  const load = () => candidates(G.map((n, i) => [n, i + 1, Math.floor(rand() * 20)]));
  const reference = balancer('least-requests', 3);
  const nullKey = withMembers('affinity', candidates(G.map((n) => [n, 1])), 3);
  const noMembers = balancer('affinity', 3);
  for (let i = 0; i < 1000; i++) {
    const cands = load();
    const want = reference.pick(cands, null).name;
    assert.equal(nullKey.pick(cands, null).name, want);
    assert.equal(noMembers.pick(cands, `session-${i}`).name, want);
  }
});

test('affinity still places keys right after its per-pick stamp wraps past 2^32 (≈50 days at 1000 picks/s)', () => {
  const cands = candidates(G.slice(0, 3).map((n) => [n, 1]));
  const b = withMembers('affinity', cands);
  const before = KEYS.slice(0, 50).map((k) => b.pick(cands, k).name);
  b.stamp = 0xffffffff - 10; // reaching it honestly would take 2^32 picks
  const fewer = cands.slice(1);
  const ring = new HashRing(cands);
  for (let i = 0; i < 50; i++) {
    const k = KEYS[i];
    assert.equal(b.pick(cands, k).name, before[i], k);
    assert.equal(b.pick(fewer, k).name, ring.lookup(k).find((n) => n !== G[0]), k);
  }
});
