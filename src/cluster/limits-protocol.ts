/**
 * The messages of the 'limits' channel, between a worker's RemoteLimits and the primary's
 * LimitsHost. Plain JSON (node:cluster's IPC serialisation): a NaN sent arrives as null.
 *
 * Worker → primary                                   Primary → worker
 *   enter   {id, key, policy}                          entered  {id, ok, reason?, retryAfterMs?, requests, tokens}
 *   reserve {id, t, estimate}                          reserved {id, result: {ok, retryAfterMs?, tokens, reserved?} | null}
 *   leave   {t, actual}              (no answer)       failed   {id}  (the host could not answer: an exception)
 *
 * `id` pairs an answer with its call; an entered request's ticket is its enter's `id` (`t`).
 * The host is the authority on tickets: whatever the worker made of an answer (it came
 * late, after the worker gave up and went on), the worker's `leave {t}` frees whatever the
 * host holds under `t`, and a leave for a ticket the host never admitted does nothing. A
 * worker's messages reach the primary in the order sent (one IPC pipe), so an enter is
 * always seen before its leave.
 */
import type { BucketView, ClientPolicy, LimitReason } from '../resilience/client-limits.js';

export const LIMITS_CHANNEL = 'limits';

export type LimitsCall =
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'enter'; readonly id: number; readonly key: string; readonly policy: ClientPolicy }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'reserve'; readonly id: number; readonly t: number; readonly estimate: number }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'leave'; readonly t: number; readonly actual: number | null };

export type LimitsAnswer =
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'entered'; readonly id: number; readonly ok: boolean; readonly reason?: LimitReason; readonly retryAfterMs?: number; readonly requests: BucketView | null; readonly tokens: BucketView | null }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'reserved'; readonly id: number; readonly result: { readonly ok: boolean; readonly retryAfterMs?: number; readonly tokens: BucketView; readonly reserved?: number } | null }
  | { readonly ch: typeof LIMITS_CHANNEL; readonly op: 'failed'; readonly id: number };
