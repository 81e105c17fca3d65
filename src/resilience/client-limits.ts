/**
 * Every client's limits, in one table: a bucket of requests (`rpm`, or RATE_LIMIT_*), a
 * ledger of tokens per minute (`tpm`, or TOKEN_LIMIT_TPM), and its requests in flight
 * (`max_parallel`). A client is a key id when keys are configured, else an address.
 *
 * A request enters before its body is read (a request from the bucket, a place in flight),
 * reserves its token estimate once the body is known, and leaves exactly once when it ends,
 * settling the reservation to what it really cost: a reservation can never be forgotten,
 * because leaving is the only way out and it settles (the "blocked at 80% for minutes"
 * complaint about other proxies is reservations nobody settled).
 *
 * Memory stays bounded however many clients arrive, as in the request limiter before it:
 * entries in least-recently-used order, a few looked at per call and dropped when idle (full
 * bucket, nothing reserved or in flight: the same as a fresh entry), and a hard cap. A
 * client whose limits changed (a keys-file reload) keeps what it used: its new bucket and
 * ledger start as full as the old ones were. Pure: `now` on every call, no timers.
 */
import { TokenBucket } from './token-bucket.js';
import { TokenLedger, type Reservation } from './token-ledger.js';

/** What limits one client; null = no such limit. */
export interface ClientPolicy {
  readonly requests: { readonly capacity: number; readonly windowSec: number } | null;
  readonly tokensPerMinute: number | null;
  readonly maxParallel: number | null;
  /** Its share in the fair queue. */
  readonly weight: number;
}

export type LimitReason = 'requests' | 'parallel' | 'tokens';

/** A bucket's figures for the `x-ratelimit-*` headers. */
export interface BucketView {
  readonly limit: number;
  readonly remaining: number;
  readonly resetMs: number;
}

export type EnterResult =
  | { readonly ok: true; readonly client: ClientTicket; readonly requests: BucketView | null }
  | { readonly ok: false; readonly reason: LimitReason; readonly retryAfterMs: number; readonly requests: BucketView | null; readonly tokens: BucketView | null };

/** What `lendRequests` gave: `n` requests (0: none, and `retryAfterMs` until one exists), and the bucket after. */
export type LendRequestsResult = { readonly n: number; readonly requests: BucketView; readonly retryAfterMs?: number };

export type ReserveResult = { readonly ok: true; readonly tokens: BucketView } | { readonly ok: false; readonly retryAfterMs: number; readonly tokens: BucketView };

interface Entry {
  readonly key: string;
  policy: ClientPolicy;
  requests: TokenBucket | null;
  tokens: TokenLedger | null;
  inFlight: number;
  older: Entry | null;
  newer: Entry | null;
}

/** A request's hold on its client's limits: its place in flight and its token reservation. */
export class ClientTicket {
  reservation: Reservation | null = null;
  left = false;

  constructor(
    /** @internal */ readonly entry: Entry,
  ) {}

  get key(): string {
    return this.entry.key;
  }

  get policy(): ClientPolicy {
    return this.entry.policy;
  }
}

/** Entries examined at the least recently used end per call. */
const SWEEP_PER_CALL = 2;

export class ClientLimits {
  private readonly entries = new Map<string, Entry>();
  private oldest: Entry | null = null;
  private newest: Entry | null = null;

  constructor(private readonly maxKeys = 100_000) {}

  get size(): number {
    return this.entries.size;
  }

  /** Tokens reserved and not settled, over every client (0 between requests: nothing is ever left reserved). */
  outstanding(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.tokens?.outstanding ?? 0;
    return n;
  }

  /** Before the body: one request from the client's bucket, then a place among its requests in flight. */
  enter(key: string, policy: ClientPolicy, now: number): EnterResult {
    this.sweep(now); // before the entry in use is touched, so it is never the one dropped
    const entry = this.touch(key, policy, now);
    const bucket = entry.requests;
    // one too many at once spends nothing: it was refused before taking its request
    if (entry.policy.maxParallel !== null && entry.inFlight >= entry.policy.maxParallel) {
      const requests = bucket === null ? null : { limit: bucket.capacity, remaining: Math.floor(bucket.tokensAt(now)), resetMs: 0 };
      return { ok: false, reason: 'parallel', retryAfterMs: 1000, requests, tokens: view(entry, now) };
    }
    const taken = bucket?.take(now) ?? null;
    const requests = bucket === null || taken === null ? null : { limit: bucket.capacity, remaining: taken.remaining, resetMs: Math.ceil(taken.resetMs) };
    if (taken !== null && !taken.ok) return { ok: false, reason: 'requests', retryAfterMs: Math.ceil(taken.retryAfterMs), requests, tokens: view(entry, now) };
    entry.inFlight++;
    return { ok: true, client: new ClientTicket(entry), requests };
  }

  /**
   * Up to `want` requests from the client's bucket, lent until `now + ttlMs` under the name
   * `tag` (a worker spends them without asking: cluster/remote-limits.ts). They count
   * against the bucket's capacity until then (token-bucket.ts says why). Only for a client
   * whose one limit is its request rate: no place in flight is taken.
   */
  lendRequests(key: string, policy: ClientPolicy, want: number, ttlMs: number, tag: number, now: number): LendRequestsResult {
    if (policy.requests === null || policy.tokensPerMinute !== null || policy.maxParallel !== null) throw new TypeError('only a request rate alone is lent');
    this.sweep(now);
    const entry = this.touch(key, policy, now);
    const bucket = entry.requests!;
    const r = bucket.lend(now, want, now + ttlMs, tag);
    const requests = { limit: bucket.capacity, remaining: r.remaining, resetMs: Math.ceil(r.resetMs) };
    return r.n > 0 ? { n: r.n, requests } : { n: 0, requests, retryAfterMs: Math.ceil(r.retryAfterMs) };
  }

  /** `n` lent requests of the lend `tag` were not spent: back into the client's bucket (if it is still known). */
  returnRequests(key: string, tag: number, n: number, now: number): void {
    this.entries.get(key)?.requests?.giveBack(now, n, tag);
  }

  /** Once the body is known: its token estimate, when the client has a token limit. */
  reserve(ticket: ClientTicket, estimate: number, now: number): ReserveResult | null {
    const ledger = ticket.entry.tokens;
    if (ledger === null || ticket.left) return null;
    const r = ledger.reserve(now, estimate);
    const tokens = { limit: ledger.capacity, remaining: Math.max(0, r.remaining), resetMs: Math.ceil(r.resetMs) };
    if (!r.ok) return { ok: false, retryAfterMs: Math.ceil(r.retryAfterMs), tokens };
    ticket.reservation = r.reservation;
    return { ok: true, tokens };
  }

  /** The client's token figures right now (for the headers of an answer that reserved nothing). */
  tokens(ticket: ClientTicket, now: number): BucketView | null {
    return view(ticket.entry, now);
  }

  /** The request ended: its place in flight is freed and its reservation settled to `actual` tokens. Idempotent. */
  leave(ticket: ClientTicket, actual: number, now: number): void {
    if (ticket.left) return;
    ticket.left = true;
    const entry = ticket.entry;
    if (entry.inFlight > 0) entry.inFlight--;
    if (ticket.reservation !== null) entry.tokens?.settle(now, ticket.reservation, actual);
    ticket.reservation = null;
  }

  /** The entry of `key` brought to `policy` (limits may change on reload), most recently used. */
  private touch(key: string, policy: ClientPolicy, now: number): Entry {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { key, policy, requests: bucketFor(policy), tokens: ledgerFor(policy), inFlight: 0, older: null, newer: null };
      this.entries.set(key, entry);
    } else {
      this.unlink(entry);
      if (entry.policy !== policy) this.adopt(entry, policy, now);
    }
    this.append(entry);
    // past the cap, the least recently used goes even if it is not idle (a flood of distinct
    // clients costs them their accounting, never our memory); the one just used is newest
    while (this.entries.size > this.maxKeys) this.remove(this.oldest!);
    return entry;
  }

  /** New limits for a known client: what it used (and what is lent) carries over into the new bucket, and its ledger keeps its window. */
  private adopt(entry: Entry, policy: ClientPolicy, now: number): void {
    const old = entry.policy;
    entry.policy = policy;
    if (!sameRequests(old.requests, policy.requests)) {
      const before = entry.requests;
      entry.requests = bucketFor(policy);
      if (entry.requests !== null && before !== null) entry.requests.inherit(before, now);
    }
    if (old.tokensPerMinute !== policy.tokensPerMinute) {
      const tpm = policy.tokensPerMinute;
      if (entry.tokens !== null && tpm !== null && tpm > 0) entry.tokens.resize(tpm); // the window's charges and open reservations stay
      else entry.tokens = ledgerFor(policy);
    }
  }

  /**
   * Drops idle entries from the least recently used end. One with requests in flight (a
   * stream may last minutes) goes to the other end instead, so it never blocks the sweep;
   * one that is not full yet stops it: the ones after it were used later.
   */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_CALL; i++) {
      const e = this.oldest;
      if (e === null) return;
      if (e.inFlight > 0) {
        if (e === this.newest) return;
        this.unlink(e);
        this.append(e);
        continue;
      }
      if (!(e.requests?.isFullAt(now) ?? true) || !(e.tokens?.idleAt(now) ?? true)) return;
      this.remove(e);
    }
  }

  private remove(entry: Entry): void {
    this.unlink(entry);
    this.entries.delete(entry.key);
  }

  private append(entry: Entry): void {
    entry.older = this.newest;
    entry.newer = null;
    if (this.newest === null) this.oldest = entry;
    else this.newest.newer = entry;
    this.newest = entry;
  }

  private unlink(entry: Entry): void {
    if (entry.older === null) this.oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === null) this.newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = null;
    entry.newer = null;
  }
}

function view(entry: Entry, now: number): BucketView | null {
  const ledger = entry.tokens;
  return ledger === null ? null : { limit: ledger.capacity, remaining: Math.max(0, ledger.available(now)), resetMs: Math.ceil(ledger.resetMs(now)) };
}

function bucketFor(p: ClientPolicy): TokenBucket | null {
  return p.requests === null ? null : new TokenBucket(p.requests.capacity, p.requests.capacity / p.requests.windowSec);
}

function ledgerFor(p: ClientPolicy): TokenLedger | null {
  return p.tokensPerMinute === null || p.tokensPerMinute <= 0 ? null : new TokenLedger(p.tokensPerMinute);
}

function sameRequests(a: ClientPolicy['requests'], b: ClientPolicy['requests']): boolean {
  return a === b || (a !== null && b !== null && a.capacity === b.capacity && a.windowSec === b.windowSec);
}
