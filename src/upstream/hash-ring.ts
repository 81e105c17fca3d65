/**
 * A consistent-hash ring of weighted members, the placement half of the affinity balancer
 * (the load bound lives in affinity.ts). Each member owns `round(1000 × weight)` points (at
 * least one). A key hashes to a position; its preference list is the members met walking
 * clockwise from there, each named once, so when the first is unavailable the key falls to
 * the next and no further.
 *
 * Why 1000 points per weight unit, not ketama's and nginx's 160: a member's share of the
 * ring strays from its weight by about 0.85/√points (measured over 200 random sets of
 * names: 160 points → 6% relative, 1000 → 2.7%), and a replica with 20% more ring than its
 * share carries 20% more sessions whenever it is under its load bound. 64 members cost
 * 64,000 points (512 KB), built on reload only; a walk is a binary search plus a few steps.
 *
 * Stability is the point: a member's points depend only on its own name and weight, never
 * on the others, so a member joining takes keys only for itself and a member leaving moves
 * only its own keys. Points that collide are ordered by name, not by config order, so
 * reordering the config moves nothing.
 *
 * Built once per membership; a walk allocates nothing (the `visit` callback is the
 * caller's, made once), which matters because it runs once per attempt.
 */

export interface RingMember {
  readonly name: string;
  /** Relative share of the ring; finite and > 0. */
  readonly weight: number;
}

/** Points per weight unit. */
export const POINTS_PER_WEIGHT = 1000;
/** Above this many points in all (weights summing past ~1000), every count is scaled down
 *  in proportion to bound memory and build time. Counts then depend on the total, so a join
 *  or leave in such a config moves more keys than its share: prefer small weights. */
export const MAX_POINTS = 1 << 20;
const MAX_MEMBERS = 1 << 16;

/**
 * 32-bit FNV-1a over the UTF-16 code units (low byte, then high byte), then murmur3's fmix32
 * so that keys differing in one character land far apart (FNV alone mixes its last bytes
 * poorly). Not cryptographic: a key is only a placement, never a secret.
 */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    h = Math.imul(h ^ (unit & 0xff), 0x01000193);
    h = Math.imul(h ^ (unit >>> 8), 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashRing {
  /** Member names in the order given; a walk reports indices into this array. */
  readonly names: readonly string[];
  private readonly positions: Uint32Array;
  private readonly owners: Uint32Array;
  /** seen[m] === pass marks member m as already visited in the current walk. */
  private readonly seen: Uint32Array;
  private pass = 0;

  constructor(members: readonly RingMember[]) {
    if (members.length > MAX_MEMBERS) {
      throw new RangeError(`at most ${MAX_MEMBERS} ring members, got ${members.length}`);
    }
    const names = members.map((m) => m.name);
    if (new Set(names).size !== names.length) {
      throw new RangeError(`ring member names must be distinct: ${JSON.stringify(names)}`);
    }
    for (const { name, weight } of members) {
      if (!(Number.isFinite(weight) && weight > 0)) {
        throw new RangeError(`weight of ${JSON.stringify(name)} must be a finite number > 0, got ${weight}`);
      }
    }
    const counts = members.map((m) => Math.max(1, Math.round(m.weight * POINTS_PER_WEIGHT)));
    const total = counts.reduce((a, b) => a + b, 0);
    if (total > MAX_POINTS) {
      for (let i = 0; i < counts.length; i++) counts[i] = Math.max(1, Math.floor((counts[i]! * MAX_POINTS) / total));
    }
    // Each point packed as position × 2^16 + the member's rank by name (< 2^48, exact in a
    // double), so one numeric sort orders by position and breaks collisions by name.
    const byName = names.map((_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : 1));
    const packed = new Float64Array(counts.reduce((a, b) => a + b, 0));
    let n = 0;
    byName.forEach((member, rank) => {
      for (let i = 0; i < counts[member]!; i++) packed[n++] = hash32(`${names[member]}#${i}`) * MAX_MEMBERS + rank;
    });
    packed.sort();
    this.positions = new Uint32Array(packed.length);
    this.owners = new Uint32Array(packed.length);
    for (let i = 0; i < packed.length; i++) {
      this.positions[i] = Math.floor(packed[i]! / MAX_MEMBERS);
      this.owners[i] = byName[packed[i]! % MAX_MEMBERS]!;
    }
    this.names = names;
    this.seen = new Uint32Array(names.length);
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.positions.length;
  }

  /**
   * Visits members clockwise from `key`'s position, each once, until `visit` returns true;
   * returns that member's index, or -1 when every member was declined (or the ring is
   * empty). `visit` must not walk this ring itself: the walk's bookkeeping is shared.
   */
  walk(key: string, visit: (member: number) => boolean): number {
    const size = this.positions.length;
    if (size === 0) return -1;
    const pass = this.nextPass();
    let unseen = this.names.length;
    let at = this.firstAtOrAfter(hash32(key));
    for (let step = 0; step < size && unseen > 0; step++, at++) {
      if (at === size) at = 0;
      const member = this.owners[at]!;
      if (this.seen[member] === pass) continue;
      this.seen[member] = pass;
      unseen--;
      if (visit(member)) return member;
    }
    return -1;
  }

  /** The key's whole preference list, by name (allocates: for tests and diagnostics). */
  lookup(key: string): string[] {
    const order: string[] = [];
    this.walk(key, (member) => {
      order.push(this.names[member]!);
      return false;
    });
    return order;
  }

  /** Index of the first point at or after `position`, or `size` to wrap (binary search). */
  private firstAtOrAfter(position: number): number {
    let lo = 0;
    let hi = this.positions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! < position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private nextPass(): number {
    if (this.pass === 0xffffffff) {
      this.seen.fill(0);
      this.pass = 0;
    }
    return ++this.pass;
  }
}
