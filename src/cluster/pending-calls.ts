/**
 * Calls a worker sent to the primary and that are not answered yet, by id, each with a
 * deadline. One timer on the injected clock serves them all: calls are opened in deadline
 * order (one timeout per table, a clock that never goes back), so the timer is armed for
 * the oldest only, and a call answered in time costs a Map insert and delete, no timer.
 */
import type { Clock } from '../clock.js';

interface Call<P> {
  readonly deadline: number;
  readonly value: P;
}

export class PendingCalls<P> {
  private seq = 0;
  private readonly calls = new Map<number, Call<P>>();
  private armed = false;

  /**
   * @param timeoutMs how long a call waits for its answer (Infinity: as long as it takes).
   * @param onExpire called once for a call unanswered at its deadline (it is no longer pending).
   */
  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly onExpire: (id: number, value: P) => void,
  ) {}

  /** Calls waiting for their answer. */
  get size(): number {
    return this.calls.size;
  }

  /** A new call: its id, unique in this table. */
  open(value: P): number {
    const id = ++this.seq;
    this.calls.set(id, { deadline: this.clock.now() + this.timeoutMs, value });
    if (!this.armed && this.timeoutMs !== Infinity) this.arm(this.timeoutMs);
    return id;
  }

  /** The call `id`, answered or given up: no longer pending. Undefined when it was not (late, or twice). */
  take(id: number): P | undefined {
    const call = this.calls.get(id);
    if (call === undefined) return undefined;
    this.calls.delete(id);
    return call.value;
  }

  /** Every call still pending, taken out (the link is gone). */
  drain(): Array<[number, P]> {
    const all = [...this.calls].map(([id, c]): [number, P] => [id, c.value]);
    this.calls.clear();
    return all;
  }

  private arm(ms: number): void {
    this.armed = true;
    this.clock.timer(ms, this.fire);
  }

  private readonly fire = (): void => {
    this.armed = false;
    const now = this.clock.now();
    for (const [id, call] of this.calls) {
      if (call.deadline > now) {
        if (!this.armed) this.arm(call.deadline - now);
        return;
      }
      this.calls.delete(id);
      this.onExpire(id, call.value);
    }
  };
}
