/**
 * The upstreams the proxy fronts, in config order (the first is the home of state that
 * lives on one server: files, batches, stored responses), and the choice of one for an
 * attempt: among the routable upstreams that serve the request's model, the balancer picks
 * (a retry prefers one not tried yet); a request pinned to one upstream goes there or
 * nowhere. With one upstream everything short-cuts to it.
 *
 * Every request in flight on an upstream enters and leaves through here, so a reload can
 * retire a removed upstream (it takes nothing new) and close its connections once the
 * last request it carries ends. Nothing here does I/O but that close.
 */
import type { Balancer } from './balancer.js';
import { Upstream } from './upstream.js';
import type { UpstreamSpec } from './upstreams-config.js';

/** Where a request may go. */
export interface Route {
  /** The model the request names; null when it names none. */
  readonly model: string | null;
  /** The session key (affinity), null when there is none. */
  readonly key: string | null;
  /** Only this upstream may take it (its state lives there); null = balanced. */
  readonly pinned: string | null;
}

export const BALANCED: Route = { model: null, key: null, pinned: null };

/** What a reload changed, by name. */
export interface ReloadResult {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly kept: readonly string[];
}

export class UpstreamSet {
  private list: Upstream[] = [];
  private byName = new Map<string, Upstream>();

  /**
   * @param make builds an upstream (its transport and breaker) for a spec
   * @param onRetired told when a removed upstream has finished what it carried and closed
   */
  constructor(
    specs: readonly UpstreamSpec[],
    private readonly make: (spec: UpstreamSpec) => Upstream,
    private readonly balancer: Balancer,
    private readonly onRetired: (u: Upstream) => void = () => {},
  ) {
    if (specs.length === 0) throw new RangeError('at least one upstream is needed');
    this.install(specs.map((s) => make(s)));
  }

  get all(): readonly Upstream[] {
    return this.list;
  }

  /** The first upstream: where state that lives on one server goes. */
  get home(): Upstream {
    return this.list[0]!;
  }

  get several(): boolean {
    return this.list.length > 1;
  }

  find(name: string): Upstream | undefined {
    return this.byName.get(name);
  }

  /** The upstream for the next attempt of a request (`tried`: those it already used), or null when none may take it. */
  choose(route: Route, tried: ReadonlySet<Upstream>, now: number): Upstream | null {
    if (this.list.length === 1) {
      const only = this.list[0]!;
      return only.routable(now) ? only : null;
    }
    if (route.pinned !== null) {
      const u = this.byName.get(route.pinned) ?? this.home; // a remembered upstream removed since: home
      return u.routable(now) ? u : null;
    }
    let candidates = this.candidates(route.model, now);
    if (candidates.length === 0) return null;
    if (tried.size > 0) {
      const fresh = candidates.filter((u) => !tried.has(u));
      if (fresh.length > 0) candidates = fresh;
    }
    return candidates.length === 1 ? candidates[0]! : this.balancer.pick(candidates, route.key);
  }

  /** Whether some upstream could take this request now (nothing is reserved, the balancer is not asked). */
  available(route: Route, now: number): boolean {
    if (this.list.length === 1) return this.list[0]!.routable(now);
    if (route.pinned !== null) return (this.byName.get(route.pinned) ?? this.home).routable(now);
    return this.candidates(route.model, now).length > 0;
  }

  /** Whether a routable upstream that serves the request has not been tried yet (a retry there fails over). */
  untried(route: Route, tried: ReadonlySet<Upstream>, now: number): boolean {
    if (this.list.length === 1 || route.pinned !== null) return false;
    return this.candidates(route.model, now).some((u) => !tried.has(u));
  }

  /** How long until an upstream that could serve this request may take it again (at least a second). */
  retryAfterMs(route: Route, now: number, healthIntervalMs: number): number {
    let soonest = Infinity;
    for (const u of this.relevant(route)) soonest = Math.min(soonest, u.waitMs(now, healthIntervalMs));
    return Math.max(1000, soonest === Infinity ? 1000 : soonest);
  }

  enter(u: Upstream): void {
    u.inFlight++;
  }

  leave(u: Upstream): void {
    if (u.inFlight > 0) u.inFlight--;
    if (u.retiring && u.inFlight === 0) this.retired(u);
  }

  /** Every model some upstream is known to serve, each once, in config order. */
  models(): string[] {
    const seen = new Set<string>();
    for (const u of this.list) for (const m of u.served ?? []) seen.add(m);
    return [...seen];
  }

  /**
   * A new set of upstreams (SIGHUP): one whose name and URL stay is kept with its
   * connections, breaker and counts (weight, models and max_concurrent take the new values);
   * new ones join; removed ones take nothing new and close once idle.
   */
  replace(specs: readonly UpstreamSpec[]): ReloadResult {
    const added: string[] = [];
    const kept: string[] = [];
    const next: Upstream[] = [];
    for (const spec of specs) {
      const old = this.byName.get(spec.name);
      if (old !== undefined && old.url.href === spec.url.href) {
        old.update(spec);
        next.push(old);
        kept.push(spec.name);
      } else {
        next.push(this.make(spec));
        added.push(spec.name);
      }
    }
    const staying = new Set(next);
    const gone = this.list.filter((u) => !staying.has(u));
    this.install(next);
    // after the new set is in place, so whoever hears of a retired one sees the set without it
    for (const u of gone) {
      u.retiring = true;
      if (u.inFlight === 0) this.retired(u);
    }
    return { added, removed: gone.map((u) => u.name), kept };
  }

  /** Closes every upstream's connections (shutdown). */
  async close(): Promise<void> {
    await Promise.all(this.list.map((u) => u.transport.close().catch(() => {})));
  }

  private install(list: Upstream[]): void {
    this.list = list;
    this.byName = new Map(list.map((u) => [u.name, u]));
    this.balancer.setMembers(list);
  }

  private retired(u: Upstream): void {
    void u.transport.close().catch(() => {});
    this.onRetired(u);
  }

  /** Routable upstreams that serve `model`: those known to serve it, or, when none is, any. */
  private candidates(model: string | null, now: number): Upstream[] {
    const known = model !== null && this.list.some((u) => u.served?.has(model) === true);
    const out: Upstream[] = [];
    for (const u of this.list) {
      if (known && u.served?.has(model!) !== true) continue;
      if (u.routable(now)) out.push(u);
    }
    return out;
  }

  /** The upstreams whose recovery would let this request through. */
  private relevant(route: Route): readonly Upstream[] {
    if (this.list.length === 1) return this.list;
    if (route.pinned !== null) return [this.byName.get(route.pinned) ?? this.home];
    const model = route.model;
    if (model !== null && this.list.some((u) => u.served?.has(model) === true)) return this.list.filter((u) => u.served?.has(model) === true);
    return this.list;
  }
}
