/**
 * Requests leased from the primary, per client, in a worker (RemoteLimits' common case): a
 * client whose one limit is its request rate (the default, RATE_LIMIT_ENABLED per address)
 * is admitted from a local credit of requests lent by the primary's bucket, so a busy
 * client costs no IPC per request (limits-protocol.ts, `lease`).
 *
 * - A credit is spent one request per enter, answered at once; its headers are the bucket
 *   the primary showed at the grant, less what was spent since (the unspent ones of this
 *   credit are still the client's).
 * - Credit 0: ONE lease in flight per client; the enters meanwhile wait on it and share what
 *   it brings; those it does not cover ask again, or are refused with its `retryAfterMs`
 *   when it brought none.
 * - The size adapts: 1 at first; a credit spent within its lease doubles the next one, up to
 *   max(1, floor(capacity / (4 × workers))) and MAX_LEASE; a refusal or a short grant goes
 *   back to 1. Near its limit a client is served one request at a time, far from it in
 *   batches.
 * - A credit may be spent until LEASE_TTL_MS after its lease was SENT (never after the
 *   primary's lend expires); what is unspent then goes back (`unlease`). One timer per
 *   worker sweeps, armed for the earliest expiry; an enter also checks its own credit.
 * - A client whose policy changed (a keys reload) gives its credit back first.
 * - A worker that exits (or loses its link: `close`) forgets its credits: unspent leased
 *   requests are lost, counted spent in the primary. Never more than the limit.
 */
import type { Clock } from '../clock.js';
import type { BucketView, ClientPolicy } from '../resilience/client-limits.js';
import { LEASE_TTL_MS, MAX_LEASE } from './limits-protocol.js';

/** What a leased enter gets: a request (with the figures for its headers) or a refusal. */
export type Grant = { readonly ok: true; readonly requests: BucketView } | { readonly ok: false; readonly retryAfterMs: number; readonly requests: BucketView };

/** The primary's answer to a lease. */
export interface LeaseAnswer {
  readonly lease: number;
  readonly n: number;
  readonly requests: BucketView;
  readonly retryAfterMs?: number;
}

/** One client's lease in this worker. */
export class Credit {
  /** Requests left to spend, of `granted`. */
  permits = 0;
  granted = 0;
  /** The primary's bucket after the grant, and when it came. */
  view: BucketView | null = null;
  grantedAt = 0;
  /** The primary's number for the lease (for `unlease`). */
  lease = 0;
  /** After it, nothing of this lease is spent, and an idle credit is forgotten. */
  expiresAt: number;
  /** The next lease's size; `asked` is the one in flight, sent at `sentAt`. */
  want = 1;
  asked = 0;
  sentAt = 0;
  asking = false;
  /** Enters waiting on the lease in flight (null: failed open). */
  waiters: ((g: Grant | null) => void)[] = [];
  /** Replaced (its client's policy changed): what its lease in flight leaves unspent goes back at once. */
  detached = false;

  constructor(
    readonly key: string,
    public policy: ClientPolicy,
    now: number,
  ) {
    this.expiresAt = now + LEASE_TTL_MS;
  }
}

export class RequestLeases {
  private readonly credits = new Map<string, Credit>();
  private sweepAt = Infinity;
  private cancelSweep: (() => void) | null = null;

  constructor(
    private readonly clock: Clock,
    /** Worker processes sharing the limits: the lease cap shrinks with their number. */
    private readonly workers: number,
    /** Sends a lease of `credit.asked` for the credit (or fails it open at once). */
    private readonly ask: (credit: Credit) => void,
    /** Gives back `n` unspent requests of the primary's lease `lease`. */
    private readonly unlease: (key: string, lease: number, n: number) => void,
  ) {}

  /** A client whose one limit is its request rate is served from leases. */
  static leasable(p: ClientPolicy): boolean {
    return p.requests !== null && p.tokensPerMinute === null && p.maxParallel === null;
  }

  /** Clients with a credit or a lease in flight here. */
  get size(): number {
    return this.credits.size;
  }

  /** One request of the client: from its credit at once, else from the lease in flight (null: failed open). */
  take(key: string, policy: ClientPolicy): Promise<Grant | null> {
    const now = this.clock.now();
    let c = this.credits.get(key);
    if (c !== undefined && c.policy !== policy) {
      if (samePolicy(c.policy, policy)) c.policy = policy;
      else {
        this.detach(c);
        c = undefined;
      }
    }
    if (c === undefined) {
      c = new Credit(key, policy, now);
      this.credits.set(key, c);
      this.armSweep(c.expiresAt, now);
    }
    if (c.permits > 0 && now >= c.expiresAt) this.giveBack(c);
    if (c.permits > 0) return Promise.resolve(this.spend(c, now));
    const credit = c;
    return new Promise((resolve) => {
      credit.waiters.push(resolve);
      if (!credit.asking) this.request(credit, now);
    });
  }

  /** The primary answered the lease in flight of `c`. */
  answered(c: Credit, a: LeaseAnswer): void {
    const now = this.clock.now();
    c.asking = false;
    if (a.n <= 0) {
      c.want = 1;
      const refused: Grant = { ok: false, retryAfterMs: a.retryAfterMs ?? 0, requests: a.requests };
      for (const w of c.waiters.splice(0)) w(refused);
      return;
    }
    c.permits = a.n;
    c.granted = a.n;
    c.view = a.requests;
    c.grantedAt = now;
    c.lease = a.lease;
    c.expiresAt = c.sentAt + LEASE_TTL_MS;
    if (a.n < c.asked) c.want = 1;
    if (now >= c.expiresAt) this.giveBack(c); // it came later than its lease lasts
    let served = 0;
    while (served < c.waiters.length && c.permits > 0) c.waiters[served++]!(this.spend(c, now));
    c.waiters.splice(0, served);
    if (c.waiters.length > 0) this.request(c, now);
    else if (c.detached) this.giveBack(c);
    else this.armSweep(c.expiresAt, now);
  }

  /** The lease in flight of `c` got no answer (a silent primary, the link lost): its enters go through. */
  failOpen(c: Credit): void {
    c.asking = false;
    for (const w of c.waiters.splice(0)) w(null);
  }

  /** The link is gone: every credit is forgotten (from now on every enter fails open). */
  close(): void {
    this.credits.clear();
    this.cancelSweep?.();
    this.cancelSweep = null;
    this.sweepAt = Infinity;
  }

  private request(c: Credit, now: number): void {
    c.asking = true;
    c.asked = c.want;
    c.sentAt = now;
    this.ask(c);
  }

  private spend(c: Credit, now: number): Grant {
    c.permits--;
    // spent within its lease, and it was all that was asked: the client is busy, ask for more
    if (c.permits === 0 && c.granted === c.asked) c.want = Math.min(this.cap(c.policy), c.asked * 2);
    const v = c.view!;
    return { ok: true, requests: { limit: v.limit, remaining: Math.max(0, v.remaining + c.permits), resetMs: Math.max(0, Math.ceil(v.resetMs - (now - c.grantedAt))) } };
  }

  private cap(p: ClientPolicy): number {
    return Math.max(1, Math.min(MAX_LEASE, Math.floor(p.requests!.capacity / (4 * this.workers))));
  }

  private giveBack(c: Credit): void {
    const n = c.permits;
    c.permits = 0;
    if (n > 0) this.unlease(c.key, c.lease, n);
  }

  private detach(c: Credit): void {
    c.detached = true;
    this.credits.delete(c.key);
    this.giveBack(c);
  }

  private armSweep(at: number, now: number): void {
    if (at >= this.sweepAt) return;
    this.cancelSweep?.();
    this.sweepAt = at;
    this.cancelSweep = this.clock.timer(Math.max(0, at - now), this.sweep);
  }

  /** Unspent requests of expired leases go back; idle clients are forgotten. */
  private readonly sweep = (): void => {
    this.cancelSweep = null;
    this.sweepAt = Infinity;
    const now = this.clock.now();
    let next = Infinity;
    for (const c of this.credits.values()) {
      if (c.asking) next = Math.min(next, now + LEASE_TTL_MS);
      else if (now >= c.expiresAt) {
        this.giveBack(c);
        this.credits.delete(c.key);
      } else next = Math.min(next, c.expiresAt);
    }
    if (next !== Infinity) this.armSweep(next, now);
  };
}

function samePolicy(a: ClientPolicy, b: ClientPolicy): boolean {
  return a.requests?.capacity === b.requests?.capacity && a.requests?.windowSec === b.requests?.windowSec && a.tokensPerMinute === b.tokensPerMinute && a.maxParallel === b.maxParallel && a.weight === b.weight;
}
