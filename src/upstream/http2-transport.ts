/**
 * HTTP/2 to the upstream: prior knowledge on http:// (never an h2c `Upgrade`, which vLLM's
 * server answers by dropping the request body), ALPN `h2` on https://. One long-lived session
 * carries many streams; another opens only when every session is at the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS. A session that sends GOAWAY or closes leaves the pool;
 * streams it never processed (refused, or above GOAWAY's last stream id) are replayed on a
 * fresh session at once, since the upstream provably never saw them.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { writeBody, type RequestBody } from '../http/request-body.js';
import { ProxyError } from '../errors.js';
import type { Cancel } from '../cancel.js';
import { systemClock, type Clock } from '../clock.js';
import { BodyChannel, type FlowControl } from './body-channel.js';
import { classifySocketError, UpstreamFailure, type Transport, type TransportStats, type UpstreamRequest, type UpstreamResponse } from './transport.js';

export interface Http2Options {
  readonly origin: URL;
  readonly maxSessions: number;
  readonly connectTimeoutMs: number;
  /** Close a session that carried no stream for this long. */
  readonly idleSessionMs?: number;
  /** Where the connect and idle timers run (default: the system clock). */
  readonly clock?: Clock;
}

interface Entry {
  readonly session: ClientHttp2Session;
  active: number;
  connected: boolean;
  /** GOAWAY received or closing: no new streams. */
  draining: boolean;
  /** Streams above this id were never processed by the peer (set by GOAWAY). */
  lastStreamId: number;
  /** Cancels the idle-session timer (armed while no stream is active). */
  stopIdle: (() => void) | null;
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, HTTP2_HEADER_STATUS } = http2.constants;
const DEFAULT_MAX_STREAMS = 100;
/** A stream the peer never saw may be replayed; bound it so a flapping peer cannot loop us. */
const MAX_REPLAYS = 3;

export class Http2Transport implements Transport {
  private readonly entries = new Set<Entry>();
  private opened = 0;
  private closed = false;
  private readonly clock: Clock;

  constructor(private readonly opts: Http2Options) {
    this.clock = opts.clock ?? systemClock;
  }

  async send(r: UpstreamRequest, cancel: Cancel): Promise<UpstreamResponse> {
    for (let replay = 0; ; replay++) {
      try {
        return await this.sendOnce(r, cancel);
      } catch (err) {
        const again = err instanceof UpstreamFailure && err.details.neverSent && err.outcome !== 'connect_error' && replay < MAX_REPLAYS && r.body.kind === 'buffered' && !cancel.aborted;
        if (!again) throw err;
      }
    }
  }

  private pick(): Entry {
    let best: Entry | undefined;
    for (const e of this.entries) {
      if (e.draining || e.session.destroyed) continue;
      const max = e.session.remoteSettings?.maxConcurrentStreams ?? DEFAULT_MAX_STREAMS;
      if (e.active < max && (best === undefined || e.active > best.active)) best = e; // fill one before spreading
    }
    if (best !== undefined) return best;
    if (this.entries.size < this.opts.maxSessions) return this.connect();
    // every session is full and the cap is reached: queue on the least loaded one (nghttp2 holds it)
    let least: Entry | undefined;
    for (const e of this.entries) if (!e.draining && (least === undefined || e.active < least.active)) least = e;
    return least ?? this.connect();
  }

  private connect(): Entry {
    const { origin } = this.opts;
    const session = http2.connect(origin, {
      settings: { enablePush: false },
      ...(origin.protocol === 'https:' ? { ALPNProtocols: ['h2'] } : {}),
    });
    const entry: Entry = { session, active: 0, connected: false, draining: false, lastStreamId: Number.MAX_SAFE_INTEGER, stopIdle: null };
    this.entries.add(entry);
    this.opened++;
    const stopConnectTimer = this.clock.timer(this.opts.connectTimeoutMs, () => session.destroy(new UpstreamFailure('connect_error', `connect timeout after ${this.opts.connectTimeoutMs} ms`, { neverSent: true })));
    session.once('connect', () => {
      entry.connected = true;
      stopConnectTimer();
    });
    session.on('goaway', (_code: number, lastStreamID: number) => {
      entry.draining = true;
      entry.lastStreamId = lastStreamID;
    });
    session.on('error', () => {
      entry.draining = true; // the streams report their own failure
    });
    session.once('close', () => {
      stopConnectTimer();
      entry.stopIdle?.();
      entry.draining = true;
      this.entries.delete(entry);
    });
    session.unref();
    return entry;
  }

  /** A session that carries no stream for idleSessionMs is closed (armed when its last stream ends). */
  idleFrom(entry: Entry): void {
    entry.stopIdle?.();
    entry.stopIdle = this.clock.timer(this.opts.idleSessionMs ?? 60_000, () => {
      entry.stopIdle = null;
      if (entry.active === 0) entry.session.close();
    });
  }

  private sendOnce(r: UpstreamRequest, cancel: Cancel): Promise<UpstreamResponse> {
    if (this.closed) return Promise.reject(new UpstreamFailure('connect_error', 'transport closed', { neverSent: true }));
    if (cancel.aborted) return Promise.reject(cancel.reason);
    const entry = this.pick();
    const headers: OutgoingHttpHeaders = { ...r.headers, ':method': r.method, ':path': r.path };
    delete headers['host'];
    const te = headers['te'];
    if (te !== undefined) delete headers['te'];
    const hasBody = !(r.body.kind === 'buffered' && r.body.data.length === 0);
    let stream: ClientHttp2Stream;
    try {
      stream = entry.session.request(headers, { endStream: !hasBody });
    } catch (err) {
      entry.draining = true;
      return Promise.reject(new UpstreamFailure('reset', `h2 request failed: ${(err as Error).message}`, { cause: err, neverSent: true }));
    }
    entry.active++;
    entry.stopIdle?.();
    entry.stopIdle = null;
    entry.session.ref();
    return new Promise((resolve, reject) => new H2Exchange(this, entry, stream, r, cancel, resolve, reject).start());
  }

  stats(): TransportStats {
    return { protocol: 'h2', openConnections: this.entries.size, connectionsOpened: this.opened };
  }

  close(): Promise<void> {
    this.closed = true;
    const closing = [...this.entries].map((e) => new Promise<void>((resolve) => {
      if (e.session.destroyed) resolve();
      else e.session.close(() => resolve());
    }));
    return Promise.all(closing).then(() => undefined);
  }
}

/**
 * One stream's attempt and, once answered, its UpstreamResponse: listeners, cancellation and
 * the body channel in one object (a stream can stay open for minutes, ten thousand at once).
 */
class H2Exchange implements UpstreamResponse, FlowControl {
  status = 0;
  headers: IncomingHttpHeaders = {};
  body!: BodyChannel;
  /** The promise is settled (answered, failed or cancelled). */
  private answered = false;
  private readonly offCancel: () => void;
  /** Cleared once handed to the stream, so a long answer does not keep a large prompt reachable. */
  private pending: RequestBody | null;
  private readonly kept: boolean;

  constructor(
    private readonly transport: Http2Transport,
    private readonly entry: Entry,
    private readonly stream: ClientHttp2Stream,
    r: UpstreamRequest,
    private readonly cancel: Cancel,
    private readonly resolve: (up: UpstreamResponse) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    this.kept = r.body.kind === 'buffered';
    this.pending = r.body.kind === 'buffered' && r.body.data.length === 0 ? null : r.body;
    this.offCancel = cancel.onAbort(this.onCancel);
  }

  start(): void {
    const { stream, entry } = this;
    stream.once('response', this.onResponse);
    stream.on('error', this.onError);
    stream.once('close', this.onClose);
    if (this.pending === null) return;
    // A streamed body is read only once the session is up, so a failed connect leaves it
    // unread and the attempt can be made again; a kept body can go at once.
    if (this.kept || entry.connected) this.sendBody();
    else entry.session.once('connect', this.sendBody);
  }

  /** Stop the upstream request now (the client left, or we gave up on it). */
  abort(): void {
    this.stream.close(NGHTTP2_CANCEL);
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  private readonly sendBody = (): void => {
    const b = this.pending;
    this.pending = null;
    if (b !== null) writeBody(b, this.stream);
  };

  private readonly onCancel = (): void => {
    this.stream.close(NGHTTP2_CANCEL);
    if (!this.answered) this.reject(this.cancel.reason);
  };

  private readonly onResponse = (h: H2Headers): void => {
    if (this.answered) return;
    this.answered = true;
    this.offCancel();
    this.status = Number(h[HTTP2_HEADER_STATUS]) || 502;
    this.headers = h as IncomingHttpHeaders;
    const channel = new BodyChannel(this);
    this.body = channel;
    this.stream.on('data', (chunk: Buffer) => channel.data(chunk));
    this.stream.once('end', () => channel.end());
    this.resolve(this);
  };

  private readonly onError = (err: unknown): void => this.fail(err);

  private readonly onClose = (): void => {
    const { entry, stream } = this;
    entry.active--;
    if (entry.active === 0) {
      entry.session.unref();
      this.transport.idleFrom(entry);
    }
    // an answer whose stream closed before its end is broken; no answer yet is a failure
    if (this.body !== undefined) {
      if (!stream.readableEnded) this.body.broken();
      return;
    }
    this.fail(undefined);
  };

  private fail(err: unknown): void {
    this.offCancel();
    if (this.answered || this.cancel.aborted) return;
    this.answered = true;
    if (err instanceof UpstreamFailure || err instanceof ProxyError) {
      this.reject(err);
      return;
    }
    const { stream, entry } = this;
    const neverSent = stream.rstCode === NGHTTP2_REFUSED_STREAM || (stream.id !== undefined && stream.id > entry.lastStreamId) || stream.id === undefined;
    const outcome = entry.connected ? (classifySocketError(err, true) === 'protocol' ? 'protocol' : 'reset') : 'connect_error';
    this.reject(new UpstreamFailure(outcome, `${outcome}: ${(err as Error | undefined)?.message ?? 'stream closed before the response'}`, { cause: err, neverSent: neverSent || outcome === 'connect_error' }));
  }
}
