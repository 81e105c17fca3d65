/**
 * One keep-alive socket to the upstream speaking HTTP/1.1: the socket, its response parser,
 * and the exchange that owns it right now (none while it waits in the pool). Its socket
 * listeners are installed once for the connection's life and dispatch to the current
 * owner, so taking a connection from the pool and giving it back costs two assignments
 * instead of the listener churn of http.Agent. Every way the socket can fail ends here, in
 * `fail`, which reports it to the owner at most once.
 *
 * The body slices one socket read yields (a chunked SSE stream read under load carries
 * several events, one HTTP chunk each) reach the owner as one buffer, once the read is
 * parsed: the relay then pays one client write, one usage scan and one idle-clock read per
 * read instead of per event. Nothing waits for a later read: a read's bytes go on as soon
 * as it is parsed, before the response's completion or the connection's failure is told.
 */
import type { Socket } from 'node:net';
import { ResponseParser, type ResponseHead, type ResponseSink } from './http1-response-parser.js';

/** The exchange using a connection: hears its response and its failure. */
export interface ConnectionOwner {
  onHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  /** The response is complete; the owner decides whether the connection is reused. */
  onComplete(clean: boolean): void;
  /** The connection failed while this owner held it (it is already destroyed). */
  onBroken(err: Error): void;
}

/** Raised when the peer closes the connection before its response is complete. */
export class PeerClosed extends Error {
  readonly code = 'ECONNRESET';
  constructor(what: string) {
    super(`the upstream closed the connection ${what}`);
    this.name = 'PeerClosed';
  }
}

export class Http1Connection implements ResponseSink {
  readonly parser: ResponseParser = new ResponseParser(this);
  owner: ConnectionOwner | null = null;
  /** TCP (and TLS) established. */
  connected = false;
  /** Exchanges begun on this connection, the current one included. */
  uses = 0;
  /** When it last went back to the pool (ms, pool clock), and how long it may stay there. */
  idleSince = 0;
  idleLimitMs = 0;
  /** Its socket emitted 'close'. */
  closed = false;
  private connectedCallbacks: (() => void)[] | null = null;
  /** Still counted in its pool's size (cleared when the pool gives up its slot). */
  counted = true;
  /** Body slices of the read being parsed, not yet handed to the owner. */
  private readonly gathered: Buffer[] = [];
  private gatheredBytes = 0;

  constructor(
    readonly socket: Socket,
    private readonly onClosed: (conn: Http1Connection) => void,
  ) {
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err: Error) => this.fail(err));
    socket.on('close', () => this.onClose());
  }

  /** Hands the connection to `owner` for one request (`isHead`: a HEAD request, no body). */
  begin(owner: ConnectionOwner, isHead: boolean): void {
    this.owner = owner;
    this.uses++;
    this.parser.expect(isHead);
  }

  /** Neither closed nor on its way to closing: a request may be written on it. */
  get usable(): boolean {
    return !this.socket.destroyed;
  }

  /** Runs `fn` once the connection is established (now, if it is). */
  whenConnected(fn: () => void): void {
    if (this.connected) fn();
    else (this.connectedCallbacks ??= []).push(fn);
  }

  /** Called by the pool when TCP (and TLS) is up. */
  markConnected(): void {
    this.connected = true;
    const callbacks = this.connectedCallbacks;
    this.connectedCallbacks = null;
    if (callbacks !== null) for (const fn of callbacks) fn();
  }

  /** Closes the connection; its owner, if any, is told with `err`. */
  fail(err: Error): void {
    const owner = this.owner;
    this.owner = null;
    this.parser.stop();
    this.gathered.length = 0;
    if (!this.socket.destroyed) this.socket.destroy();
    owner?.onBroken(err);
  }

  /** Closes the connection without telling its owner (the owner asked). */
  destroy(): void {
    this.owner = null;
    this.parser.stop();
    this.gathered.length = 0;
    if (!this.socket.destroyed) this.socket.destroy();
  }

  onHead(head: ResponseHead): void {
    this.owner?.onHead(head);
  }

  onBody(chunk: Buffer): void {
    this.gathered.push(chunk);
    this.gatheredBytes += chunk.length;
  }

  onComplete(clean: boolean): void {
    this.deliver();
    const owner = this.owner;
    this.owner = null;
    owner?.onComplete(clean);
  }

  private onData(data: Buffer): void {
    if (this.owner === null) {
      this.destroy(); // bytes while idle: the peer is confused, never reuse this
      return;
    }
    try {
      this.parser.execute(data);
    } catch (err) {
      this.deliver(); // what was sound before the bad bytes goes on, then the failure
      this.fail(err as Error);
      return;
    }
    this.deliver();
  }

  /** Hands the body slices gathered from this read to the owner, as one buffer. */
  private deliver(): void {
    const n = this.gathered.length;
    if (n === 0) return;
    const body = n === 1 ? this.gathered[0]! : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered.length = 0;
    this.gatheredBytes = 0;
    this.owner?.onBody(body);
  }

  private onEnd(): void {
    if (this.owner === null) {
      this.destroy();
      return;
    }
    // a body framed by the close completes here; anything else under way was cut short
    if (!this.parser.finish()) this.fail(this.closedEarly());
    else this.destroy();
  }

  private onClose(): void {
    this.closed = true;
    if (this.owner !== null) this.fail(this.closedEarly());
    this.onClosed(this);
  }

  private closedEarly(): PeerClosed {
    return new PeerClosed(this.parser.started ? 'in the middle of its response' : 'before answering');
  }
}
