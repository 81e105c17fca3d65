/**
 * Links that send the messages of one event-loop turn as one IPC message. An IPC message
 * costs both processes a syscall, a JSON parse and a wakeup (about 11 µs in the sender and
 * 14 µs in the receiver on the 2-core test machine, one at a time); sixteen in one batch cost
 * about 6 and 8 µs each. Under load a worker finishes or admits several requests per turn,
 * so their log lines and limit calls share a message; when idle a message goes alone, one
 * turn later (nothing waits on a timer).
 *
 * A batch is `{ ch: '__batch', msgs }`; the receiving wrapper hands each message to the
 * handlers of its own channel, in order, as if they had come one by one.
 */
import type { ChannelMessage, PrimaryLink, WorkersLink } from './link.js';

/** Runs `fn` after the current turn of the event loop (setImmediate; tests pass their own). */
export type Defer = (fn: () => void) => void;

const BATCH = '__batch';

const defaultDefer: Defer = (fn) => {
  setImmediate(fn);
};

type Handler<A extends unknown[]> = (...args: A) => void;

/** Channel handlers of one wrapper: what came batched is dispatched through them. */
class Handlers<A extends unknown[]> {
  private readonly byChannel = new Map<string, Handler<A>[]>();

  add(ch: string, fn: Handler<A>): void {
    const list = this.byChannel.get(ch);
    if (list === undefined) this.byChannel.set(ch, [fn]);
    else list.push(fn);
  }

  dispatch(ch: string, ...args: A): void {
    for (const fn of this.byChannel.get(ch) ?? []) fn(...args);
  }
}

function unbatch(msg: ChannelMessage): ChannelMessage[] {
  return Array.isArray(msg.msgs) ? (msg.msgs as ChannelMessage[]) : [];
}

/** A worker's link to the primary, batching its sends per turn. */
export class BatchingPrimaryLink implements PrimaryLink {
  private pending: ChannelMessage[] = [];
  private sentFns: (() => void)[] = [];
  private readonly handlers = new Handlers<[ChannelMessage]>();

  constructor(
    private readonly inner: PrimaryLink,
    private readonly defer: Defer = defaultDefer,
  ) {
    inner.on(BATCH, (batch) => {
      for (const m of unbatch(batch)) this.handlers.dispatch(m.ch, m);
    });
  }

  send(msg: ChannelMessage, sent?: () => void): void {
    if (sent !== undefined) this.sentFns.push(sent);
    if (this.pending.push(msg) === 1) this.defer(this.flush);
  }

  /** Sends what is pending now (before an exit, say). */
  readonly flush = (): void => {
    const msgs = this.pending;
    if (msgs.length === 0) return;
    const sentFns = this.sentFns;
    this.pending = [];
    this.sentFns = [];
    const batch = msgs.length === 1 ? msgs[0]! : { ch: BATCH, msgs };
    if (sentFns.length === 0) this.inner.send(batch);
    else this.inner.send(batch, () => sentFns.forEach((fn) => fn()));
  };

  on(ch: string, fn: (msg: ChannelMessage) => void): void {
    this.handlers.add(ch, fn);
    this.inner.on(ch, fn);
  }
}

/** The primary's link to its workers, batching per worker per turn. */
export class BatchingWorkersLink implements WorkersLink {
  private pending = new Map<number, ChannelMessage[]>();
  private readonly handlers = new Handlers<[number, ChannelMessage]>();

  constructor(
    private readonly inner: WorkersLink,
    private readonly defer: Defer = defaultDefer,
  ) {
    inner.on(BATCH, (workerId, batch) => {
      for (const m of unbatch(batch)) this.handlers.dispatch(m.ch, workerId, m);
    });
    inner.onExit((workerId) => this.pending.delete(workerId));
  }

  sendTo(workerId: number, msg: ChannelMessage): void {
    if (this.pending.size === 0) this.defer(this.flush);
    const list = this.pending.get(workerId);
    if (list === undefined) this.pending.set(workerId, [msg]);
    else list.push(msg);
  }

  /** Sends what is pending now, to every worker. */
  readonly flush = (): void => {
    if (this.pending.size === 0) return;
    const pending = this.pending;
    this.pending = new Map();
    for (const [workerId, msgs] of pending) this.inner.sendTo(workerId, msgs.length === 1 ? msgs[0]! : { ch: BATCH, msgs });
  };

  on(ch: string, fn: (workerId: number, msg: ChannelMessage) => void): void {
    this.handlers.add(ch, fn);
    this.inner.on(ch, fn);
  }

  workers(): readonly number[] {
    return this.inner.workers();
  }

  onExit(fn: (workerId: number) => void): void {
    this.inner.onExit(fn);
  }
}
