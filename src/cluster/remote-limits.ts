/**
 * A worker's limit store when WORKERS > 1: every client's limits live in the primary
 * (LimitsHost), one table for all workers, so a client's rpm, tpm and max_parallel hold
 * across workers instead of being multiplied by their number. `enter` and `reserve` are a
 * round trip over IPC on channel 'limits' (limits-protocol.ts); `leave` is one message.
 * Except in the common case, a client whose one limit is its request rate: its requests are
 * leased from the primary's bucket in batches that grow while it is busy, and its enters
 * and leaves cost no message (request-leases.ts).
 *
 * When the primary does not answer within `timeoutMs` (default 1 s; a round trip takes about
 * 0.1 ms, so a second of silence means it is stuck or gone), the call FAILS OPEN: the request
 * is admitted, or its estimate taken as reserved, without rate-limit headers, and
 * `failedOpen` counts it. Why open: these limits are quotas between clients, not the
 * upstream's protection (that is the gate's cap, which fails closed: remote-gate.ts), and a
 * 429 would tell a client it spent its quota when it did not, and a 503 would fail every
 * request for a fault that is ours. Envoy's global rate limit filter makes the same choice
 * by default (`failure_mode_deny: false`). A primary that is gone takes its workers down
 * soon after anyway; `close()` (the link lost) answers at once from then on.
 *
 * An answer that comes after its call gave up is dropped: the primary is the authority on
 * tickets, and this ticket's `leave` frees whatever it holds there (limits-protocol.ts).
 */
import type { Clock } from '../clock.js';
import type { ClientPolicy } from '../resilience/client-limits.js';
import type { Entered, LimitStore, LimitTicket, Reserved } from '../resilience/limit-store.js';
import type { ChannelMessage, PrimaryLink } from './link.js';
import { LIMITS_CHANNEL, type LimitsAnswer, type LimitsCall } from './limits-protocol.js';
import { PendingCalls } from './pending-calls.js';
import { type Credit, type Grant, RequestLeases } from './request-leases.js';

export interface RemoteLimitsOptions {
  /** Milliseconds to wait for the primary's answer before failing open; default 1000. */
  readonly timeoutMs?: number;
  /** Worker processes sharing the primary's limits (a lease is at most capacity / (4 × workers)); default 1. */
  readonly workers?: number;
}

/** The id of a ticket the primary never heard of (its client has no limit). */
const UNLIMITED = -1;
/** The id of a ticket admitted from a lease: the primary holds nothing for it. */
const LEASED = -2;

class RemoteTicket implements LimitTicket {
  /** Tokens the primary reserved for it (0: none, or not known). */
  reserved = 0;
  left = false;

  constructor(
    /** Its enter's id: the primary holds it under this number. */
    public id: number,
    readonly key: string,
    readonly policy: ClientPolicy,
  ) {}
}

type Call =
  | { readonly kind: 'enter'; readonly ticket: RemoteTicket; readonly resolve: (e: Entered) => void }
  | { readonly kind: 'reserve'; readonly ticket: RemoteTicket; readonly estimate: number; readonly resolve: (r: Reserved) => void }
  | { readonly kind: 'lease'; readonly credit: Credit };

export class RemoteLimits implements LimitStore {
  /** Calls answered without the primary (it was silent past the timeout, or the link is gone). */
  failedOpen = 0;
  private readonly pending: PendingCalls<Call>;
  private closed = false;
  /** Open tickets by client key, and the tokens they hold reserved: this worker's part of /stats. */
  private readonly openBy = new Map<string, number>();
  private reservedTokens = 0;
  private reservations = 0;
  private readonly leases: RequestLeases;

  constructor(
    private readonly link: PrimaryLink,
    clock: Clock,
    options: RemoteLimitsOptions = {},
  ) {
    const { timeoutMs = 1000, workers = 1 } = options;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
    if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`workers must be a positive integer, got ${workers}`);
    this.pending = new PendingCalls(clock, timeoutMs, (_id, call) => this.failOpen(call));
    this.leases = new RequestLeases(
      clock,
      workers,
      (credit) => {
        if (this.closed) return this.leases.failOpen(credit);
        const id = this.pending.open({ kind: 'lease', credit });
        this.send({ ch: LIMITS_CHANNEL, op: 'lease', id, key: credit.key, policy: credit.policy, want: credit.asked });
      },
      (key, lease, n) => {
        if (!this.closed) this.send({ ch: LIMITS_CHANNEL, op: 'unlease', key, lease, n });
      },
    );
    link.on(LIMITS_CHANNEL, (msg) => this.answered(msg as unknown as LimitsAnswer));
  }

  /** Clients with a request open in this worker (the primary's LimitsHost has the cluster's count). */
  get size(): number {
    return this.openBy.size;
  }

  /** Tokens reserved for this worker's open requests; the workers' sum is the primary's figure. */
  outstanding(): number {
    return this.reservedTokens;
  }

  enter(key: string, policy: ClientPolicy): Promise<Entered> {
    // a client that nothing limits has nothing to ask the primary: no message either way
    if (policy.requests === null && policy.tokensPerMinute === null && policy.maxParallel === null) {
      const ticket = new RemoteTicket(UNLIMITED, key, policy);
      this.opened(ticket);
      return Promise.resolve({ ok: true, ticket, requests: null, tokens: null });
    }
    if (!this.closed && RequestLeases.leasable(policy)) return this.leases.take(key, policy).then((g) => this.granted(key, policy, g));
    return new Promise((resolve) => {
      const ticket = new RemoteTicket(0, key, policy);
      if (this.closed) return this.failOpen({ kind: 'enter', ticket, resolve });
      const id = this.pending.open({ kind: 'enter', ticket, resolve });
      ticket.id = id;
      this.send({ ch: LIMITS_CHANNEL, op: 'enter', id, key, policy });
    });
  }

  reserve(ticket: LimitTicket, estimate: number): Promise<Reserved> {
    const t = own(ticket);
    // no token limit: the primary would answer null (nothing reserved) a round trip later
    if (t.left || t.policy.tokensPerMinute === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const call: Call = { kind: 'reserve', ticket: t, estimate, resolve };
      if (this.closed) return this.failOpen(call);
      const id = this.pending.open(call);
      this.send({ ch: LIMITS_CHANNEL, op: 'reserve', id, t: t.id, estimate });
    });
  }

  leave(ticket: LimitTicket, actualTokens: number): void {
    const t = own(ticket);
    if (t.left) return;
    t.left = true;
    if (t.reserved > 0) {
      this.reservations--;
      this.reservedTokens = this.reservations === 0 ? 0 : this.reservedTokens - t.reserved; // no float dust when nothing is open
      t.reserved = 0;
    }
    const n = this.openBy.get(t.key) ?? 1;
    if (n <= 1) this.openBy.delete(t.key);
    else this.openBy.set(t.key, n - 1);
    if (!this.closed && t.id !== UNLIMITED && t.id !== LEASED) this.send({ ch: LIMITS_CHANNEL, op: 'leave', t: t.id, actual: Number.isFinite(actualTokens) ? actualTokens : null });
  }

  /** The link to the primary is gone: every call waiting fails open now, and every later one at once. */
  close(): void {
    this.closed = true;
    this.leases.close();
    for (const [, call] of this.pending.drain()) this.failOpen(call);
  }

  /** A leased enter's outcome as the request path sees it. */
  private granted(key: string, policy: ClientPolicy, g: Grant | null): Entered {
    if (g !== null && !g.ok) return { ok: false, reason: 'requests', retryAfterMs: g.retryAfterMs, requests: g.requests, tokens: null };
    if (g === null) this.failedOpen++;
    const ticket = new RemoteTicket(LEASED, key, policy);
    this.opened(ticket);
    return { ok: true, ticket, requests: g === null ? null : g.requests, tokens: null };
  }

  private send(msg: LimitsCall): void {
    this.link.send(msg as unknown as ChannelMessage);
  }

  private answered(msg: LimitsAnswer): void {
    const call = this.pending.take(msg.id);
    if (call === undefined) {
      // late: this call already failed open; requests lent meanwhile go back unspent
      if (msg.op === 'leased' && msg.n > 0 && !this.closed) this.send({ ch: LIMITS_CHANNEL, op: 'unlease', key: msg.key, lease: msg.lease, n: msg.n });
      return;
    }
    if (msg.op === 'failed') return this.failOpen(call);
    if (call.kind === 'lease' && msg.op === 'leased') return this.leases.answered(call.credit, msg);
    if (call.kind === 'enter' && msg.op === 'entered') {
      if (!msg.ok) return call.resolve({ ok: false, reason: msg.reason!, retryAfterMs: msg.retryAfterMs!, requests: msg.requests, tokens: msg.tokens });
      this.opened(call.ticket);
      return call.resolve({ ok: true, ticket: call.ticket, requests: msg.requests, tokens: msg.tokens });
    }
    if (call.kind === 'reserve' && msg.op === 'reserved') {
      const r = msg.result;
      if (r === null) return call.resolve(null);
      if (!r.ok) return call.resolve({ ok: false, retryAfterMs: r.retryAfterMs!, tokens: r.tokens });
      const reserved = r.reserved ?? call.estimate; // the ledger clamps an estimate above its capacity
      if (!call.ticket.left && reserved > 0) {
        call.ticket.reserved = reserved;
        this.reservations++;
        this.reservedTokens += reserved;
      }
      return call.resolve({ ok: true, tokens: r.tokens });
    }
    this.failOpen(call); // an answer of the wrong kind: a bug on the other side, not the client's fault
  }

  private failOpen(call: Call): void {
    if (call.kind === 'lease') return this.leases.failOpen(call.credit); // each waiting enter counts as it goes through
    this.failedOpen++;
    if (call.kind === 'reserve') return call.resolve(null);
    this.opened(call.ticket);
    call.resolve({ ok: true, ticket: call.ticket, requests: null, tokens: null });
  }

  private opened(ticket: RemoteTicket): void {
    this.openBy.set(ticket.key, (this.openBy.get(ticket.key) ?? 0) + 1);
  }
}

function own(ticket: LimitTicket): RemoteTicket {
  if (!(ticket instanceof RemoteTicket)) throw new TypeError('a ticket of another limit store');
  return ticket;
}
