/**
 * The waiting room of the concurrency gate: who goes next when a slot frees. In 'fair'
 * order it is the Virtual Token Counter (VTC) of Sheng et al., "Fairness in Serving Large
 * Language Models" (OSDI '24): each client has a counter of the service it received divided
 * by its weight, and the waiting client with the smallest counter goes first (ties: the
 * client whose oldest waiting request came first; within one client, arrival order).
 * 'fifo' is plain arrival order across everyone. Pure state: no promises, no clock.
 *
 * The lift. A client that starts waiting with nothing already queued (new, idle, or with
 * requests in flight but none waiting) has its counter raised to at least the smallest
 * counter among the clients waiting now, or, when nobody waits, to the largest counter any
 * client had at its admission (`virtualTime`). Without it a client that sat out would come
 * back with credit banked and take every slot until it caught up. VTC lifts on "not in the
 * queue", whatever is in flight, and so does this: a client whose requests run for minutes
 * while others are served would otherwise bank the same credit.
 *
 * The bound (VTC's Theorem, for this gate). Let U be the largest cost ÷ weight of any one
 * request, and assume each admitted request is charged its cost before the next admission.
 * Two invariants, by induction over enqueue, dequeue, remove and charge (the gate admits
 * without queueing only when nobody waits):
 *   (1) every waiting client's counter is ≥ virtualTime: a joiner is lifted to at least
 *       min(waiting) or, with nobody waiting, virtualTime; an admission raises
 *       virtualTime only to the counter of the client it admits, the smallest waiting one;
 *   (2) every counter is ≤ virtualTime + U: a counter rises by a charge right after an
 *       admission at which it was ≤ virtualTime, or by a lift to a value that is ≤ it.
 * So the waiting clients' counters all lie in [virtualTime, virtualTime + U].
 * A client that stays backlogged (something queued) is never lifted, so its counter moves
 * exactly by its service ÷ weight. For two clients f, g backlogged through [t1, t2]:
 *   |W_f / w_f − W_g / w_g| = |(c_f − c_g)(t2) − (c_f − c_g)(t1)| ≤ 2U.
 * Refunds (negative charges) can push a counter below the others; that client is then
 * served first until it catches up, which is the point of the refund.
 *
 * How the proxy charges (src/proxy/handler.ts): a request is charged what it was served
 * (prompt + completion tokens, settled from the answer's usage) when it ends, before its
 * slot is released, not its estimate at admission: an estimate is mostly the `max_tokens`
 * it asked for, and refunding most of it at the end left a flooding client's counter below
 * a newcomer's, so the newcomer waited behind the whole flood. Charged at the end, the
 * counters above run behind by at most what is in flight (MAX_CONCURRENT_REQUESTS requests),
 * and a newcomer lifted to a flooding client's counter passes it at the flood's next
 * completion: one slot's turn.
 *
 * Memory: a client is held only while it has something queued or in flight; a client
 * that goes idle is forgotten (it would be lifted on return anyway), and when nobody is
 * held at all virtualTime starts again from 0.
 */

export type QueueOrder = 'fair' | 'fifo';

export interface GateClient {
  /** Who the request is from (an API key id, an address). */
  readonly key: string;
  /** Its share of the upstream relative to others; > 0, default-equal clients use 1. */
  readonly weight: number;
}

interface Client {
  readonly key: string;
  weight: number;
  /** Service received ÷ weight (VTC's virtual token counter). */
  counter: number;
  /** Its own waiting requests, oldest first. */
  readonly waiting: Set<Entry<unknown>>;
  inFlight: number;
}

interface Entry<T> {
  readonly seq: number;
  readonly client: Client;
  readonly value: T;
}

/** A place in the queue, for taking it out again (abort, timeout). */
export type QueuedEntry = object;

export class FairQueue<T> {
  readonly order: QueueOrder;
  private readonly clients = new Map<string, Client>();
  /** Clients with at least one request waiting: the candidates for the next slot. */
  private readonly candidates = new Set<Client>();
  /** Every waiting request, in arrival order. */
  private readonly arrivals = new Set<Entry<T>>();
  private seq = 0;
  /** The largest counter any client had when admitted; the floor of a lift into an empty queue. */
  private virtualTime = 0;

  constructor(order: QueueOrder = 'fair') {
    this.order = order;
  }

  /** Requests waiting. */
  get size(): number {
    return this.arrivals.size;
  }

  /** Clients held (something queued or in flight). */
  get activeClients(): number {
    return this.clients.size;
  }

  /** Requests of `key` waiting. */
  queuedOf(key: string): number {
    return this.clients.get(key)?.waiting.size ?? 0;
  }

  /** Requests waiting by client key, only clients with some. */
  queuedBy(): Map<string, number> {
    const by = new Map<string, number>();
    for (const c of this.candidates) by.set(c.key, c.waiting.size);
    return by;
  }

  /** The virtual counter of a client held now; undefined once it was forgotten. */
  counterOf(key: string): number | undefined {
    return this.clients.get(key)?.counter;
  }

  /** A request of `client` admitted without waiting (a slot was free). */
  admitNow(client: GateClient): void {
    this.admit(this.hold(client));
  }

  /** Puts a request at the back of its client's line, lifting a client that had none waiting. */
  enqueue(client: GateClient, value: T): QueuedEntry {
    const c = this.hold(client);
    if (c.waiting.size === 0) {
      if (this.order === 'fair') c.counter = Math.max(c.counter, this.floor());
      this.candidates.add(c);
    }
    const entry: Entry<T> = { seq: this.seq++, client: c, value };
    c.waiting.add(entry);
    this.arrivals.add(entry);
    return entry;
  }

  /** Takes out a request that gave up. False when it is not waiting (admitted, or removed before). */
  remove(queued: QueuedEntry): boolean {
    const entry = queued as Entry<T>;
    if (!this.arrivals.delete(entry)) return false;
    this.unqueue(entry);
    this.forgetIfIdle(entry.client);
    return true;
  }

  /** Admits the next request and returns its value; undefined when nobody waits. */
  dequeue(): T | undefined {
    const entry = this.order === 'fair' ? this.fairest() : this.arrivals.values().next().value;
    if (entry === undefined) return undefined;
    this.arrivals.delete(entry);
    this.unqueue(entry);
    this.admit(entry.client);
    return entry.value;
  }

  /** A request of `key` left the upstream. */
  finish(key: string): void {
    const c = this.clients.get(key);
    if (c === undefined || c.inFlight === 0) return;
    c.inFlight--;
    this.forgetIfIdle(c);
  }

  /**
   * Service `key` received, in tokens (negative: a refund): moves its counter by
   * tokens ÷ weight. A client not held (nothing queued or in flight) has no counter, and a
   * non-finite amount is ignored: both change nothing.
   */
  charge(key: string, tokens: number): void {
    const c = this.clients.get(key);
    if (c === undefined || !Number.isFinite(tokens)) return;
    c.counter += tokens / c.weight;
  }

  private hold(client: GateClient): Client {
    const { key, weight } = client;
    if (!(Number.isFinite(weight) && weight > 0)) throw new RangeError(`weight must be a positive number, got ${weight}`);
    let c = this.clients.get(key);
    if (c === undefined) {
      c = { key, weight, counter: 0, waiting: new Set(), inFlight: 0 };
      this.clients.set(key, c);
    }
    c.weight = weight; // a reload may change it; later charges use the latest
    return c;
  }

  private admit(c: Client): void {
    c.inFlight++;
    if (c.counter > this.virtualTime) this.virtualTime = c.counter;
  }

  /** The smallest counter among waiting clients, or virtualTime when nobody waits. */
  private floor(): number {
    let min = Infinity;
    for (const c of this.candidates) if (c.counter < min) min = c.counter;
    return min === Infinity ? this.virtualTime : min;
  }

  /** The oldest request of the waiting client with the smallest counter (ties: oldest head). */
  private fairest(): Entry<T> | undefined {
    let best: Entry<T> | undefined;
    for (const c of this.candidates) {
      const head = c.waiting.values().next().value as Entry<T>;
      if (best === undefined || c.counter < best.client.counter || (c.counter === best.client.counter && head.seq < best.seq)) best = head;
    }
    return best;
  }

  private unqueue(entry: Entry<T>): void {
    const c = entry.client;
    c.waiting.delete(entry);
    if (c.waiting.size === 0) this.candidates.delete(c);
  }

  private forgetIfIdle(c: Client): void {
    if (c.waiting.size > 0 || c.inFlight > 0) return;
    this.clients.delete(c.key);
    if (this.clients.size === 0) this.virtualTime = 0;
  }
}
