/**
 * The messages of the 'limits' channel, between a worker's RemoteLimits and the primary's
 * LimitsHost. Plain JSON (node:cluster's IPC serialisation): a NaN sent arrives as null.
 *
 * Worker → primary                                   Primary → worker
 *   enter   {id, key, policy}                          entered  {id, ok, reason?, retryAfterMs?, requests, tokens}
 *   reserve {id, t, estimate}                          reserved {id, result: {ok, retryAfterMs?, tokens, reserved?} | null}
 *   leave   {t, actual}              (no answer)       failed   {id}  (the host could not answer: an exception)
 *   lease   {id, key, policy, want}                    leased   {id, key, lease, n, requests, retryAfterMs?}
 *   unlease {key, lease, n}          (no answer)
 *
 * `id` pairs an answer with its call; an entered request's ticket is its enter's `id` (`t`).
 * The host is the authority on tickets: whatever the worker made of an answer (it came
 * late, after the worker gave up and went on), the worker's `leave {t}` frees whatever the
 * host holds under `t`, and a leave for a ticket the host never admitted does nothing. A
 * worker's messages reach the primary in the order sent (one IPC pipe), so an enter is
 * always seen before its leave.
 *
 * Leases (a client whose one limit is its request rate, the default): `lease` takes up to
 * `want` whole requests from the client's bucket, lent under the host's number `lease` for
 * LEASE_TTL_MS; the worker admits that many requests without a message (no ticket, no
 * leave) and gives back what it did not spend with `unlease` before its lease ends. `n` = 0
 * is a refusal (`retryAfterMs` until one request exists). Until it expires a lend counts
 * against the bucket's capacity (token-bucket.ts), so leases never admit more than one
 * bucket would. The worker stops spending a lease LEASE_TTL_MS after it SENT the `lease`,
 * which is never after the host's LEASE_TTL_MS from the grant (both count durations only).
 */
import type { BucketView, ClientPolicy, LimitReason } from '../resilience/client-limits.js';

export const LIMITS_CHANNEL = 'limits';

/** How long lent requests may be spent: the host's count of them and the worker's use end together. */
export const LEASE_TTL_MS = 1000;

/** The most requests one lease asks for. */
export const MAX_LEASE = 64;

export type LimitsCall =
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'enter'; readonly id: number; readonly key: string; readonly policy: ClientPolicy }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'reserve'; readonly id: number; readonly t: number; readonly estimate: number }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'leave'; readonly t: number; readonly actual: number | null }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'lease'; readonly id: number; readonly key: string; readonly policy: ClientPolicy; readonly want: number }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'unlease'; readonly key: string; readonly lease: number; readonly n: number };

export type LimitsAnswer =
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'entered'; readonly id: number; readonly ok: boolean; readonly reason?: LimitReason; readonly retryAfterMs?: number; readonly requests: BucketView | null; readonly tokens: BucketView | null }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'reserved'; readonly id: number; readonly result: { readonly ok: boolean; readonly retryAfterMs?: number; readonly tokens: BucketView; readonly reserved?: number } | null }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'leased'; readonly id: number; readonly key: string; readonly lease: number; readonly n: number; readonly requests: BucketView; readonly retryAfterMs?: number }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'failed'; readonly id: number };
