/**
 * Streams the upstream's answer to the client as it arrives, with backpressure, and ends it
 * honestly. Server-sent events are passed whole: bytes of an event that has not ended yet
 * are held until its blank line arrives (upstreams write whole events, so this delays
 * nothing), so that when the upstream breaks mid-stream the client gets the complete events
 * so far, then one error event in the endpoint's own shape (stream-error-event.ts) and no
 * `[DONE]`, and then the connection is cut without the terminating chunk: SDKs that read
 * the error event raise it, and those that only watch the transport (the Vercel AI SDK)
 * see a failed response instead of a clean end. A cut answer never looks complete and
 * never ends in half an event. A non-SSE body that breaks is cut (the client sees it
 * incomplete).
 *
 * An SSE answer to an HTTP/1.1 client (chunked: no length) is written straight to the client's
 * socket, each upstream read's events as one chunk (http/chunk-frame.ts) in one write, the
 * head flushed first; `res.end()` still writes the last chunk, and anything else (an error
 * event) still goes through `res.write`, after it on the same socket. Backpressure is the
 * socket's own: its write returning false pauses the upstream until its 'drain'. Other
 * answers (a sized body, an HTTP/1.0 client) go through `res.write` as before.
 *
 * The request's lifetime decides how a relay ends early: the client leaving aborts the
 * upstream request at once (the model stops generating); TIMEOUT of silence between chunks
 * and shutdown end the stream like a break, each with its own error code. Each chunk, and
 * each time the client drains what was written, tells the lifetime the answer is moving.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { EndReason } from '../cancel.js';
import type { Lifetime } from '../proxy/lifetime.js';
import type { BodySink } from './body-channel.js';
import type { UpstreamResponse } from './transport.js';
import { chunkFrame } from '../http/chunk-frame.js';
import { toClientHeaders } from '../http/headers.js';
import { streamErrorEvent } from './stream-error-event.js';

export type RelayOutcome = 'complete' | 'upstream_broken' | 'idle_timeout' | 'client_gone' | 'shutdown';

export const RELAY_OUTCOMES: readonly RelayOutcome[] = ['complete', 'upstream_broken', 'idle_timeout', 'client_gone', 'shutdown'];

export interface RelayResult {
  readonly outcome: RelayOutcome;
  readonly bytesOut: number;
  /** The answer was a Server-Sent Events stream. */
  readonly sse: boolean;
}

export interface RelayOptions {
  readonly requestId: string;
  /** The request's path (and query): which error event ends a broken stream depends on the endpoint. */
  readonly path: string;
  /** TIMEOUT, for the message of a stream cut for silence. */
  readonly idleTimeoutMs: number;
  /** Extra headers for the client (rate-limit info, x-should-retry). */
  readonly extraHeaders?: Record<string, string>;
  /** Sees every body chunk as it passes (token accounting); must not keep or alter it. */
  readonly onChunk?: { push(chunk: Buffer): void };
}

/** Index just past the last complete SSE event in `buf` (0 when none ended). */
export function lastEventEnd(buf: Buffer): number {
  const n = buf.length;
  if (n >= 2 && buf[n - 1] === 0x0a && (buf[n - 2] === 0x0a || (n >= 4 && buf[n - 2] === 0x0d && buf[n - 3] === 0x0a))) return n; // fast path
  for (let i = n - 1; i >= 1; i--) {
    const c = buf[i];
    const p = buf[i - 1];
    if (c === 0x0a && (p === 0x0a || (p === 0x0d && i >= 2 && buf[i - 2] === 0x0a))) return i + 1;
    if (c === 0x0d && p === 0x0d && buf[i + 1] !== 0x0a) return i + 1;
  }
  return 0;
}

/** Bound on a held partial event: a peer that never ends an event cannot grow our memory. */
const MAX_HELD_BYTES = 1 << 20;

const OUTCOME_OF: Record<EndReason, RelayOutcome> = { client_gone: 'client_gone', deadline: 'idle_timeout', shutdown: 'shutdown' };

export function relayResponse(up: UpstreamResponse, res: ServerResponse, opts: RelayOptions, life: Lifetime): Promise<RelayResult> {
  const contentType = up.headers['content-type'];
  const sse = typeof contentType === 'string' && contentType.toLowerCase().startsWith('text/event-stream');
  const headers = toClientHeaders(up.headers, opts.requestId);
  if (opts.extraHeaders) Object.assign(headers, opts.extraHeaders);
  if (sse) {
    headers['cache-control'] ??= 'no-cache';
    headers['x-accel-buffering'] = 'no';
    delete headers['content-length'];
  }
  res.writeHead(up.status, headers);
  if (sse) (res.socket as Socket | null)?.setNoDelay(true);
  return new Promise((resolve) => new Relay(up, res, opts, life, sse, resolve).start());
}

/**
 * One answer on its way: the body's sink and the client's drain listener in one object (a
 * stream can stay open for minutes, ten thousand at once: one object each, not a dozen
 * closures).
 */
class Relay implements BodySink {
  private bytesOut = 0;
  /** The start of an SSE event whose end has not arrived yet. */
  private held: Buffer | null = null;
  /** The last bytes written: whole events on an SSE stream (a broken Responses stream numbers its error event after them). */
  private lastWritten: Buffer | null = null;
  private settled = false;
  private offEnded: (() => void) | null = null;
  /** The client's socket, when events are framed and written to it directly (see the top). */
  private direct: Socket | null = null;
  /** A direct write was refused: the upstream waits for the socket's 'drain'. */
  private awaitingDrain = false;
  /** The upstream is paused because the client has not read what it was sent. */
  private pausedForClient = false;

  constructor(
    private readonly up: UpstreamResponse,
    private readonly res: ServerResponse,
    private readonly opts: RelayOptions,
    private readonly life: Lifetime,
    private readonly sse: boolean,
    private readonly resolve: (r: RelayResult) => void,
  ) {}

  start(): void {
    const { res, life } = this;
    res.on('drain', this.onDrain);
    this.offEnded = life.cancel.onAbort(this.onEnded); // at once if it already ended
    if (this.settled) return;
    const socket = res.socket as Socket | null;
    if (this.sse && res.chunkedEncoding && socket !== null) {
      // the head first, corked with what arrived with it: one packet, as res.write made it
      this.direct = socket;
      socket.cork();
      try {
        res.flushHeaders();
        this.up.body.read(this);
      } finally {
        socket.uncork();
      }
      return;
    }
    // last: what arrived with the head is delivered at once, maybe the whole body
    this.up.body.read(this);
    // a stream whose first events have not come yet: its head goes out now, so the client
    // sees the stream begin (when events came with it, the first write carried the head)
    if (this.sse && this.bytesOut === 0 && !this.settled) res.flushHeaders();
  }

  data(chunk: Buffer): void {
    this.life.touch();
    this.opts.onChunk?.push(chunk);
    if (!this.sse) {
      this.write(chunk);
      return;
    }
    const buf = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
    const end = lastEventEnd(buf);
    if (end === buf.length) {
      this.held = null;
      this.write(buf);
    } else if (buf.length - end > MAX_HELD_BYTES) {
      this.held = null;
      this.write(buf); // a pathological event: pass it on rather than hold without bound
    } else {
      if (end > 0) this.write(buf.subarray(0, end));
      this.held = buf.subarray(end);
    }
  }

  end(): void {
    if (this.held !== null) this.write(this.held); // the upstream ended cleanly: its last bytes are its own business
    this.held = null;
    this.finish('complete');
  }

  broken(): void {
    this.finish('upstream_broken');
  }

  private write(chunk: Buffer): void {
    if (this.bytesOut === 0) this.life.markFirstByte();
    this.bytesOut += chunk.length;
    this.lastWritten = chunk;
    const direct = this.direct;
    if (direct === null) {
      if (!this.res.write(chunk)) {
        this.pausedForClient = true;
        this.up.body.pause();
      }
    } else if (chunk.length > 0 && !direct.write(chunkFrame(chunk)) && !this.awaitingDrain) {
      this.awaitingDrain = true;
      this.pausedForClient = true;
      direct.once('drain', this.onSocketDrain);
      this.up.body.pause();
    }
  }

  private readonly onSocketDrain = (): void => {
    this.awaitingDrain = false;
    this.onDrain();
  };

  private readonly onDrain = (): void => {
    this.pausedForClient = false;
    this.life.touch(); // a slow reader paused the upstream: that silence is not the upstream's
    this.up.body.resume();
  };

  private readonly onEnded = (): void => {
    this.finish(OUTCOME_OF[this.life.endedBy ?? 'client_gone']);
  };

  private finish(outcome: RelayOutcome): void {
    if (this.settled) return;
    this.settled = true;
    // TIMEOUT passed while the upstream waited for the client to read: the silence was the
    // client's, and an error event would only queue behind what it does not read. It is
    // dropped like a client that left (499), its connection closed now
    if (outcome === 'idle_timeout' && this.pausedForClient) outcome = 'client_gone';
    const { res, up, opts, life } = this;
    res.off('drain', this.onDrain);
    if (this.awaitingDrain) this.direct?.off('drain', this.onSocketDrain);
    this.direct = null;
    this.offEnded?.();
    if (outcome === 'complete') {
      life.markFirstByte(); // an empty body: the end is the first (and last) thing the client gets
      life.holdUpstream(null);
      res.end();
    } else if (outcome === 'client_gone') {
      up.abort();
      res.destroy(); // gone already, or stalled: either way nothing more is sent
    } else {
      up.abort();
      if (this.sse && !res.destroyed) {
        const [message, code] = ENDINGS[outcome](opts.idleTimeoutMs);
        const ev = streamErrorEvent(opts.path, this.lastWritten, message, code);
        this.bytesOut += Buffer.byteLength(ev);
        // no terminating chunk: once the event is out the connection is cut, so a client that
        // reads only the transport sees a failure too (a clean end reads as complete there)
        res.write(ev, () => res.destroy());
      } else {
        res.destroy();
      }
    }
    this.lastWritten = null;
    this.resolve({ outcome, bytesOut: this.bytesOut, sse: this.sse });
  }
}

/** The message and code of the error event that ends a stream early. */
const ENDINGS: Record<'upstream_broken' | 'idle_timeout' | 'shutdown', (idleMs: number) => [string, string]> = {
  upstream_broken: () => ['Stream ended early: the upstream broke the stream. The answer is incomplete.', 'upstream_stream_broken'],
  idle_timeout: (idleMs) => [`Stream ended early: the upstream sent nothing for ${idleMs} ms. The answer is incomplete.`, 'upstream_timeout'],
  shutdown: () => ['Stream ended early: the proxy is shutting down. The answer is incomplete.', 'draining'],
};
