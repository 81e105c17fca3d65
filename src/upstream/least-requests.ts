/**
 * Least requests by two random choices (Mitzenmacher's "power of two choices"): draw two
 * distinct candidates at random, weighted by weight, and take the one with fewer requests in
 * flight per unit of weight. Scanning for the global minimum instead herds every request
 * onto whichever replica looks idlest (LiteLLM's least-busy sent 93.7% of traffic to one of
 * three backends when counts tied or lagged); two choices keep almost all the benefit while
 * a replica that looks idlest still wins only when it is drawn.
 *
 * Why weighted draws compared on inFlight / weight: weight is capacity, so the load measure
 * is requests per unit of weight; and when nothing is in flight every pair ties, the tie goes
 * to the first drawn, and the first draw is proportional to weight, so an idle or lightly
 * loaded pool is shared exactly by weight. Envoy does plain P2C only for equal weights and
 * switches to an EDF schedule otherwise; a weighted draw is its suggested alternative
 * ("expand hosts by weight and do standard P2C") without the memory.
 *
 * Weights are taken as given (finite, > 0: the config validates them). Two calls to
 * `random` per pick, none with one candidate; nothing allocated.
 */
import type { Balancer, Candidate } from './balancer.js';

export class LeastRequests implements Balancer {
  constructor(private readonly random: () => number) {}

  /** Nothing to keep: the choice depends only on the candidates of the moment. */
  setMembers(): void {}

  pick<C extends Candidate>(candidates: readonly C[]): C {
    if (candidates.length === 1) return candidates[0]!;
    let total = 0;
    for (let i = 0; i < candidates.length; i++) total += candidates[i]!.weight;
    const i = draw(candidates, total, -1, this.random());
    const first = candidates[i]!;
    const second = candidates[draw(candidates, total - first.weight, i, this.random())]!;
    // second.inFlight / second.weight < first.inFlight / first.weight, without dividing.
    return second.inFlight * first.weight < first.inFlight * second.weight ? second : first;
  }
}

/**
 * The index drawn with probability weight / total among the candidates other than `skip`.
 * If rounding leaves `r × total` unspent after the last weight (or `random` misbehaved and
 * gave 1 or NaN), the last eligible index is drawn rather than none.
 */
function draw(candidates: readonly Candidate[], total: number, skip: number, r: number): number {
  let rest = r * total;
  let last = -1;
  for (let i = 0; i < candidates.length; i++) {
    if (i === skip) continue;
    last = i;
    rest -= candidates[i]!.weight;
    if (rest < 0) return i;
  }
  return last;
}
