/**
 * Time, injected. Every module that reasons about time (limiter, breaker, retry, deadlines)
 * takes a Clock, so unit tests move a fake clock instead of sleeping. This file holds the
 * only real Date.now / setTimeout the policy code ever sees.
 */
export interface Clock {
  /** Milliseconds on a monotonic-enough scale (only differences matter). */
  now(): number;
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
