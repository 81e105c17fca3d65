/**
 * Caps the requests in flight to the upstream, with a bounded queue in front. An LLM
 * server slows down for everyone past a certain number of concurrent generations, so it
 * is better to hold a few requests briefly, and refuse the rest at once with a hint to
 * come back, than to pile everything on the upstream.
 *
 * Who waits and who goes next is the FairQueue's business: by default the client that got
 * the least service per weight goes first (VTC), so one client flooding the queue does not
 * starve the others; 'fifo' keeps plain arrival order. In fair order one client may hold at
 * most `maxQueuedPerClient` of the queue's places.
 *
 * Service is charged by the caller, through `charge`: the estimate right after `acquire`
 * resolves (before yielding to I/O: two admissions before a charge both see the old
 * counter), then the correction at settlement, before `release` (a client with nothing
 * left in flight is forgotten, and a charge to it does nothing).
 *
 * Waiting uses the injected Clock, so tests move a fake clock instead of sleeping.
 */
import type { Clock } from '../clock.js';
import { ClientWaits, type WaitSummary } from '../observe/client-waits.js';
import { FairQueue, type GateClient, type QueueOrder, type QueuedEntry } from './fair-queue.js';
import type { Gate, Release } from './gate.js';

export type { GateClient, QueueOrder } from './fair-queue.js';
export type { WaitSummary } from '../observe/client-waits.js';
export type { Gate, Release } from './gate.js';

export type GateRejectReason = 'queue_full' | 'queue_timeout';

/** Refusal by the gate; recognise it by `reason`, never by the message. */
export class GateRejected extends Error {
  readonly reason: GateRejectReason;
  /** A suggested wait for the client's `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number;
  /** True when the queue had room but this client already held its share of it. */
  readonly perClient: boolean;

  constructor(reason: GateRejectReason, retryAfterMs: number, perClient = false) {
    super(
      reason === 'queue_timeout'
        ? 'timed out waiting for the upstream'
        : perClient
          ? 'too many requests of this client waiting for the upstream'
          : 'too many requests waiting for the upstream',
    );
    this.name = 'GateRejected';
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
    this.perClient = perClient;
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
  /** 'fair' (default): least service per weight first; 'fifo': arrival order. */
  order?: QueueOrder;
  /**
   * Requests one client may have waiting; beyond it its new request is refused with
   * 'queue_full' even if the queue has room. Default: in fair order ceil(queueSize / 2),
   * at least 1; in fifo order queueSize (no share of its own, as before).
   */
  maxQueuedPerClient?: number;
}

interface Waiter {
  grant(): void;
}

export class ConcurrencyGate implements Gate {
  private readonly maxConcurrent: number;
  private readonly queueSize: number;
  private readonly queueTimeoutMs: number;
  private readonly maxQueuedPerClient: number;
  private readonly clock: Clock;
  private readonly retryAfterMs: number;
  private active = 0;
  private readonly queue: FairQueue<Waiter>;
  private readonly waitTimes = new ClientWaits();

  constructor(options: ConcurrencyGateOptions) {
    const { maxConcurrent, queueSize, queueTimeoutMs, clock, retryAfterMs = 1000, order = 'fair' } = options;
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 0)) {
      throw new RangeError(`maxConcurrent must be a non-negative integer, got ${maxConcurrent}`);
    }
    if (!(Number.isInteger(queueSize) && queueSize >= 0)) {
      throw new RangeError(`queueSize must be a non-negative integer, got ${queueSize}`);
    }
    if (!(queueTimeoutMs >= 0)) {
      throw new RangeError(`queueTimeoutMs must be a non-negative number, got ${queueTimeoutMs}`);
    }
    if (order !== 'fair' && order !== 'fifo') throw new RangeError(`order must be 'fair' or 'fifo', got ${order}`);
    const { maxQueuedPerClient = order === 'fair' ? Math.max(1, Math.ceil(queueSize / 2)) : queueSize } = options;
    if (!(Number.isInteger(maxQueuedPerClient) && maxQueuedPerClient >= 0)) {
      throw new RangeError(`maxQueuedPerClient must be a non-negative integer, got ${maxQueuedPerClient}`);
    }
    this.maxConcurrent = maxConcurrent;
    this.queueSize = queueSize;
    this.queueTimeoutMs = queueTimeoutMs;
    this.maxQueuedPerClient = maxQueuedPerClient;
    this.clock = clock;
    this.retryAfterMs = retryAfterMs;
    this.queue = new FairQueue(order);
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.queue.size;
  }

  /** Requests waiting now by client key (for /stats). */
  queuedBy(): ReadonlyMap<string, number> {
    return this.queue.queuedBy();
  }

  /** Per client key seen recently: admissions and wait percentiles over its last 256 (for /stats). */
  waits(): Record<string, WaitSummary> {
    return this.waitTimes.snapshot();
  }

  /** A client's virtual counter while it has something queued or in flight; else undefined. */
  counterOf(clientKey: string): number | undefined {
    return this.queue.counterOf(clientKey);
  }

  /**
   * Service `client` received (tokens; negative = refund): moves its virtual counter by
   * tokens / weight. Does nothing for a client with nothing queued or in flight.
   */
  charge(clientKey: string, tokens: number): void {
    this.queue.charge(clientKey, tokens);
  }

  /**
   * Resolves with a Release once the request may go upstream. Rejects with GateRejected
   * when the queue (or this client's share of it) is full or the wait exceeds
   * queueTimeoutMs, with the signal's reason when the signal aborts first (the client
   * left; the request then leaves the queue), and with a RangeError for a weight ≤ 0.
   */
  acquire(client: GateClient, signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!(Number.isFinite(client.weight) && client.weight > 0)) {
      return Promise.reject(new RangeError(`weight must be a positive number, got ${client.weight}`));
    }
    const { key } = client;
    // A release hands a freed slot to a waiter synchronously, so a free slot here means
    // nobody is waiting: a newcomer never overtakes the queue.
    if (this.hasFreeSlot()) {
      this.queue.admitNow(client);
      this.waitTimes.record(key, 0);
      return Promise.resolve(this.take(key));
    }
    if (this.queue.size >= this.queueSize) {
      return Promise.reject(new GateRejected('queue_full', this.retryAfterMs));
    }
    if (this.queue.queuedOf(key) >= this.maxQueuedPerClient) {
      return Promise.reject(new GateRejected('queue_full', this.retryAfterMs, true));
    }
    const since = this.clock.now();
    return new Promise<Release>((resolve, reject) => {
      const timer = new AbortController();
      const leave = (): void => {
        timer.abort();
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          leave();
          this.waitTimes.record(key, this.clock.now() - since);
          resolve(this.take(key));
        },
      };
      const entry: QueuedEntry = this.queue.enqueue(client, waiter);
      const onAbort = (): void => {
        if (!this.queue.remove(entry)) return;
        leave();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.queueTimeoutMs !== Infinity) {
        this.clock.sleep(this.queueTimeoutMs, timer.signal).then(
          () => {
            // Granted or aborted meanwhile: that outcome stands.
            if (!this.queue.remove(entry)) return;
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

  /** Occupies a slot for `key` and returns its idempotent release. */
  private take(key: string): Release {
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.queue.finish(key);
      this.pump();
    };
  }

  /** Hands free slots to the waiters the queue picks. */
  private pump(): void {
    while (this.hasFreeSlot()) {
      const waiter = this.queue.dequeue();
      if (waiter === undefined) return;
      waiter.grant();
    }
  }
}
