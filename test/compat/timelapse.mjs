// Preloaded (`node --import`) into the child that measures a client's own retries when they
// would take minutes (LangChain's six backoffs add up to 63–126 s; the OpenAI SDK waits out
// a Retry-After of up to 60 s, twice). Every timer of COMPAT_TIMELAPSE_MIN_MS (1000) or more
// runs COMPAT_TIMELAPSE (50) times faster, and each one that fires while keeping the
// process waiting (not unref'd) is recorded with its real length, so the child reports how
// long a caller would have waited. The client makes the same decisions, sends the same
// requests and reads the same answers. Shorter timers are left alone; a long unref'd one
// (an idle keep-alive connection's) fires sooner, which at most opens a new connection.
const scale = Number(process.env.COMPAT_TIMELAPSE ?? '50');
const minMs = Number(process.env.COMPAT_TIMELAPSE_MIN_MS ?? '1000');
const realSetTimeout = globalThis.setTimeout;

/** Real lengths (ms) of the long timers that fired, in order. */
globalThis.__compatWaits = [];

globalThis.setTimeout = function timelapseSetTimeout(fn, ms, ...args) {
  const delay = Number(ms) || 0;
  if (typeof fn !== 'function' || delay < minMs) return realSetTimeout(fn, ms, ...args);
  let background = false;
  const timer = realSetTimeout(
    (...a) => {
      if (!background) globalThis.__compatWaits.push(delay);
      fn(...a);
    },
    delay / scale,
    ...args,
  );
  // an unref'd timer keeps nobody waiting (the HTTP stack's idle keep-alive timer, say):
  // it is no backoff, so it is not counted as one
  const unref = timer.unref;
  timer.unref = function unrefAndForget() {
    background = true;
    return unref.call(this);
  };
  return timer;
};
