/**
 * The concurrency gate as the request path sees it: wait for one of MAX_CONCURRENT_REQUESTS
 * slots (in fair order), say what the request was served, give the slot back.
 *
 * - ConcurrencyGate (concurrency-gate.ts): the gate itself, in this process (WORKERS=1, and
 *   in the cluster's primary).
 * - RemoteGate (cluster/remote-gate.ts): a worker's handle on the primary's gate, so that
 *   N workers share one cap and one fair queue. Its figures are this worker's part: the
 *   workers' sums are the primary's.
 */
import type { WaitSummary } from '../observe/client-waits.js';
import type { GateClient } from './fair-queue.js';

/** Releases the slot; calling it again does nothing. */
export type Release = () => void;

export interface Gate {
  /**
   * Resolves with a Release once the request may go upstream; rejects with GateRejected
   * (queue full, waited too long) or with the signal's reason when it aborts first.
   */
  acquire(client: GateClient, signal?: AbortSignal): Promise<Release>;
  /** Service the client received (tokens; negative = refund), before its slot is released. */
  charge(clientKey: string, tokens: number): void;
  /** Slots in use. */
  readonly inFlight: number;
  /** Requests waiting (the queue depth metric). */
  readonly queued: number;
  /** Requests waiting now by client key. */
  queuedBy(): ReadonlyMap<string, number>;
  /** Per client key seen recently: admissions and wait percentiles. */
  waits(): Record<string, WaitSummary>;
}
