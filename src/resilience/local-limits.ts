/**
 * The limit store of a single process (WORKERS=1): ClientLimits on this process's clock,
 * behind the LimitStore interface. It costs one already-resolved promise per `enter` and
 * `reserve` over calling ClientLimits directly (measured in the commit that introduced
 * it: well under a microsecond a request).
 */
import type { Clock } from '../clock.js';
import { ClientLimits, ClientTicket, type ClientPolicy } from './client-limits.js';
import type { Entered, LimitStore, LimitTicket, Reserved } from './limit-store.js';

export class LocalLimits implements LimitStore {
  constructor(
    private readonly clock: Clock,
    /** The table itself (exposed for tests and /stats). */
    readonly limits: ClientLimits = new ClientLimits(),
  ) {}

  get size(): number {
    return this.limits.size;
  }

  outstanding(): number {
    return this.limits.outstanding();
  }

  enter(key: string, policy: ClientPolicy): Promise<Entered> {
    return Promise.resolve(this.enterNow(key, policy));
  }

  reserve(ticket: LimitTicket, estimate: number): Promise<Reserved> {
    return Promise.resolve(this.limits.reserve(own(ticket), estimate, this.clock.now()));
  }

  leave(ticket: LimitTicket, actualTokens: number): void {
    this.limits.leave(own(ticket), actualTokens, this.clock.now());
  }

  /** `enter` without the promise (the primary's host answers from here). */
  enterNow(key: string, policy: ClientPolicy): Entered {
    const now = this.clock.now();
    const e = this.limits.enter(key, policy, now);
    return e.ok ? { ok: true, ticket: e.client, requests: e.requests, tokens: this.limits.tokens(e.client, now) } : e;
  }
}

function own(ticket: LimitTicket): ClientTicket {
  if (!(ticket instanceof ClientTicket)) throw new TypeError('a ticket of another limit store');
  return ticket;
}
