/**
 * Affinity by consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018;
 * HAProxy's `hash-balance-factor`): a session key goes to the first upstream clockwise from
 * its ring position that is a candidate now and is under its load bound, so a conversation
 * keeps hitting the replica that has its prefix cached, yet a hot key cannot pile onto one
 * replica: once that replica holds its share of the load, the key spills to the next.
 *
 * The bound, over the candidates of this pick (T = their total inFlight, W = their total
 * weight), for a candidate of weight w:
 *
 *     bound = ceil(loadFactor × (T + 1) × w / W)
 *
 * and the candidate takes the request only if inFlight < bound, so after the pick it holds
 * at most `bound`. (T + 1) counts the request being placed, as in the paper. Some candidate
 * always qualifies: the bounds sum to at least loadFactor × (T + 1) > T + 1, while the
 * inFlights sum to T. At low load the bound is tight (three idle replicas give a bound of 1,
 * so a key's second concurrent request spills); that is the price of the guarantee.
 *
 * The ring is built from the whole membership (setMembers), not from the candidates of the
 * moment, so a replica that is briefly unroutable costs only its own keys, and they come
 * back when it does. Least-requests decides for a null key, before setMembers, and in the
 * one case the walk can come back empty: when the only candidates under their bound are
 * names outside the membership (the guarantee above counts all candidates, the ring only
 * members).
 */
import type { Balancer, Candidate } from './balancer.js';
import { HashRing } from './hash-ring.js';
import { LeastRequests } from './least-requests.js';
import { PositionMemo } from './position-memo.js';

const NO_CANDIDATES: readonly Candidate[] = [];

export class BoundedLoadAffinity implements Balancer {
  private readonly fallback: LeastRequests;
  private ring = new HashRing([]);
  private memberIndex = new Map<string, number>();
  /** A candidate's member index, or -1 for a name outside the membership. */
  private readonly memberOf = new PositionMemo<number>((name) => this.memberIndex.get(name) ?? -1);
  /** candidateAt[m] is member m's index in the current pick's candidates, valid when
   *  stampOf[m] === stamp: per-pick bookkeeping without clearing or allocating. */
  private candidateAt = new Uint32Array(0);
  private stampOf = new Uint32Array(0);
  private stamp = 0;
  // The pick in progress, read by `accept` (made once, so a walk allocates no closure).
  private candidates: readonly Candidate[] = NO_CANDIDATES;
  private loadTimesFactor = 0;
  private totalWeight = 0;
  private chosen = -1;

  constructor(
    random: () => number,
    private readonly loadFactor: number,
  ) {
    this.fallback = new LeastRequests(random);
  }

  setMembers(members: readonly { readonly name: string; readonly weight: number }[]): void {
    this.ring = new HashRing(members);
    this.memberIndex = new Map(members.map((m, i) => [m.name, i]));
    this.memberOf.clear();
    this.candidateAt = new Uint32Array(members.length);
    this.stampOf = new Uint32Array(members.length);
    this.stamp = 0;
  }

  pick<C extends Candidate>(candidates: readonly C[], key: string | null): C {
    if (key === null || candidates.length === 1) return this.fallback.pick(candidates);
    const stamp = this.nextStamp();
    let totalInFlight = 0;
    let totalWeight = 0;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      totalInFlight += c.inFlight;
      totalWeight += c.weight;
      const m = this.memberOf.get(i, c.name);
      if (m !== -1) {
        this.candidateAt[m] = i;
        this.stampOf[m] = stamp;
      }
    }
    this.candidates = candidates;
    this.loadTimesFactor = this.loadFactor * (totalInFlight + 1);
    this.totalWeight = totalWeight;
    this.chosen = -1;
    this.ring.walk(key, this.accept);
    this.candidates = NO_CANDIDATES;
    return this.chosen === -1 ? this.fallback.pick(candidates) : candidates[this.chosen]!;
  }

  private readonly accept = (member: number): boolean => {
    if (this.stampOf[member] !== this.stamp) return false; // configured, but not a candidate now
    const i = this.candidateAt[member]!;
    const c = this.candidates[i]!;
    if (c.inFlight >= Math.ceil((this.loadTimesFactor * c.weight) / this.totalWeight)) return false;
    this.chosen = i;
    return true;
  };

  private nextStamp(): number {
    if (this.stamp === 0xffffffff) {
      this.stampOf.fill(0);
      this.stamp = 0;
    }
    return ++this.stamp;
  }
}
