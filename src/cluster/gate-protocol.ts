/**
 * The messages of the 'gate' channel, between a worker's RemoteGate and the primary's
 * GateHost (one ConcurrencyGate and fair queue for every worker). Plain JSON.
 *
 * Worker → primary                         Primary → worker
 *   acquire {id, key, weight}                granted  {id}
 *   release {id}     (done, or gave up)      rejected {id, reason, retryAfterMs, perClient}
 *   charge  {key, tokens}
 *
 * `release` is the one way a worker lets go of a request, whatever the primary made of it
 * so far: a slot granted is given back, a place in the queue is taken out, and a grant
 * already on its way (the request gave up meanwhile: client gone, timeout) is given back
 * when it is made. So a grant that reaches a worker after it gave up is simply dropped.
 * A worker's messages arrive in the order sent: its `charge` before its `release`.
 */
import type { GateRejectReason } from '../resilience/concurrency-gate.js';

export const GATE_CHANNEL = 'gate';

export type GateCall =
  | { readonly ch: typeof GATE_CHANNEL; readonly op: 'acquire'; readonly id: number; readonly key: string; readonly weight: number }
  | { readonly ch: typeof GATE_CHANNEL; readonly op: 'release'; readonly id: number }
  | { readonly ch: typeof GATE_CHANNEL; readonly op: 'charge'; readonly key: string; readonly tokens: number };

export type GateAnswer =
  | { readonly ch: typeof GATE_CHANNEL; readonly op: 'granted'; readonly id: number }
  | { readonly ch: typeof GATE_CHANNEL; readonly op: 'rejected'; readonly id: number; readonly reason: GateRejectReason | 'error'; readonly retryAfterMs: number; readonly perClient: boolean; readonly message?: string };
