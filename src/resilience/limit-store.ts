/**
 * Where the per-client limits are kept, as the request path (admission, handler, upgrade)
 * sees them: a request enters (a request from its client's bucket, a place among its
 * requests in flight), reserves its token estimate once its body is known, and leaves
 * exactly once, settling the reservation to what it cost. The arithmetic is ClientLimits';
 * this is only where it runs:
 *
 * - LocalLimits (local-limits.ts): in this process. WORKERS=1.
 * - RemoteLimits (cluster/remote-limits.ts): in the cluster's primary, over IPC, so that
 *   WORKERS=N share one table and a client never gets N× its limit.
 *
 * The shape is chosen so that a store shared by several hosts (Redis, as redis-cell runs
 * GCRA in one script) could take its place without the request path changing:
 * - `enter` and `reserve` are asynchronous (a round trip); `leave` is fire-and-forget:
 *   nothing waits on it, and a lost leave must not hold a place forever, so every store
 *   frees what a host held when that host is known gone (the primary on a worker's exit; a
 *   shared store would give each ticket a lease).
 * - No `now` crosses the interface: the store reads its own clock (the primary's, the Redis
 *   server's TIME), so hosts whose clocks disagree still share one timeline.
 * - Everything a call needs travels with it: the client's key and its policy (a keys-file
 *   reload reaches the store with the next request of that client; the store needs no copy
 *   of the keys), the ticket by identity, the tokens used.
 * - `leave` is idempotent per ticket, and a usage that is unknown (NaN) keeps the estimate
 *   charged: the safe side of a limit.
 */
import type { BucketView, ClientPolicy, LimitReason } from './client-limits.js';

export type { BucketView, ClientPolicy, LimitReason } from './client-limits.js';

/** A request's hold on its client's limits, from `enter` until `leave`. */
export interface LimitTicket {
  /** The client (key id or address). */
  readonly key: string;
  /** The policy it entered under (its `weight` orders the fair queue). */
  readonly policy: ClientPolicy;
}

/** The answer to `enter`: the figures of both limits either way, for the `x-ratelimit-*` headers. */
export type Entered =
  | { readonly ok: true; readonly ticket: LimitTicket; readonly requests: BucketView | null; readonly tokens: BucketView | null }
  | { readonly ok: false; readonly reason: LimitReason; readonly retryAfterMs: number; readonly requests: BucketView | null; readonly tokens: BucketView | null };

/** The answer to `reserve`; null when the client has no token limit (or the ticket already left). */
export type Reserved = { readonly ok: true; readonly tokens: BucketView } | { readonly ok: false; readonly retryAfterMs: number; readonly tokens: BucketView } | null;

export interface LimitStore {
  /** Before the body: one request from the client's bucket, then a place among its requests in flight. */
  enter(key: string, policy: ClientPolicy): Promise<Entered>;
  /** Once the body is known: its token estimate, when the client has a token limit. */
  reserve(ticket: LimitTicket, estimate: number): Promise<Reserved>;
  /** The request ended: its place is freed and its reservation settled to `actualTokens` (NaN: unknown, the estimate stands). Idempotent. */
  leave(ticket: LimitTicket, actualTokens: number): void;
  /** Clients tracked, for /stats. */
  readonly size: number;
  /** Tokens reserved and not yet settled, for /stats (0 whenever nothing is in flight). */
  outstanding(): number;
}
