/**
 * The primary's side of the shared limits: one ClientLimits for every worker, on the
 * primary's clock, answering the workers' RemoteLimits on channel 'limits'
 * (limits-protocol.ts), and, when MAX_CONCURRENT_REQUESTS caps the upstream, the one
 * concurrency gate and fair queue (gate-host.ts) on channel 'gate'. Pure state over the
 * link: no sockets, no timers of its own.
 *
 * Policies travel with each `enter`: a worker that reloaded its keys file (SIGHUP) sends
 * the new limits with the client's next request, and ClientLimits adopts them keeping what
 * the client used. The primary needs no copy of the keys, and there is no moment where the
 * primary and a worker disagree on which file is in force that could lose a reload. Equal
 * policies are made one object again here (ClientLimits tells a change by identity).
 *
 * Requests lent to a worker (`lease`, limits-protocol.ts) are not tickets: nothing is held
 * for them here but the lend in the client's bucket, which expires by itself LEASE_TTL_MS
 * after the grant. A worker that exits with some unspent loses them: they stay counted as
 * spent (never more than the limit, at most a second early).
 *
 * A worker that exits loses its requests: everything it held is freed at once, its places
 * in flight and its concurrency slots, and its token reservations are settled to their
 * estimate (worker ids are never reused: node:cluster counts up, so what a worker says after
 * its exit is ignored). Why the estimate and not a refund: the answers may have been generated (a
 * stream's upstream may even finish it), nobody counted them, and a refund would make a
 * request that crashes a worker a free one; the estimate is what the client was told the
 * request could cost, and it slides out of the window within a minute.
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { ClientLimits, type ClientPolicy, type ClientTicket } from '../resilience/client-limits.js';
import type { ConcurrencyGate } from '../resilience/concurrency-gate.js';
import { GateHost } from './gate-host.js';
import type { ChannelMessage, WorkersLink } from './link.js';
import { LEASE_TTL_MS, LIMITS_CHANNEL, MAX_LEASE, type LimitsAnswer, type LimitsCall } from './limits-protocol.js';

/** Distinct policies kept for identity; past it the table starts again (a change of identity only costs an adopt). */
const MAX_POLICIES = 1024;

export interface LimitsHostOptions {
  /** Told of a call the host could not answer (a malformed message, a bug); the worker then fails open. */
  readonly onError?: (err: unknown, workerId: number) => void;
}

export class LimitsHost {
  /** The gate and its fair queue, when MAX_CONCURRENT_REQUESTS > 0 (its depth is the cluster's queue depth). */
  readonly gate: ConcurrencyGate | null;
  private readonly gateHost: GateHost | null;
  private readonly tickets = new Map<number, Map<number, ClientTicket>>();
  private readonly gone = new Set<number>();
  private policies = new Map<string, ClientPolicy>();
  /** The last lease's number: unique over all workers, so a bucket can tell its lends apart. */
  private leaseSeq = 0;

  constructor(
    private readonly link: WorkersLink,
    config: Pick<Config, 'maxConcurrentRequests' | 'queueSize' | 'queueTimeoutMs' | 'queueOrder'>,
    private readonly clock: Clock,
    /** The table itself; exposed for /stats (clients tracked, tokens reserved). */
    readonly limits: ClientLimits = new ClientLimits(),
    private readonly options: LimitsHostOptions = {},
  ) {
    this.gateHost = config.maxConcurrentRequests > 0 ? new GateHost(link, config, clock, options) : null;
    this.gate = this.gateHost?.gate ?? null;
    link.on(LIMITS_CHANNEL, (workerId, msg) => this.call(workerId, msg as unknown as LimitsCall));
    link.onExit((workerId) => this.exited(workerId));
  }

  /** Requests of a worker in flight on the limits now (for tests and /stats). */
  heldBy(workerId: number): number {
    return this.tickets.get(workerId)?.size ?? 0;
  }

  private call(workerId: number, msg: LimitsCall): void {
    if (this.gone.has(workerId)) return; // said after its exit: nothing of it may be held again
    try {
      const now = this.clock.now();
      if (msg.op === 'enter') {
        const e = this.limits.enter(msg.key, this.intern(msg.policy), now);
        if (e.ok) this.held(workerId).set(msg.id, e.client);
        const tokens = e.ok ? this.limits.tokens(e.client, now) : e.tokens;
        return this.answer(workerId, e.ok ? { ch: LIMITS_CHANNEL, op: 'entered', id: msg.id, ok: true, requests: e.requests, tokens } : { ch: LIMITS_CHANNEL, op: 'entered', id: msg.id, ok: false, reason: e.reason, retryAfterMs: e.retryAfterMs, requests: e.requests, tokens });
      }
      if (msg.op === 'reserve') {
        const ticket = this.tickets.get(workerId)?.get(msg.t);
        const r = ticket === undefined ? null : this.limits.reserve(ticket, msg.estimate, now);
        const result = r === null ? null : r.ok ? { ok: true, tokens: r.tokens, reserved: ticket!.reservation?.tokens ?? 0 } : { ok: false, retryAfterMs: r.retryAfterMs, tokens: r.tokens };
        return this.answer(workerId, { ch: LIMITS_CHANNEL, op: 'reserved', id: msg.id, result });
      }
      if (msg.op === 'leave') {
        const mine = this.tickets.get(workerId);
        const ticket = mine?.get(msg.t);
        if (ticket === undefined) return; // never admitted (refused, or the worker failed open)
        mine!.delete(msg.t);
        this.limits.leave(ticket, typeof msg.actual === 'number' ? msg.actual : NaN, now);
        return;
      }
      if (msg.op === 'lease') {
        if (!(Number.isInteger(msg.want) && msg.want >= 1 && msg.want <= MAX_LEASE)) throw new TypeError(`not a lease size: ${String(msg.want)}`);
        const lease = ++this.leaseSeq;
        const r = this.limits.lendRequests(msg.key, this.intern(msg.policy), msg.want, LEASE_TTL_MS, lease, now);
        return this.answer(workerId, { ch: LIMITS_CHANNEL, op: 'leased', id: msg.id, key: msg.key, lease, ...r });
      }
      if (msg.op === 'unlease') {
        if (typeof msg.n === 'number' && msg.n > 0) this.limits.returnRequests(msg.key, msg.lease, msg.n, now);
        return;
      }
      throw new TypeError(`unknown limits operation ${String((msg as { op: unknown }).op)}`);
    } catch (err) {
      this.options.onError?.(err, workerId);
      const id = (msg as { id?: unknown }).id;
      if (typeof id === 'number') this.answer(workerId, { ch: LIMITS_CHANNEL, op: 'failed', id });
    }
  }

  private exited(workerId: number): void {
    this.gateHost?.exited(workerId);
    this.gone.add(workerId);
    const mine = this.tickets.get(workerId);
    if (mine === undefined) return;
    this.tickets.delete(workerId);
    const now = this.clock.now();
    for (const ticket of mine.values()) this.limits.leave(ticket, NaN, now); // NaN: unknown usage, the estimate stands
  }

  private held(workerId: number): Map<number, ClientTicket> {
    let mine = this.tickets.get(workerId);
    if (mine === undefined) this.tickets.set(workerId, (mine = new Map()));
    return mine;
  }

  private answer(workerId: number, msg: LimitsAnswer): void {
    this.link.sendTo(workerId, msg as unknown as ChannelMessage);
  }

  /** The one object for an equal policy: a policy arrives as a fresh copy with every message. */
  private intern(p: ClientPolicy): ClientPolicy {
    const r = p.requests;
    const valid =
      (r === null || (typeof r === 'object' && r.capacity > 0 && r.windowSec > 0)) &&
      (p.tokensPerMinute === null || p.tokensPerMinute >= 0) &&
      (p.maxParallel === null || p.maxParallel >= 0) &&
      p.weight > 0;
    if (!valid) throw new TypeError(`not a client policy: ${JSON.stringify(p)}`);
    const id = `${r?.capacity}/${r?.windowSec}/${p.tokensPerMinute}/${p.maxParallel}/${p.weight}`;
    let known = this.policies.get(id);
    if (known === undefined) {
      if (this.policies.size >= MAX_POLICIES) this.policies = new Map();
      known = Object.freeze({ requests: r === null ? null : Object.freeze({ capacity: r.capacity, windowSec: r.windowSec }), tokensPerMinute: p.tokensPerMinute, maxParallel: p.maxParallel, weight: p.weight });
      this.policies.set(id, known);
    }
    return known;
  }
}
