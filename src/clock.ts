/**
 * Time, injected. Every module that reasons about time (limiter, breaker, retry, deadlines)
 * takes a Clock, so unit tests move a fake clock instead of sleeping. This file holds the
 * only real Date.now / setTimeout the request path ever sees.
 */
export interface Clock {
  /** Milliseconds on a monotonic-enough scale (only differences matter). */
  now(): number;
  /** Milliseconds since the Unix epoch: only for what is dated (an HTTP-date Retry-After, a timestamp shown to a person). */
  wallNow(): number;
  /** Resolves after `ms`; rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fn` after `ms` unless cancelled first; returns the cancel function. Cheaper
   * than a sleep on an AbortSignal for a deadline that almost never fires (one per request).
   */
  timer(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      timer.unref?.();
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  timer: (ms, fn) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};

/**
 * Calls `onIdle` once nothing has touched it for `ms` (a stalled body, a silent stream).
 * `touch` costs one clock read: refreshing a real timer per chunk would move it in the
 * timer list per token. When the timer fires it checks how long it has really been quiet
 * and sleeps on for the rest if something came meanwhile.
 */
export class IdleTimer {
  private last: number;
  private cancel: (() => void) | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.last = clock.now();
    this.arm(ms);
  }

  touch(): void {
    this.last = this.clock.now();
  }

  stop(): void {
    this.cancel?.();
    this.cancel = null;
  }

  private arm(ms: number): void {
    this.cancel = this.clock.timer(ms, this.fire);
  }

  private readonly fire = (): void => {
    this.cancel = null;
    const quiet = this.clock.now() - this.last;
    if (quiet < this.ms) this.arm(this.ms - quiet);
    else this.onIdle();
  };
}

/**
 * Calls `fn` now, then every `ms` on the clock, until the returned stop is called (the
 * upstreams' health checks and model discovery). The next round is armed after this one
 * started, so a round's own work never delays the schedule.
 */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let cancel: (() => void) | null = null;
  let stopped = false;
  const round = (): void => {
    if (stopped) return;
    fn();
    cancel = clock.timer(ms, round);
  };
  round();
  return () => {
    stopped = true;
    cancel?.();
    cancel = null;
  };
}
