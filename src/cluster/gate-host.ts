/**
 * The primary's concurrency gate for every worker: MAX_CONCURRENT_REQUESTS is a cap that
 * protects the upstream, so N workers must share one, not hold one each (N× the cap), and
 * the fair queue must compare every client, not only those that happen to share a worker.
 * One ConcurrencyGate on the primary's clock (QUEUE_TIMEOUT runs here) answers the workers'
 * RemoteGate on channel 'gate' (gate-protocol.ts).
 *
 * What a worker held goes when it exits: its slots are released and its places in the
 * queue taken out, so a crash never shrinks the cap. Worker ids are never reused
 * (node:cluster counts up), so anything a worker says after its exit is ignored.
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { ConcurrencyGate, GateRejected, type Release } from '../resilience/concurrency-gate.js';
import { GATE_CHANNEL, type GateAnswer, type GateCall } from './gate-protocol.js';
import type { ChannelMessage, WorkersLink } from './link.js';

/** One request of a worker, queued or holding a slot. */
interface Hold {
  readonly abort: AbortController;
  release: Release | null;
  /** The worker let go (or exited) before the grant was made: give the slot back when it is. */
  dropped: boolean;
}

export interface GateHostOptions {
  /** Told of a message the host could not act on (malformed: a bug on the worker's side). */
  readonly onError?: (err: unknown, workerId: number) => void;
}

export class GateHost {
  readonly gate: ConcurrencyGate;
  private readonly holds = new Map<number, Map<number, Hold>>();
  private readonly gone = new Set<number>();

  constructor(
    private readonly link: WorkersLink,
    config: Pick<Config, 'maxConcurrentRequests' | 'queueSize' | 'queueTimeoutMs' | 'queueOrder'>,
    clock: Clock,
    private readonly options: GateHostOptions = {},
  ) {
    this.gate = new ConcurrencyGate({ maxConcurrent: config.maxConcurrentRequests, queueSize: config.queueSize, queueTimeoutMs: config.queueTimeoutMs, order: config.queueOrder, clock });
    link.on(GATE_CHANNEL, (workerId, msg) => this.call(workerId, msg as unknown as GateCall));
  }

  /** Requests of a worker queued or holding a slot now. */
  heldBy(workerId: number): number {
    return this.holds.get(workerId)?.size ?? 0;
  }

  private call(workerId: number, msg: GateCall): void {
    if (this.gone.has(workerId)) return;
    try {
      if (msg.op === 'acquire') return this.acquire(workerId, msg.id, msg.key, msg.weight);
      if (msg.op === 'release') return this.drop(this.holds.get(workerId), msg.id);
      if (msg.op === 'charge') return this.gate.charge(msg.key, msg.tokens);
      throw new TypeError(`unknown gate operation ${String((msg as { op: unknown }).op)}`);
    } catch (err) {
      this.options.onError?.(err, workerId);
    }
  }

  private acquire(workerId: number, id: number, key: string, weight: number): void {
    let mine = this.holds.get(workerId);
    if (mine === undefined) this.holds.set(workerId, (mine = new Map()));
    const hold: Hold = { abort: new AbortController(), release: null, dropped: false };
    mine.set(id, hold);
    this.gate.acquire({ key, weight }, hold.abort.signal).then(
      (release) => {
        if (hold.dropped) return release(); // it gave up (or its worker died) while the grant was being made
        hold.release = release;
        this.answer(workerId, { ch: GATE_CHANNEL, op: 'granted', id });
      },
      (err: unknown) => {
        if (hold.dropped) return; // the abort we caused: nobody waits for an answer
        mine.delete(id);
        const rejected = err instanceof GateRejected;
        this.answer(workerId, {
          ch: GATE_CHANNEL,
          op: 'rejected',
          id,
          reason: rejected ? err.reason : 'error',
          retryAfterMs: rejected ? err.retryAfterMs : 0,
          perClient: rejected && err.perClient,
          ...(rejected ? {} : { message: String((err as Error | undefined)?.message ?? err) }),
        });
      },
    );
  }

  /** The worker let go of `id`: its slot back, or its place out of the queue. */
  private drop(mine: Map<number, Hold> | undefined, id: number): void {
    const hold = mine?.get(id);
    if (hold === undefined) return; // answered with a refusal, or let go twice
    mine!.delete(id);
    hold.dropped = true;
    if (hold.release !== null) hold.release();
    else hold.abort.abort(); // still queued: out; or granted a moment ago: released when the grant lands
  }

  /** The worker exited (LimitsHost hears it from the link once for both hosts). */
  exited(workerId: number): void {
    this.gone.add(workerId);
    const mine = this.holds.get(workerId);
    if (mine === undefined) return;
    for (const id of [...mine.keys()]) this.drop(mine, id);
    this.holds.delete(workerId);
  }

  private answer(workerId: number, msg: GateAnswer): void {
    this.link.sendTo(workerId, msg as unknown as ChannelMessage);
  }
}
