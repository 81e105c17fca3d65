/**
 * Smooth weighted round-robin (nginx's `ngx_http_upstream_get_peer`): on each pick every
 * candidate's `current` grows by its weight, the largest wins (the first on a tie), and the
 * winner gives back the sum of the weights. Weights 5, 1, 1 give a a b a c a a: the heavy
 * member's turns are spread through the cycle instead of bunched, so a slow request burst
 * does not land five in a row on one replica.
 *
 * State is keyed by name, not by position, because the candidates change from call to call
 * (a replica is unhealthy, full, or does not serve this model): a name absent from a call
 * keeps its `current` untouched and resumes where it was, and the others' rotation does not
 * shift, as it would with an index into a list that just lost an element. The picks made
 * among the present names keep their `current`s summing to what it was, so when the absent
 * name returns the whole set is again a valid state and the exact cycle resumes.
 */
import type { Balancer, Candidate } from './balancer.js';
import { PositionMemo } from './position-memo.js';

interface Slot {
  current: number;
}

export class SmoothRoundRobin implements Balancer {
  private readonly slots = new Map<string, Slot>();
  private readonly slotOf = new PositionMemo<Slot>((name) => {
    let slot = this.slots.get(name);
    if (slot === undefined) {
      slot = { current: 0 };
      this.slots.set(name, slot);
    }
    return slot;
  });

  /** Forgets the state of names no longer configured; the others keep their place. */
  setMembers(members: readonly { readonly name: string }[]): void {
    const keep = new Set(members.map((m) => m.name));
    for (const name of this.slots.keys()) if (!keep.has(name)) this.slots.delete(name);
    this.slotOf.clear();
  }

  pick<C extends Candidate>(candidates: readonly C[]): C {
    if (candidates.length === 1) return candidates[0]!;
    let total = 0;
    let best = 0;
    let bestSlot: Slot | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const { name, weight } = candidates[i]!;
      const slot = this.slotOf.get(i, name);
      slot.current += weight;
      total += weight;
      if (bestSlot === undefined || slot.current > bestSlot.current) {
        best = i;
        bestSlot = slot;
      }
    }
    bestSlot!.current -= total;
    return candidates[best]!;
  }
}
