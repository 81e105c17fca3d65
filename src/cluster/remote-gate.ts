/**
 * A worker's concurrency gate when WORKERS > 1: a handle on the primary's one gate and fair
 * queue (GateHost), over IPC on channel 'gate' (gate-protocol.ts). Why one gate in the
 * primary rather than a share of MAX_CONCURRENT_REQUESTS per worker: connections, not
 * requests, are spread over the workers (a keep-alive client stays on one), so with shares a
 * worker's queue would wait while another's slots sit idle; a cap below the number of
 * workers could not be shared at all; and the fair queue could only compare clients that
 * happen to share a worker. The price is one round trip per request, about 0.1 ms over
 * node's IPC (scripts/bench-shared-limits.mjs), against an LLM answer's hundreds of ms.
 *
 * The primary runs QUEUE_TIMEOUT on its clock. This side waits at most QUEUE_TIMEOUT plus
 * `graceMs` (default 1 s) for an answer; past it, or once the link is gone (`close()`), it
 * FAILS CLOSED: GateRejected 'queue_timeout' (503 with Retry-After). The cap protects the
 * upstream, and a worker that cannot reach the primary cannot know how many requests are in
 * flight: letting everything through is exactly the overload the cap exists to prevent.
 *
 * Its figures are this worker's part (its requests waiting and holding a slot, the waits
 * they saw): summed over the workers they are the primary's slots in use, and its queue
 * depth plus the requests whose answer is on its way (a round trip). The exact depth, for
 * the metric, is the primary's own gate (`LimitsHost.gate.queued`).
 */
import type { Clock } from '../clock.js';
import { ClientWaits, type WaitSummary } from '../observe/client-waits.js';
import { GateRejected } from '../resilience/concurrency-gate.js';
import type { GateClient } from '../resilience/fair-queue.js';
import type { Gate, Release } from '../resilience/gate.js';
import { GATE_CHANNEL, type GateAnswer, type GateCall } from './gate-protocol.js';
import type { ChannelMessage, PrimaryLink } from './link.js';
import { PendingCalls } from './pending-calls.js';

export interface RemoteGateOptions {
  /** QUEUE_TIMEOUT in ms (Infinity: no limit), as the primary applies it. */
  readonly queueTimeoutMs: number;
  /** Beyond QUEUE_TIMEOUT, how long to wait for the primary's answer; default 1000 ms. */
  readonly graceMs?: number;
  /** The Retry-After of a refusal made here; default 1000 ms. */
  readonly retryAfterMs?: number;
}

interface Waiting {
  readonly key: string;
  readonly since: number;
  readonly resolve: (release: Release) => void;
  readonly reject: (err: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

export class RemoteGate implements Gate {
  private readonly pending: PendingCalls<Waiting>;
  private readonly retryAfterMs: number;
  private readonly waiting = new Map<string, number>();
  private readonly waitTimes = new ClientWaits();
  private active = 0;
  private closed = false;

  constructor(
    private readonly link: PrimaryLink,
    private readonly clock: Clock,
    options: RemoteGateOptions,
  ) {
    const { queueTimeoutMs, graceMs = 1000, retryAfterMs = 1000 } = options;
    if (!(queueTimeoutMs >= 0)) throw new RangeError(`queueTimeoutMs must be a non-negative number, got ${queueTimeoutMs}`);
    if (!(graceMs > 0)) throw new RangeError(`graceMs must be a positive number, got ${graceMs}`);
    this.retryAfterMs = retryAfterMs;
    this.pending = new PendingCalls(clock, queueTimeoutMs + graceMs, (id, w) => this.giveUp(id, w, new GateRejected('queue_timeout', this.retryAfterMs)));
    link.on(GATE_CHANNEL, (msg) => this.answered(msg as unknown as GateAnswer));
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.pending.size;
  }

  queuedBy(): ReadonlyMap<string, number> {
    return this.waiting;
  }

  waits(): Record<string, WaitSummary> {
    return this.waitTimes.snapshot();
  }

  charge(clientKey: string, tokens: number): void {
    if (!this.closed && Number.isFinite(tokens)) this.send({ ch: GATE_CHANNEL, op: 'charge', key: clientKey, tokens });
  }

  acquire(client: GateClient, signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!(Number.isFinite(client.weight) && client.weight > 0)) return Promise.reject(new RangeError(`weight must be a positive number, got ${client.weight}`));
    if (this.closed) return Promise.reject(new GateRejected('queue_timeout', this.retryAfterMs));
    const { key, weight } = client;
    return new Promise<Release>((resolve, reject) => {
      const onAbort = (): void => {
        const w = this.pending.take(id);
        if (w !== undefined) this.giveUp(id, w, signal!.reason);
      };
      const id = this.pending.open({ key, since: this.clock.now(), resolve, reject, signal, onAbort });
      this.waiting.set(key, (this.waiting.get(key) ?? 0) + 1);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.send({ ch: GATE_CHANNEL, op: 'acquire', id, key, weight });
    });
  }

  /** The link to the primary is gone: every request waiting is refused now, and every later one at once. */
  close(): void {
    this.closed = true;
    for (const [id, w] of this.pending.drain()) this.giveUp(id, w, new GateRejected('queue_timeout', this.retryAfterMs));
  }

  private answered(msg: GateAnswer): void {
    const w = this.pending.take(msg.id);
    if (w === undefined) return; // it gave up: the primary gives the slot back on our release
    this.settled(w);
    if (msg.op === 'granted') {
      this.waitTimes.record(w.key, this.clock.now() - w.since);
      this.active++;
      let released = false;
      return w.resolve(() => {
        if (released) return;
        released = true;
        this.active--;
        if (!this.closed) this.send({ ch: GATE_CHANNEL, op: 'release', id: msg.id });
      });
    }
    w.reject(msg.reason === 'error' ? new Error(msg.message ?? 'the primary could not queue the request') : new GateRejected(msg.reason, msg.retryAfterMs, msg.perClient));
  }

  /** The request stops waiting here (its client left, or no answer in time): the primary is told to let it go. */
  private giveUp(id: number, w: Waiting, reason: unknown): void {
    this.settled(w);
    if (!this.closed) this.send({ ch: GATE_CHANNEL, op: 'release', id });
    w.reject(reason);
  }

  /** No longer waiting: out of the counts, its abort listener removed. */
  private settled(w: Waiting): void {
    w.signal?.removeEventListener('abort', w.onAbort);
    const n = this.waiting.get(w.key) ?? 1;
    if (n <= 1) this.waiting.delete(w.key);
    else this.waiting.set(w.key, n - 1);
  }

  private send(msg: GateCall): void {
    this.link.send(msg as unknown as ChannelMessage);
  }
}
