/**
 * Caps the requests in flight to the upstream, with a bounded FIFO queue in front. An LLM
 * server slows down for everyone past a certain number of concurrent generations, so it
 * is better to hold a few requests briefly, and refuse the rest at once with a hint to
 * come back, than to pile everything on the upstream.
 *
 * Waiting uses the injected Clock, so tests move a fake clock instead of sleeping.
 */
import type { Clock } from '../clock.js';

export type GateRejectReason = 'queue_full' | 'queue_timeout';

/** Refusal by the gate; recognise it by `reason`, never by the message. */
export class GateRejected extends Error {
  readonly reason: GateRejectReason;
  /** A suggested wait for the client's `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number;

  constructor(reason: GateRejectReason, retryAfterMs: number) {
    super(reason === 'queue_full' ? 'too many requests waiting for the upstream' : 'timed out waiting for the upstream');
    this.name = 'GateRejected';
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}

export interface ConcurrencyGateOptions {
  /** Requests in flight at most; 0 means unlimited (the gate never waits). */
  maxConcurrent: number;
  /** Requests that may wait for a slot; beyond it they are refused at once. 0 = no queue. */
  queueSize: number;
  /** Milliseconds a request may wait for a slot; Infinity waits as long as it takes. */
  queueTimeoutMs: number;
  clock: Clock;
  /** The wait suggested in GateRejected.retryAfterMs; default 1000 ms. */
  retryAfterMs?: number;
}

/** Releases the slot; calling it again does nothing. */
export type Release = () => void;

interface Waiter {
  grant(): void;
}

export class ConcurrencyGate {
  private readonly maxConcurrent: number;
  private readonly queueSize: number;
  private readonly queueTimeoutMs: number;
  private readonly clock: Clock;
  private readonly retryAfterMs: number;
  private active = 0;
  /** A Set keeps insertion order (FIFO) and lets a waiter that gives up leave in O(1). */
  private readonly waiters = new Set<Waiter>();

  constructor(options: ConcurrencyGateOptions) {
    const { maxConcurrent, queueSize, queueTimeoutMs, clock, retryAfterMs = 1000 } = options;
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 0)) {
      throw new RangeError(`maxConcurrent must be a non-negative integer, got ${maxConcurrent}`);
    }
    if (!(Number.isInteger(queueSize) && queueSize >= 0)) {
      throw new RangeError(`queueSize must be a non-negative integer, got ${queueSize}`);
    }
    if (!(queueTimeoutMs >= 0)) {
      throw new RangeError(`queueTimeoutMs must be a non-negative number, got ${queueTimeoutMs}`);
    }
    this.maxConcurrent = maxConcurrent;
    this.queueSize = queueSize;
    this.queueTimeoutMs = queueTimeoutMs;
    this.clock = clock;
    this.retryAfterMs = retryAfterMs;
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiters.size;
  }

  /**
   * Resolves with a Release once the request may go upstream. Rejects with GateRejected
   * when the queue is full or the wait exceeds queueTimeoutMs, and with the signal's
   * reason when the signal aborts first (the client left); the waiter then leaves the queue.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // release() hands a freed slot to the oldest waiter synchronously, so a free slot here
    // means nobody is waiting: a newcomer never overtakes the queue.
    if (this.hasFreeSlot()) return Promise.resolve(this.take());
    if (this.waiters.size >= this.queueSize) {
      return Promise.reject(new GateRejected('queue_full', this.retryAfterMs));
    }
    return new Promise<Release>((resolve, reject) => {
      const timer = new AbortController();
      const leave = (): void => {
        this.waiters.delete(waiter);
        timer.abort();
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          leave();
          resolve(this.take());
        },
      };
      const onAbort = (): void => {
        leave();
        reject(signal?.reason);
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.queueTimeoutMs !== Infinity) {
        this.clock.sleep(this.queueTimeoutMs, timer.signal).then(
          () => {
            // Granted or aborted meanwhile: that outcome stands.
            if (!this.waiters.has(waiter)) return;
            leave();
            reject(new GateRejected('queue_timeout', this.retryAfterMs));
          },
          () => {
            // The sleep was cancelled because the waiter left the queue: nothing to do.
          },
        );
      }
    });
  }

  private hasFreeSlot(): boolean {
    return this.maxConcurrent === 0 || this.active < this.maxConcurrent;
  }

  /** Occupies a slot and returns its idempotent release. */
  private take(): Release {
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.pump();
    };
  }

  /** Hands free slots to the oldest waiters, in order. */
  private pump(): void {
    for (const waiter of this.waiters) {
      if (!this.hasFreeSlot()) return;
      waiter.grant();
    }
  }
}
