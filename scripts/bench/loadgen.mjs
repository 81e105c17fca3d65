#!/usr/bin/env node
/**
 * The built-in load generator, run as a child process so it never shares an event loop
 * with what it measures. One JSON argument; JSON lines out on stdout (the last one has
 * "event":"result").
 *
 *   throughput: `connections` raw keep-alive sockets, each a loop of one POST at a time,
 *               for `durationMs`; latencies in a preallocated Float64Array.
 *   streams:    `streams` concurrent SSE requests (raw sockets), `rounds` times, or held
 *               open (the concurrency part); per stream: time to first byte (the response
 *               head), total time, and per chunk the relay lag = arrival − the `"ts"` the
 *               bench's SSE upstream wrote in it (same machine, same clock).
 *               For the token-rate part, a measured window inside a steady run: only the
 *               events that arrive in it count, the parent is told when it opens and closes
 *               (it reads the target's CPU then), streams still open at its end are cut.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const emit = (/** @type {object} */ o) => process.stdout.write(JSON.stringify(o) + '\n');

/**
 * Percentiles of the first `n` samples (sorted in place).
 * @param {Float64Array} arr
 * @param {number} n
 */
export function summarize(arr, n) {
  const a = arr.subarray(0, n).sort();
  const at = (/** @type {number} */ q) => (n === 0 ? null : a[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i];
  return { n, mean: n ? sum / n : null, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: n ? a[n - 1] : null };
}

// ---------------------------------------------------------------------------
// throughput
// ---------------------------------------------------------------------------

/**
 * With `handshake`, tell the parent the warm-up is over ("ready") and wait for its "go" on
 * stdin: it reads the target's CPU counters in between, so they cover the measured part only.
 * @param {boolean|undefined} handshake
 */
async function readyGo(handshake) {
  if (!handshake) return;
  emit({ event: 'ready' });
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.pause();
}

/**
 * @param {{host: string, port: number, path: string, body: string, headers?: Record<string,string>, connections: number, durationMs: number, warmupMs?: number, handshake?: boolean}} o
 */
async function throughput(o) {
  if (o.warmupMs) {
    await throughputRun({ ...o, durationMs: o.warmupMs }); // same process: its JIT is warm too
    await new Promise((r) => setTimeout(r, 200));
  }
  await readyGo(o.handshake);
  return throughputRun(o);
}

/**
 * @param {{host: string, port: number, path: string, body: string, headers?: Record<string,string>, connections: number, durationMs: number}} o
 */
async function throughputRun(o) {
  const body = Buffer.from(o.body);
  const extra = Object.entries(o.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const request = Buffer.concat([
    Buffer.from(`POST ${o.path} HTTP/1.1\r\nhost: ${o.host}:${o.port}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n${extra}\r\n`, 'latin1'),
    body,
  ]);
  const capacity = Math.min(20_000_000, Math.max(100_000, Math.ceil(o.durationMs * 200)));
  const lat = new Float64Array(capacity);
  let n = 0;
  let completed = 0;
  let non2xx = 0;
  let errors = 0;
  let reconnects = 0;
  const started = performance.now();
  const deadline = started + o.durationMs;
  let lastDone = started;
  const CRLF2 = Buffer.from('\r\n\r\n');
  const CHUNKED_END = Buffer.from('\r\n0\r\n\r\n');

  /** One connection's loop; resolves when its last response arrived after the deadline. */
  const loop = () =>
    new Promise((resolve) => {
      /** @type {net.Socket} */
      let sock;
      /** @type {Buffer|null} */
      let pending = null;
      let headEnd = -1;
      let bodyLen = -1; // -2 = chunked
      let status = 0;
      let t0 = 0;
      let busy = false;

      const send = () => {
        if (performance.now() >= deadline) {
          sock.end();
          resolve(undefined);
          return;
        }
        busy = true;
        t0 = performance.now();
        sock.write(request);
      };
      const connect = () => {
        sock = net.connect({ host: o.host, port: o.port, noDelay: true });
        sock.on('connect', send);
        sock.on('data', onData);
        sock.on('error', () => {});
        sock.on('close', () => {
          if (busy) errors++;
          busy = false;
          pending = null;
          headEnd = -1;
          if (performance.now() < deadline) {
            reconnects++;
            setTimeout(connect, 10);
          } else resolve(undefined);
        });
      };
      const onData = (/** @type {Buffer} */ chunk) => {
        let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          if (headEnd < 0) {
            headEnd = buf.indexOf(CRLF2);
            if (headEnd < 0) break;
            const head = buf.toString('latin1', 0, headEnd);
            status = Number(head.slice(9, 12));
            const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
            bodyLen = cl ? Number(cl[1]) : /\r\ntransfer-encoding:[ \t]*chunked/i.test(head) ? -2 : 0;
          }
          let end;
          if (bodyLen >= 0) {
            end = headEnd + 4 + bodyLen;
            if (buf.length < end) break;
          } else {
            const at = buf.indexOf(CHUNKED_END, headEnd + 2);
            if (at < 0) break;
            end = at + CHUNKED_END.length;
          }
          const now = performance.now();
          if (n < capacity) lat[n++] = now - t0;
          completed++;
          if (status < 200 || status >= 300) non2xx++;
          lastDone = now;
          busy = false;
          headEnd = -1;
          buf = buf.subarray(end);
          if (buf.length === 0) {
            buf = /** @type {any} */ (null);
            send();
            break;
          }
        }
        pending = buf && buf.length ? buf : null;
      };
      connect();
    });

  await Promise.all(Array.from({ length: o.connections }, loop));
  const seconds = (lastDone - started) / 1000;
  const s = summarize(lat, n);
  return { requests: completed, seconds, rps: completed / seconds, latencyMs: s, non2xx, errors, reconnects };
}

// ---------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------

/**
 * @param {{host: string, port: number, path: string, body: string, headers?: Record<string,string>,
 *   streams: number, rounds?: number, maxConnecting?: number, deadlineMs: number, keepAlive?: boolean,
 *   staggerMs?: number, expectChunks?: number, progressMs?: number, warmupRounds?: number, handshake?: boolean,
 *   windowOn?: 'head'|'connect', durationMs?: number, warmupMs?: number, streamMs?: number,
 *   chunks?: number, spreadEnds?: boolean, measureFromMs?: number, cutAtEnd?: boolean}} o
 *
 * With `durationMs`: a closed loop of `streams` virtual users, each starting its next stream
 * as soon as the last one ended, for that long (the first starts spread over `staggerMs`):
 * a steady `streams` streams open at once. Else `rounds` rounds of `streams` streams.
 *
 * `chunks`: each stream asks for that many (x-fake-chunks). With `spreadEnds`, user i's first
 * stream asks for only ⌈chunks·(i+1)/streams⌉: the streams' ends, hence their restarts, are
 * spread evenly over one stream from the start, a steady state without a ramp. With
 * `measureFromMs`, events count only from then to `durationMs` (emitting
 * {"event":"window","phase":"open"|"close"} at both ends), and with `cutAtEnd` the streams
 * still open at `durationMs` are closed there instead of run to their end (counted as cut).
 */
async function streams(o) {
  if (o.warmupRounds || o.warmupMs) {
    // same process: JIT and keep-alive sockets warm
    await streamsRun({ ...o, rounds: o.warmupRounds ?? 1, durationMs: o.warmupMs ?? 0, progressMs: 0 });
    await new Promise((r) => setTimeout(r, 200));
  }
  await readyGo(o.handshake);
  return streamsRun(o);
}

/** Idle keep-alive sockets, kept across the warm-up and the measured rounds. @type {net.Socket[]} */
const idleSockets = [];

/**
 * One SSE response read off a raw socket: the head, then the body (chunked, sized or up to
 * the close), events cut at their blank line. Much lighter than node:http's client, so the
 * client's own cost per chunk (the floor of the lag it can measure) stays small.
 */
class SseResponse {
  /** @param {(ev: string, arrival: number) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    /** @type {Buffer|null} */
    this.pending = null; // bytes not consumed yet (head, chunk-size line)
    this.status = 0;
    this.headDone = false;
    this.mode = /** @type {'chunked'|'length'|'close'} */ ('close');
    this.left = 0; // bytes left in the current chunk, or of the body when sized
    this.needSize = true;
    this.skipCrlf = 0;
    this.ended = false;
    this.keepAlive = true;
    this.text = '';
  }

  /** Feed bytes; returns true once the response ended. @param {Buffer} chunk @param {number} arrival */
  push(chunk, arrival) {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    if (!this.headDone) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        this.pending = buf;
        return false;
      }
      const head = buf.toString('latin1', 0, end);
      this.status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
      if (/\r\ntransfer-encoding:[ \t]*chunked/i.test(head)) this.mode = 'chunked';
      else if (cl) {
        this.mode = 'length';
        this.left = Number(cl[1]);
      }
      this.keepAlive = !/\r\nconnection:[ \t]*close/i.test(head) && this.mode !== 'close';
      this.headDone = true;
      buf = buf.subarray(end + 4);
      if (this.mode === 'length' && this.left === 0) return (this.ended = true);
    }
    if (this.mode !== 'chunked') {
      const take = this.mode === 'length' ? Math.min(this.left, buf.length) : buf.length;
      this.body(buf.subarray(0, take), arrival);
      if (this.mode === 'length') {
        this.left -= take;
        if (this.left === 0) this.ended = true;
      }
      return this.ended;
    }
    let pos = 0;
    while (pos < buf.length) {
      if (this.skipCrlf > 0) {
        const n = Math.min(this.skipCrlf, buf.length - pos);
        this.skipCrlf -= n;
        pos += n;
        if (this.skipCrlf > 0) break;
        if (this.left === -1) return (this.ended = true); // the CRLF after the last chunk
        continue;
      }
      if (this.needSize) {
        const nl = buf.indexOf('\r\n', pos);
        if (nl < 0) {
          this.pending = buf.subarray(pos);
          return false;
        }
        const size = Number.parseInt(buf.toString('latin1', pos, nl), 16);
        pos = nl + 2;
        if (size === 0) {
          this.left = -1;
          this.skipCrlf = 2; // no trailers expected
          continue;
        }
        this.left = size;
        this.needSize = false;
      }
      const take = Math.min(this.left, buf.length - pos);
      this.body(buf.subarray(pos, pos + take), arrival);
      pos += take;
      this.left -= take;
      if (this.left === 0) {
        this.needSize = true;
        this.skipCrlf = 2;
      }
    }
    return this.ended;
  }

  /** @param {Buffer} bytes @param {number} arrival */
  body(bytes, arrival) {
    if (bytes.length === 0) return;
    this.text += bytes.toString('latin1');
    let cut;
    while ((cut = this.text.indexOf('\n\n')) >= 0) {
      const ev = this.text.slice(0, cut);
      this.text = this.text.slice(cut + 2);
      this.onEvent(ev, arrival);
    }
  }
}

/** @param {Parameters<typeof streams>[0]} o */
async function streamsRun(o) {
  const rounds = o.rounds ?? 1;
  const total = o.durationMs ? o.streams * (Math.ceil(o.durationMs / Math.max(1, o.streamMs ?? 50)) + 2) : o.streams * rounds;
  let attempted = 0;
  const maxConnecting = o.maxConnecting ?? o.streams;
  const keepAlive = o.keepAlive ?? false;
  const lagCap = total * Math.max(1, o.expectChunks ?? 20) + 1024;
  const lags = new Float64Array(lagCap);
  let nLag = 0;
  const ttfb = new Float64Array(total);
  let nTtfb = 0;
  const totals = new Float64Array(total);
  let nTotal = 0;
  /** @type {Record<string, number>} */
  const failures = {};
  let ok = 0;
  let open = 0;
  let peakOpen = 0;
  let allOpenAt = null;
  const t0 = performance.now();
  const abs = () => performance.timeOrigin + performance.now();
  const extra = Object.entries(o.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const body = Buffer.from(o.body);
  /** @type {Map<number, Buffer>} */
  const requests = new Map();
  /** The request asking for `chunks` chunks (or as the headers say, when 0). @param {number} chunks */
  const requestFor = (chunks) => {
    let r = requests.get(chunks);
    if (!r) {
      const ask = chunks > 0 ? `x-fake-chunks: ${chunks}\r\n` : '';
      r = Buffer.concat([
        Buffer.from(`POST ${o.path} HTTP/1.1\r\nhost: ${o.host}:${o.port}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n${keepAlive ? '' : 'connection: close\r\n'}${ask}${extra}\r\n`, 'latin1'),
        body,
      ]);
      requests.set(chunks, r);
    }
    return r;
  };
  /** @type {Set<net.Socket>} */
  const live = new Set();
  let stopping = false;
  let cutting = false;
  // the measured window: open from the start unless measureFromMs delays it
  let counting = !o.measureFromMs;
  let windowEvents = 0;
  /** @type {{at: number, cpu: NodeJS.CpuUsage}|null} */
  let windowOpen = null;
  /** @type {{seconds: number, events: number, loadgenCores: number}|null} */
  let measured = null;

  /** @param {string} why */
  const fail = (why) => {
    failures[why] = (failures[why] ?? 0) + 1;
  };

  /**
   * One stream, start to end. `onHead` when its response head arrives, or with
   * `windowOn: 'connect'` as soon as its connection is established (the ramp of the held
   * streams only has to keep the listen backlogs from overflowing). `ask` chunks (0: as
   * the headers say), `expect` of them at least.
   * @param {() => void} onHead @returns {Promise<void>}
   */
  const one = (onHead, ask = o.chunks ?? 0, expect = o.chunks ?? o.expectChunks) =>
    new Promise((resolve) => {
      const start = performance.now();
      let opened = false;
      let settled = false;
      let chunks = 0;
      let done = false;
      let errorEvent = false;
      attempted++;
      const reused = keepAlive ? idleSockets.pop() : undefined;
      const sock = reused ?? net.connect({ host: o.host, port: o.port, noDelay: true });
      live.add(sock);
      if (o.windowOn === 'connect') {
        if (reused) onHead();
        else sock.once('connect', onHead);
      }
      const res = new SseResponse((ev, arrival) => {
        if (ev.startsWith('data: [DONE]')) {
          done = true;
          return;
        }
        if (ev.includes('"error"')) errorEvent = true;
        chunks++;
        if (!counting) return;
        const at = ev.lastIndexOf('"ts":');
        if (at < 0) return;
        windowEvents++;
        if (nLag < lagCap) lags[nLag++] = arrival - Number.parseFloat(ev.slice(at + 5));
      });
      /** @param {string|null} why @param {boolean} reusable */
      const settle = (why, reusable) => {
        if (settled) return;
        settled = true;
        sock.off('data', onData);
        sock.off('close', onClose);
        sock.off('error', onError);
        live.delete(sock);
        if (opened) open--;
        if (why === null) {
          ok++;
          if (nTotal < total) totals[nTotal++] = performance.now() - start;
        } else fail(why);
        if (reusable && !stopping) idleSockets.push(sock);
        else sock.destroy();
        resolve();
      };
      const onData = (/** @type {Buffer} */ chunk) => {
        const arrival = abs();
        const wasHead = res.headDone;
        const ended = res.push(chunk, arrival);
        if (!wasHead && res.headDone) {
          if (nTtfb < total) ttfb[nTtfb++] = performance.now() - start;
          onHead();
          opened = true;
          open++;
          if (open > peakOpen) peakOpen = open;
          if (open === o.streams && allOpenAt === null) {
            allOpenAt = performance.now() - t0;
            emit({ event: 'allOpen', open, atMs: allOpenAt });
          }
          if (res.status !== 200) {
            settle(`status_${res.status}`, false);
            return;
          }
        }
        if (ended) {
          const reusable = res.keepAlive && keepAlive;
          if (errorEvent) settle('error_event', reusable);
          else if (!done || (expect !== undefined && chunks < expect)) settle('incomplete', reusable);
          else settle(null, reusable);
        }
      };
      const onClose = () => {
        if (cutting) settle('cut', false);
        else if (stopping) settle('timeout', false);
        else if (res.headDone && res.mode === 'close') settle(done && !errorEvent ? null : errorEvent ? 'error_event' : 'incomplete', false);
        else settle(res.headDone ? 'reset_mid_stream' : reused ? 'closed_before_head (reused socket)' : 'closed_before_head', false);
      };
      const onError = (/** @type {NodeJS.ErrnoException} */ err) => {
        if (!res.headDone && !stopping) settle(err.code ?? 'error', false);
      };
      sock.on('data', onData);
      sock.on('close', onClose);
      sock.on('error', onError);
      sock.write(requestFor(ask));
    });

  const deadline = setTimeout(() => {
    stopping = true;
    for (const sock of live) sock.destroy();
  }, o.deadlineMs);
  const progress = o.progressMs
    ? setInterval(() => emit({ event: 'progress', atMs: performance.now() - t0, open, ok, failed: Object.values(failures).reduce((a, b) => a + b, 0) }), o.progressMs)
    : null;

  if (o.durationMs) {
    const endAt = performance.now() + o.durationMs;
    /** @type {NodeJS.Timeout|null} */
    let opener = null;
    if (o.measureFromMs) {
      opener = setTimeout(() => {
        counting = true;
        windowOpen = { at: performance.now(), cpu: process.cpuUsage() };
        emit({ event: 'window', phase: 'open' });
      }, o.measureFromMs);
    }
    const closer = setTimeout(() => {
      if (windowOpen) {
        const seconds = (performance.now() - windowOpen.at) / 1000;
        const cpu = process.cpuUsage(windowOpen.cpu);
        measured = { seconds, events: windowEvents, loadgenCores: (cpu.user + cpu.system) / 1e6 / seconds };
        emit({ event: 'window', phase: 'close' });
      }
      counting = false;
      if (o.cutAtEnd) {
        cutting = stopping = true;
        for (const sock of live) sock.destroy();
      }
    }, o.durationMs);
    const user = async (/** @type {number} */ i) => {
      const offset = ((o.staggerMs ?? 0) * i) / o.streams;
      if (offset >= 1) await new Promise((res) => setTimeout(res, Math.floor(offset)));
      if (o.spreadEnds && o.chunks && !stopping) {
        const first = Math.max(1, Math.ceil((o.chunks * (i + 1)) / o.streams));
        await one(() => {}, first, first);
      }
      while (!stopping && performance.now() < endAt) await one(() => {});
    };
    await Promise.all(Array.from({ length: o.streams }, (_, i) => user(i)));
    if (opener) clearTimeout(opener);
    clearTimeout(closer);
  }
  for (let r = 0; r < rounds && !stopping && !o.durationMs; r++) {
    /** @type {Promise<void>[]} */
    const all = [];
    let connecting = 0;
    /** @type {(() => void)|null} */
    let waiter = null;
    const roundStart = performance.now();
    for (let i = 0; i < o.streams && !stopping; i++) {
      if (o.staggerMs) {
        // starts spread evenly over staggerMs (timers tick by the ms: a few start together)
        const wait = roundStart + (i * o.staggerMs) / o.streams - performance.now();
        if (wait >= 1) await new Promise((res) => setTimeout(res, Math.floor(wait)));
      }
      // at most `maxConnecting` streams between their start and their response head
      if (connecting >= maxConnecting) await new Promise((res) => (waiter = () => res(undefined)));
      connecting++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        connecting--;
        const w = waiter;
        waiter = null;
        w?.();
      };
      all.push(one(release).finally(release));
    }
    await Promise.all(all);
  }
  clearTimeout(deadline);
  if (progress) clearInterval(progress);
  const cut = failures.cut ?? 0;
  delete failures.cut;
  return {
    streams: o.streams,
    rounds: o.durationMs ? null : rounds,
    attempted,
    ok,
    failed: attempted - ok - cut,
    cut,
    failures,
    window: measured,
    peakOpen,
    allOpenAtMs: allOpenAt,
    seconds: (performance.now() - t0) / 1000,
    ttfbMs: summarize(ttfb, nTtfb),
    totalMs: summarize(totals, nTotal),
    lagMs: summarize(lags, nLag),
  };
}

async function main() {
  const o = JSON.parse(process.argv[2] ?? '{}');
  const result = o.mode === 'throughput' ? await throughput(o) : await streams(o);
  emit({ event: 'result', ...result });
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`loadgen: ${err?.stack ?? err}\n`);
  process.exit(1);
});
