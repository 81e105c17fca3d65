/**
 * HTTP/1.1 to the upstream over our own keep-alive pool (http1-pool.ts), one exchange
 * object per attempt. The request head is written by hand: a small buffered request goes
 * out as one buffer in one write, and the response is parsed by http1-response-parser.ts;
 * the exchange itself is the UpstreamResponse the handler relays. Against http.Agent and
 * http.ClientRequest this drops the per-request listener bookkeeping, the header objects
 * built twice, and the second write for the body, which was most of what the proxy cost
 * above a bare pipe.
 *
 * Request framing: a buffered body is sent with its exact Content-Length; a streamed one
 * keeps the client's Content-Length, or goes chunked when the client sent none.
 */
import { Writable } from 'node:stream';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { writeBody, type RequestBody } from '../http/request-body.js';
import { ProxyError } from '../errors.js';
import type { Cancel } from '../cancel.js';
import type { Clock } from '../clock.js';
import { BodyChannel, type FlowControl } from './body-channel.js';
import type { ConnectionOwner, Http1Connection } from './http1-connection.js';
import { Http1Pool, type PoolWaiter } from './http1-pool.js';
import type { ResponseHead } from './http1-response-parser.js';
import { classifySocketError, UpstreamFailure, type Transport, type TransportStats, type UpstreamRequest, type UpstreamResponse } from './transport.js';

export interface Http1Options {
  readonly origin: URL;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  /** Idle keep-alive when the server does not say (ms). */
  readonly idleTimeoutMs?: number;
  /** Where the pool's connect timeout runs (default: the system clock). */
  readonly clock?: Clock;
}

export class Http1Transport implements Transport {
  readonly pool: Http1Pool;

  constructor(opts: Http1Options) {
    const clock = opts.clock;
    this.pool = new Http1Pool({
      origin: opts.origin,
      maxConnections: opts.poolSize,
      connectTimeoutMs: opts.connectTimeoutMs,
      ...(opts.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: opts.idleTimeoutMs }),
      ...(clock === undefined ? {} : { now: () => clock.now(), timer: (ms: number, fn: () => void) => clock.timer(ms, fn) }),
    });
  }

  send(r: UpstreamRequest, cancel: Cancel): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      if (cancel.aborted) reject(cancel.reason);
      else new Exchange(this.pool, r, cancel, resolve, reject).start();
    });
  }

  stats(): TransportStats {
    return { protocol: 'http/1.1', openConnections: this.pool.size, connectionsOpened: this.pool.opened };
  }

  close(): Promise<void> {
    this.pool.close();
    return Promise.resolve();
  }
}

/** Bodies up to this size are copied behind the head into one buffer (one write, one packet). */
const COALESCE_BYTES = 64 * 1024;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_TARGET = /[^\x21-\x7e\x80-\xff]/;
const METHODS_WITH_BODY: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);

/** The request line and header section, CRLF-terminated. Throws on a value that could split it. */
export function requestHead(method: string, path: string, headers: OutgoingHttpHeaders, framing: string): string {
  if (BAD_TARGET.test(path)) throw new ProxyError('bad_request', 'The request path contains characters that cannot be forwarded.');
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const name in headers) {
    if (name === 'content-length' || name === 'transfer-encoding') continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'object') {
      for (const v of value) head += headerLine(name, v);
    } else {
      head += headerLine(name, String(value));
    }
  }
  return head + framing + '\r\n';
}

function headerLine(name: string, value: string): string {
  if (BAD_VALUE.test(value)) throw new ProxyError('bad_request', `Header ${name} contains characters that cannot be forwarded.`);
  return `${name}: ${value}\r\n`;
}

/** The framing header for the body, or '' when the request has none. */
export function framingFor(method: string, body: RequestBody, headers: OutgoingHttpHeaders): string {
  if (body.kind === 'buffered') {
    const n = body.data.length;
    return n > 0 || METHODS_WITH_BODY.has(method) || headers['content-length'] !== undefined ? `content-length: ${n}\r\n` : '';
  }
  const declared = headers['content-length'];
  return declared !== undefined ? `content-length: ${String(declared)}\r\n` : 'transfer-encoding: chunked\r\n';
}

/**
 * One attempt: waits for a connection, writes the request, reads the response. It is the
 * UpstreamResponse once the head arrives (status, headers, body, abort).
 */
class Exchange implements PoolWaiter, ConnectionOwner, UpstreamResponse, FlowControl {
  status = 0;
  headers: IncomingHttpHeaders = {};
  body!: BodyChannel;
  private conn: Http1Connection | null = null;
  private keepAlive = false;
  private keepAliveHintMs: number | null = null;
  private answered = false;
  private finished = false;
  private requestSent = false;
  private upload: Writable | null = null;
  private offCancel: () => void;
  /** Cleared once handed to the socket, so a long answer does not keep a large prompt reachable. */
  private pending: UpstreamRequest | null;
  private readonly kept: boolean;

  constructor(
    private readonly pool: Http1Pool,
    r: UpstreamRequest,
    private readonly cancel: Cancel,
    private readonly resolve: (up: UpstreamResponse) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    this.pending = r;
    this.kept = r.body.kind === 'buffered';
    this.offCancel = cancel.onAbort(this.onCancel);
  }

  /** A streamed body cannot be sent again, so it never risks a reused connection the server may be closing. */
  get fresh(): boolean {
    return !this.kept;
  }

  start(): void {
    this.pool.acquire(this);
  }

  onPoolClosed(): void {
    if (!this.finished) this.fail(new UpstreamFailure('connect_error', 'the proxy is shutting down', { neverSent: true }));
  }

  onConnection(conn: Http1Connection): void {
    const r = this.pending;
    if (this.finished || r === null) {
      this.pool.release(conn, true, null); // cancelled while it was on its way
      return;
    }
    let head: string;
    try {
      head = requestHead(r.method, r.path, r.headers, framingFor(r.method, r.body, r.headers));
    } catch (err) {
      this.pool.release(conn, true, null); // nothing was sent on it
      this.fail(err);
      return;
    }
    this.conn = conn;
    this.pending = null;
    conn.begin(this, r.method === 'HEAD');
    const { socket } = conn;
    const body = r.body;
    if (body.kind === 'buffered') {
      const n = body.data.length;
      if (n === 0) socket.write(head, 'latin1');
      else if (n <= COALESCE_BYTES) {
        const headBytes = Buffer.byteLength(head, 'latin1');
        const out = Buffer.allocUnsafe(headBytes + n);
        out.write(head, 0, 'latin1');
        body.data.copy(out, headBytes);
        socket.write(out);
      } else {
        socket.cork();
        socket.write(head, 'latin1');
        socket.write(body.data);
        socket.uncork();
      }
      this.requestSent = true;
      return;
    }
    socket.write(head, 'latin1');
    // a streamed body is read from the client only once connected, so a failed connect
    // leaves it unread and the attempt replayable
    const chunked = r.headers['content-length'] === undefined;
    conn.whenConnected(() => this.streamBody(body, chunked));
  }

  private streamBody(body: RequestBody, chunked: boolean): void {
    const conn = this.conn;
    if (conn === null || this.finished) return;
    const socket = conn.socket;
    const upload = new Writable({
      // the socket's own buffer gives the backpressure: the next chunk waits for this one
      write: (chunk: Buffer, _enc, cb) => {
        if (!chunked) {
          socket.write(chunk, () => cb());
          return;
        }
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        socket.write('\r\n', 'latin1', () => cb());
        socket.uncork();
      },
      final: (cb) => {
        this.requestSent = true;
        if (chunked) socket.write('0\r\n\r\n', 'latin1', () => cb());
        else cb();
      },
    });
    // a 413/408 raised while the body streams (writeBody destroys with it) ends the attempt
    upload.on('error', (err) => {
      if (!this.answered) {
        this.detachConnection();
        this.fail(err);
      } else this.abort();
    });
    this.upload = upload;
    writeBody(body, upload);
  }

  onHead(head: ResponseHead): void {
    this.answered = true;
    this.offCancel();
    this.status = head.status;
    this.headers = head.headers;
    this.keepAlive = head.keepAlive;
    this.keepAliveHintMs = head.keepAliveTimeoutMs;
    this.body = new BodyChannel(this);
    this.resolve(this);
  }

  onBody(chunk: Buffer): void {
    this.body.data(chunk);
  }

  onComplete(clean: boolean): void {
    const conn = this.conn;
    this.conn = null;
    this.finished = true;
    if (conn !== null) {
      conn.socket.resume();
      // a request still being written when its answer ended cannot share the connection
      this.pool.release(conn, clean && this.keepAlive && this.requestSent, this.keepAliveHintMs);
    }
    if (this.upload !== null && !this.requestSent) this.upload.destroy();
    this.body.end();
  }

  onBroken(err: Error): void {
    const conn = this.conn;
    this.conn = null;
    if (this.finished) return;
    if (this.answered) {
      this.finished = true;
      this.body.broken();
      return;
    }
    if (err instanceof UpstreamFailure || err instanceof ProxyError) {
      this.fail(err);
      return;
    }
    const connected = conn?.connected ?? false;
    const outcome = classifySocketError(err, connected);
    // a reused keep-alive connection the peer had already closed, before any answer: resend
    // at once, but only with a kept body (a streamed one may be half read by now)
    const code = (err as NodeJS.ErrnoException).code;
    const stale = connected && conn !== null && conn.uses > 1 && !conn.parser.started && this.kept && (code === 'ECONNRESET' || code === 'EPIPE');
    this.fail(new UpstreamFailure(outcome, `${outcome}: ${err.message}`, { cause: err, neverSent: outcome === 'connect_error' || stale, staleConnection: stale }));
  }

  /** Backpressure from the body's reader. */
  pause(): void {
    this.conn?.socket.pause();
  }

  resume(): void {
    this.conn?.socket.resume();
  }

  /** Stop the upstream request now (the client left, or we gave up on it). */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.detachConnection();
    this.upload?.destroy();
    if (this.answered) this.body.broken();
  }

  private readonly onCancel = (): void => {
    if (this.finished) return;
    this.finished = true;
    this.pool.cancel(this);
    this.detachConnection();
    this.upload?.destroy();
    this.reject(this.cancel.reason);
  };

  /** Lets go of the connection, closing it: the request may be half sent. */
  private detachConnection(): void {
    const conn = this.conn;
    this.conn = null;
    conn?.destroy();
  }

  private fail(err: unknown): void {
    this.finished = true;
    this.offCancel();
    this.reject(err);
  }
}
