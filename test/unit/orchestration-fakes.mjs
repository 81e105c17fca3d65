// Fakes for the orchestration tables: a clock whose timers the test fires, a client request
// and response without a socket, and a transport that plays a script of upstream behaviours.
// Nothing here sleeps or opens a socket; time moves only when the driver fires a timer.
import { EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { BodyChannel } from '../../dist/upstream/body-channel.js';
import { UpstreamFailure } from '../../dist/upstream/transport.js';
import { writeBody } from '../../dist/http/request-body.js';

/** The injected clock: `timer` and `sleep` wait until the test fires them (`fireNext`). */
export class FakeClock {
  t = 1_000;
  wallBase = Date.UTC(2026, 11, 6);
  seq = 0;
  timers = [];

  now() {
    return this.t;
  }

  wallNow() {
    return this.wallBase + this.t;
  }

  /** `owner` tells the proxy's timers from the fake upstream's own (which pace its answers). */
  timer(ms, fn, owner = 'proxy') {
    const entry = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, owner, live: true };
    this.timers.push(entry);
    return () => {
      entry.live = false;
    };
  }

  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        stop();
        reject(signal.reason);
      };
      const stop = this.timer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Moves time to the earliest live timer and fires it; false when none is left. */
  fireNext() {
    this.timers = this.timers.filter((e) => e.live);
    if (this.timers.length === 0) return false;
    let next = this.timers[0];
    for (const e of this.timers) if (e.at < next.at || (e.at === next.at && e.seq < next.seq)) next = e;
    next.live = false;
    this.t = Math.max(this.t, next.at);
    next.fn();
    return true;
  }

  /** Moves time on by `ms`, firing in order every timer that falls due on the way. */
  advance(ms) {
    const until = this.t + ms;
    for (;;) {
      const due = this.timers.filter((e) => e.live && e.at <= until);
      if (due.length === 0) break;
      this.fireNext();
    }
    this.t = until;
  }

  /** Live timers of one owner. */
  pending(owner = 'proxy') {
    return this.timers.filter((e) => e.live && e.owner === owner).length;
  }
}

/** Lets every pending promise callback and nextTick run. */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

/**
 * A client request without a socket. `body` is what the client sends; `slowMs` splits it in
 * two, the second half that many (fake) ms later, so the body-reading phase can be seen.
 */
export function fakeRequest(clock, { method = 'POST', url = '/v1/chat/completions', headers = {}, body = Buffer.alloc(0), slowMs = 0 } = {}) {
  const req = new Readable({ read() {} });
  Object.assign(req, {
    method,
    url,
    headers: { host: 'proxy.test', 'content-type': 'application/json', 'content-length': String(body.length), ...headers },
    rawHeaders: [],
    socket: { remoteAddress: '127.0.0.1' },
    complete: false,
  });
  const finish = () => {
    req.complete = true;
    req.push(null);
  };
  if (slowMs > 0 && body.length > 1) {
    req.push(body.subarray(0, 1));
    clock.timer(slowMs, () => {
      if (req.destroyed) return;
      req.push(body.subarray(1));
      finish();
    }, 'client');
  } else {
    if (body.length > 0) req.push(body);
    finish();
  }
  return req;
}

/** A ServerResponse without a socket: what the client got, and a way for the client to leave. */
export class FakeResponse extends EventEmitter {
  statusCode = null;
  headers = {};
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  socket = null;
  chunks = [];

  writeHead(status, headers = {}) {
    if (this.headersSent) throw new Error(`writeHead(${status}) after the head was sent`);
    this.statusCode = status;
    for (const [k, v] of Object.entries(headers)) this.headers[k.toLowerCase()] = v;
    this.headersSent = true;
    return this;
  }

  setHeader(name, value) {
    this.headers[name.toLowerCase()] = value;
  }

  flushHeaders() {
    this.headersSent = true;
  }

  write(chunk, cb) {
    if (this.destroyed) return false;
    this.headersSent = true;
    this.chunks.push(Buffer.from(chunk));
    if (cb) process.nextTick(cb); // "flushed"
    return true;
  }

  end(chunk) {
    if (this.destroyed) return this;
    if (chunk !== undefined) this.write(chunk);
    this.headersSent = true;
    this.writableFinished = true;
    process.nextTick(() => this.emit('close'));
    return this;
  }

  destroy() {
    if (this.destroyed) return this;
    this.destroyed = true;
    process.nextTick(() => this.emit('close'));
    return this;
  }

  /** The client closes its connection. */
  leave(req) {
    req.destroy();
    this.destroy();
  }

  get body() {
    return Buffer.concat(this.chunks);
  }
}

const sseEvent = (i) => `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `tok${i}` } }] })}\n\n`;
const USAGE = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });

/**
 * Upstream behaviours, one per attempt. Each is what the upstream does with the request:
 *   answer: status, then `body` (bytes), or `events` SSE events `gapMs` apart ending with
 *           [DONE] (or `then: 'break'` / `then: 'silence'`), or `stall` (part of the body,
 *           then nothing); `headMs` delays the head; `retryAfter` adds the header.
 *   fail:   'connect_error' | 'reset' | 'protocol' | 'stale' (a pooled connection that was closed)
 *   hang:   never answers
 *   bug:    the transport throws a TypeError (a bug in the proxy)
 */
export const UP = {
  ok: { answer: 200, body: USAGE },
  sse: { answer: 200, events: 3, gapMs: 50 },
  sseLong: { answer: 200, events: 6, gapMs: 900 },
  sseBreaks: { answer: 200, events: 2, gapMs: 50, then: 'break' },
  sseSilent: { answer: 200, events: 1, gapMs: 50, then: 'silence' },
  sseSlowHead: { answer: 200, events: 2, gapMs: 300, headMs: 500 },
  notFound: { answer: 404, body: '{"error":{"message":"no such model","type":"invalid_request_error","param":null,"code":"model_not_found"}}' },
  e500: { answer: 500, body: '{"error":{"message":"boom","type":"server_error","param":null,"code":null}}' },
  e503: { answer: 503, body: '{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}' },
  e503RetryAfter1: { answer: 503, body: '{"error":{"message":"busy"}}', retryAfter: '1' },
  e503RetryAfter9: { answer: 503, body: '{"error":{"message":"busy for long"}}', retryAfter: '9' },
  e503Big: { answer: 503, body: 'x'.repeat(100 * 1024), type: 'text/plain' },
  e503Stall: { answer: 503, stall: true },
  connectError: { fail: 'connect_error' },
  reset: { fail: 'reset' },
  protocol: { fail: 'protocol' },
  stale: { fail: 'stale' },
  hang: { hang: true },
  bug: { bug: true },
};

/** The answer of one attempt, as a transport hands it to the handler. */
class FakeAnswer {
  aborted = false;
  done = false;

  constructor(status, headers) {
    this.status = status;
    this.headers = headers;
    this.body = new BodyChannel({ pause() {}, resume() {} });
  }

  abort() {
    if (this.done) return;
    this.aborted = true;
    this.done = true;
    this.body.broken();
  }

  push(chunk) {
    if (!this.done) this.body.data(Buffer.from(chunk));
  }

  finish(how) {
    if (this.done) return;
    this.done = true;
    if (how === 'break') this.body.broken();
    else this.body.end();
  }
}

/** Plays `script` (one UP entry per attempt) against the handler. */
export class FakeTransport {
  sent = 0;
  cancelled = 0;
  answers = [];

  constructor(clock, script) {
    this.clock = clock;
    this.script = script;
  }

  send(r, cancel) {
    const step = this.script[this.sent++];
    if (step === undefined) return Promise.reject(new Error(`attempt ${this.sent} was not in the script`));
    if (r.body.kind === 'streaming') writeBody(r.body, new Writable({ write: (_c, _e, cb) => cb() })); // the upload, consumed
    if (cancel.aborted) return Promise.reject(cancel.reason);
    return new Promise((resolve, reject) => {
      const off = cancel.onAbort(() => {
        this.cancelled++;
        reject(cancel.reason);
      });
      const go = () => {
        if (cancel.aborted) return;
        off();
        if (step.bug) return reject(new TypeError('a bug in the proxy: x is undefined'));
        if (step.fail === 'stale') return reject(new UpstreamFailure('reset', 'reset: socket hang up', { neverSent: true, staleConnection: true }));
        if (step.fail) return reject(new UpstreamFailure(step.fail, `${step.fail}: scripted`, { neverSent: step.fail === 'connect_error' }));
        resolve(this.answer(step));
      };
      if (step.hang) return;
      if (step.headMs) this.clock.timer(step.headMs, go, 'upstream');
      else queueMicrotask(go);
    });
  }

  answer(step) {
    const sse = step.events !== undefined;
    const headers = { 'content-type': sse ? 'text/event-stream' : (step.type ?? 'application/json') };
    if (step.retryAfter) headers['retry-after'] = step.retryAfter;
    if (step.body !== undefined) headers['content-length'] = String(Buffer.byteLength(step.body));
    if (step.stall) headers['content-length'] = '100';
    const a = new FakeAnswer(step.answer, headers);
    this.answers.push(a);
    if (step.body !== undefined) {
      a.push(step.body);
      a.finish('end');
    } else if (step.stall) {
      a.push('{"error":');
    } else if (sse) {
      for (let i = 0; i < step.events; i++) this.clock.timer(step.gapMs * (i + 1), () => a.push(sseEvent(i)), 'upstream');
      const after = step.gapMs * (step.events + 1);
      if (step.then === 'break') this.clock.timer(after, () => a.finish('break'), 'upstream');
      else if (step.then !== 'silence') {
        this.clock.timer(after, () => {
          a.push('data: [DONE]\n\n');
          a.finish('end');
        }, 'upstream');
      }
    }
    return a;
  }

  /** Answers still open: neither complete nor aborted. */
  get open() {
    return this.answers.filter((a) => !a.done).length;
  }

  stats() {
    return { protocol: 'http/1.1', openConnections: 0, connectionsOpened: 0 };
  }

  close() {
    return Promise.resolve();
  }
}
