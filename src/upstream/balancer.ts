/**
 * Which upstream takes a request, among the routable ones that serve its model. Routing and
 * health decide who is a candidate; this only chooses, and does no I/O: the caller passes
 * the candidates with their weight and requests in flight, and gets one back. One class per
 * policy (least-requests.ts, round-robin.ts, affinity.ts), this file the contract and the
 * factory. `pick` runs once per attempt, so the policies allocate nothing per call and
 * draw their randomness from the injected `random`, which tests seed.
 */
import { BoundedLoadAffinity } from './affinity.js';
import { LeastRequests } from './least-requests.js';
import { SmoothRoundRobin } from './round-robin.js';

/** The env `BALANCE` values; the first is the default. */
export type BalancePolicy = 'least-requests' | 'round-robin' | 'affinity';
export const BALANCE_POLICIES: readonly BalancePolicy[] = Object.freeze(['least-requests', 'round-robin', 'affinity'] as const);

export interface Candidate {
  readonly name: string;
  /** Relative capacity: finite and > 0 (validated with the config, trusted here). */
  readonly weight: number;
  /** Requests this proxy has in flight to it now. */
  readonly inFlight: number;
}

export interface BalancerOptions {
  /** A source of numbers in [0, 1); Math.random in production, a seeded one in tests. */
  readonly random: () => number;
  /** Affinity only: how far above its weighted share of the load an upstream may go before
   *  a key spills to the next on the ring; > 1, default 1.25 (25% above). */
  readonly loadFactor?: number;
}

export interface Balancer {
  /** The full membership (names, weights), in config order; call again on reload. */
  setMembers(members: readonly { readonly name: string; readonly weight: number }[]): void;
  /** One of `candidates` (non-empty, all routable now); `key`: the session key for affinity, null otherwise. */
  pick<C extends Candidate>(candidates: readonly C[], key: string | null): C;
}

export const DEFAULT_LOAD_FACTOR = 1.25;

export function createBalancer(policy: BalancePolicy, opts: BalancerOptions): Balancer {
  const { random, loadFactor = DEFAULT_LOAD_FACTOR } = opts;
  if (typeof random !== 'function') throw new TypeError('random must be a function returning numbers in [0, 1)');
  // At 1 the bound is the exact weighted share: a key would spill at the least imbalance
  // and affinity would mean little; the paper's guarantees need 1 + ε.
  if (!(Number.isFinite(loadFactor) && loadFactor > 1)) throw new RangeError(`loadFactor must be a finite number > 1, got ${loadFactor}`);
  switch (policy) {
    case 'least-requests':
      return new LeastRequests(random);
    case 'round-robin':
      return new SmoothRoundRobin();
    case 'affinity':
      return new BoundedLoadAffinity(random, loadFactor);
    default:
      throw new RangeError(`unknown balance policy ${JSON.stringify(policy)}; expected one of ${BALANCE_POLICIES.join(', ')}`);
  }
}
