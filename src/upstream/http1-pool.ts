/**
 * The keep-alive connections to one HTTP/1.1 upstream: at most `maxConnections`, idle ones
 * kept on a stack so the warmest is reused first and the cold ones age out, requests
 * beyond the cap waiting in order for the next free connection.
 *
 * An idle connection is reused only until a little before the server would close it
 * (RFC 9112 §9.3): its own `Keep-Alive: timeout=N` less a second when it says one, else
 * `idleTimeoutMs` (4 s, below the 5 s of uvicorn, which serves vLLM, and of most servers).
 * Reusing a socket the server is closing at that instant is the race every pooled client
 * has; the transport resends such a request once, and the margin makes it rare.
 * A connection's connect phase has its own timeout (CONNECT_TIMEOUT); what follows is
 * bounded by the request's own deadline.
 */
import net from 'node:net';
import tls from 'node:tls';
import { systemClock, type Clock } from '../clock.js';
import { Http1Connection } from './http1-connection.js';
import { upstreamTarget } from './target.js';
import { UpstreamFailure } from './transport.js';

export interface Http1PoolOptions {
  readonly origin: URL;
  readonly maxConnections: number;
  readonly connectTimeoutMs: number;
  /** How long an idle connection is kept when the server says nothing (ms; default 4000). */
  readonly idleTimeoutMs?: number;
  /** Monotonic ms, and the connect timeout's timer; injectable for tests. */
  readonly now?: Clock['now'];
  readonly timer?: Clock['timer'];
}

/** A request waiting for a connection. */
export interface PoolWaiter {
  /** Only a new connection will do (the request cannot be resent if a reused one is dead). */
  readonly fresh: boolean;
  onConnection(conn: Http1Connection): void;
  /** The pool was closed (shutdown): no connection will come. */
  onPoolClosed(): void;
}

const DEFAULT_IDLE_MS = 4000;
/** Longest a server's keep-alive hint is believed. */
const MAX_IDLE_MS = 600_000;
const HINT_MARGIN_MS = 1000;

export class Http1Pool {
  private readonly idle: Http1Connection[] = [];
  private readonly waiters: PoolWaiter[] = [];
  private readonly connectOptions: net.NetConnectOpts & tls.ConnectionOptions;
  private readonly tls: boolean;
  private readonly now: Clock['now'];
  private readonly timer: Clock['timer'];
  private readonly idleMs: number;
  /** Cancels the armed sweep; null while no connection is idle. */
  private sweeper: (() => void) | null = null;
  private tlsSession: Buffer | null = null;
  private closing = false;
  /** Connections open or opening. */
  size = 0;
  opened = 0;

  constructor(private readonly opts: Http1PoolOptions) {
    const { connectHost: host, port, tls } = upstreamTarget(opts.origin);
    this.tls = tls;
    this.connectOptions = { host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 };
    if (this.tls) {
      this.connectOptions.ALPNProtocols = ['http/1.1'];
      if (net.isIP(host) === 0) this.connectOptions.servername = host;
    }
    this.now = opts.now ?? systemClock.now;
    this.timer = opts.timer ?? systemClock.timer;
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  }

  /**
   * Gives `w` a connection now (a warm idle one, or a new one), or queues it for the next
   * free one. A waiter that wants a `fresh` connection (a streamed body, which cannot be
   * sent again if a reused connection turns out closed) never gets an idle one: at the cap,
   * it takes over the slot of the coldest idle connection.
   */
  acquire(w: PoolWaiter): void {
    if (this.closing) {
      w.onPoolClosed();
      return;
    }
    if (!w.fresh) {
      const now = this.now();
      for (let conn = this.idle.pop(); conn !== undefined; conn = this.idle.pop()) {
        if (!conn.usable) continue; // closing: its 'close' has not come yet
        if (now - conn.idleSince < conn.idleLimitMs) {
          w.onConnection(conn);
          return;
        }
        this.retire(conn); // past its keep-alive: the server may be closing it right now
      }
    }
    if (this.size >= this.opts.maxConnections && w.fresh && this.idle.length > 0) this.retire(this.idle.shift()!);
    if (this.size < this.opts.maxConnections) w.onConnection(this.connect());
    else this.waiters.push(w);
  }

  /** Takes a waiter out of the queue (its request was cancelled). */
  cancel(w: PoolWaiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  /** The owner is done with `conn`: keep it for the next request, or close it. */
  release(conn: Http1Connection, reusable: boolean, keepAliveHintMs: number | null): void {
    if (!reusable || !conn.usable || this.closing) {
      this.retire(conn);
      this.serveWaiter();
      return;
    }
    const next = this.waiters.shift();
    if (next !== undefined) {
      if (!next.fresh) {
        next.onConnection(conn);
        return;
      }
      this.retire(conn);
      next.onConnection(this.connect());
      return;
    }
    conn.idleSince = this.now();
    conn.idleLimitMs = keepAliveHintMs === null ? this.idleMs : Math.min(MAX_IDLE_MS, keepAliveHintMs - HINT_MARGIN_MS);
    this.idle.push(conn);
    this.sweeper ??= this.startSweeper();
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Closes the idle connections; waiting and later requests are told the pool is closed. */
  close(): void {
    this.closing = true;
    this.sweeper?.();
    for (const conn of this.idle.splice(0)) this.retire(conn);
    for (const w of this.waiters.splice(0)) w.onPoolClosed();
  }

  private connect(): Http1Connection {
    let socket: net.Socket;
    if (this.tls) {
      // resume the last TLS session: a reconnect skips the full handshake, as https.Agent does
      const tlsSocket = tls.connect(this.tlsSession === null ? this.connectOptions : { ...this.connectOptions, session: this.tlsSession });
      tlsSocket.on('session', (session: Buffer) => (this.tlsSession = session));
      socket = tlsSocket;
    } else {
      socket = net.connect(this.connectOptions);
    }
    const conn = new Http1Connection(socket, this.onClosed);
    this.size++;
    this.opened++;
    const cancelTimer = this.timer(this.opts.connectTimeoutMs, () => {
      conn.fail(new UpstreamFailure('connect_error', `connect timeout after ${this.opts.connectTimeoutMs} ms`, { neverSent: true }));
    });
    socket.once(this.tls ? 'secureConnect' : 'connect', () => {
      cancelTimer();
      conn.markConnected();
    });
    socket.once('close', cancelTimer);
    return conn;
  }

  /** Closes `conn` and frees its slot now (its 'close' event comes later). */
  private retire(conn: Http1Connection): void {
    if (conn.counted) {
      conn.counted = false;
      this.size--;
    }
    const i = this.idle.lastIndexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    conn.destroy();
  }

  /** A slot is free: the first waiter gets a new connection in it. */
  private serveWaiter(): void {
    if (this.closing || this.size >= this.opts.maxConnections) return;
    const next = this.waiters.shift();
    if (next !== undefined) next.onConnection(this.connect());
  }

  private readonly onClosed = (conn: Http1Connection): void => {
    const counted = conn.counted;
    this.retire(conn);
    if (counted) this.serveWaiter();
  };

  /** Closes idle connections past their time, so they are not kept open for nothing (on the injected timer). */
  private startSweeper(): () => void {
    return this.timer(Math.max(250, this.idleMs / 2), this.sweep);
  }

  private readonly sweep = (): void => {
    this.sweeper = null;
    const now = this.now();
    for (const conn of this.idle.filter((c) => now - c.idleSince >= c.idleLimitMs)) this.retire(conn);
    if (this.idle.length > 0) this.sweeper = this.startSweeper();
  };
}
