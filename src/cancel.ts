/**
 * A request's cancellation: the client left, or the deadline passed. An AbortController
 * per request costs an EventTarget, a DOM-style event and listener bookkeeping (about 9 µs a
 * request in the profile, more than the rest of our own code); this is a flag, a reason and
 * a short list of callbacks. Code that wants a real AbortSignal (a backoff sleep, the
 * concurrency queue) asks for `signal`, made only then.
 */
const NOOP = (): void => {};

export class Cancel {
  aborted = false;
  reason: unknown = undefined;
  private callbacks: (() => void)[] | null = null;
  private controller: AbortController | null = null;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    const callbacks = this.callbacks;
    this.callbacks = null;
    if (callbacks !== null) for (const fn of callbacks) fn();
  }

  /** Calls `fn` once on abort (at once if already aborted); returns the unsubscribe. */
  onAbort(fn: () => void): () => void {
    if (this.aborted) {
      fn();
      return NOOP;
    }
    (this.callbacks ??= []).push(fn);
    return () => {
      const list = this.callbacks;
      const i = list === null ? -1 : list.indexOf(fn);
      if (i >= 0) list!.splice(i, 1);
    };
  }

  /** An AbortSignal that follows this cancellation, created on first use. */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
}

/** Why a request ended before its answer did. */
export type EndReason = 'client_gone' | 'deadline' | 'shutdown';

/** The value a request's Cancel carries when it ends early: transports and sleeps reject with it. */
export class Ended extends Error {
  constructor(
    readonly reason: EndReason,
    message: string,
  ) {
    super(message);
    this.name = 'Ended';
  }
}

/** The client closed its connection before the answer was complete. */
export const CLIENT_GONE = new Ended('client_gone', 'the client closed the connection');
/** TIMEOUT passed: before the answer began, or between two chunks of it. */
export const DEADLINE = new Ended('deadline', 'TIMEOUT passed');
/** SHUTDOWN_TIMEOUT passed while the request was still in flight. */
export const SHUTDOWN = new Ended('shutdown', 'the proxy is shutting down');
