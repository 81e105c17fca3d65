// Preloaded (`node --import`) into the child that measures a client's own retries when they
// would take minutes (LangChain's six backoffs add up to 63–126 s; the OpenAI SDK waits out
// a Retry-After of up to 60 s, twice). Every timer of COMPAT_TIMELAPSE_MIN_MS (1000) or more
// runs COMPAT_TIMELAPSE (50) times faster, and each one that fires is recorded with its real
// length, so the child reports how long a caller would have waited. Nothing else changes:
// the client makes the same decisions, sends the same requests and reads the same answers.
// (Shorter timers, such as the HTTP stack's own, are left alone.)
const scale = Number(process.env.COMPAT_TIMELAPSE ?? '50');
const minMs = Number(process.env.COMPAT_TIMELAPSE_MIN_MS ?? '1000');
const realSetTimeout = globalThis.setTimeout;

/** Real lengths (ms) of the long timers that fired, in order. */
globalThis.__compatWaits = [];

globalThis.setTimeout = function timelapseSetTimeout(fn, ms, ...args) {
  const delay = Number(ms) || 0;
  if (typeof fn !== 'function' || delay < minMs) return realSetTimeout(fn, ms, ...args);
  return realSetTimeout(
    (...a) => {
      globalThis.__compatWaits.push(delay);
      fn(...a);
    },
    delay / scale,
    ...args,
  );
};
