/**
 * WebSocket endpoints (`/v1/realtime`): an `Upgrade: websocket` request the handler has
 * admitted is tunnelled. The proxy opens its own connection to the upstream, sends the
 * handshake with the same header hygiene as any forwarded request (toUpstreamHeaders:
 * hop-by-hop fields dropped, X-Forwarded-* by TRUST_PROXY, credentials by policy, Host set to
 * the upstream) plus `Connection: Upgrade`, and from then on copies bytes both ways: the
 * upstream's 101 (or its refusal) and every frame pass unchanged until either side closes,
 * which closes the other. Always HTTP/1.1: RFC 8441 WebSockets over h2 are rare among LLM
 * servers.
 *
 * The tunnel reports and the handler answers: the upstream's status (read from the first
 * line it sends) goes to `onAnswer` for the breaker; a failure before the upstream sent
 * anything leaves the client socket open so the handler can write the error on it. The
 * request's lifetime ends the tunnel (client gone, TIMEOUT before the handshake answer,
 * shutdown). The connect timeout runs on the injected clock.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Lifetime } from '../proxy/lifetime.js';
import { requestHead } from './http1-transport.js';
import type { UpstreamTarget } from './target.js';

export interface TunnelOptions {
  readonly target: UpstreamTarget;
  /** Path and query on the upstream (its base path applied). */
  readonly path: string;
  /** The forwarded headers (toUpstreamHeaders), without the upgrade pair. */
  readonly headers: OutgoingHttpHeaders;
  readonly connectTimeoutMs: number;
  readonly clock: Clock;
  readonly life: Lifetime;
  /** Told once, when the upstream's status line arrived (101 when it accepted). */
  readonly onAnswer: (status: number) => void;
}

export interface TunnelResult {
  /** The upstream's status for the handshake; null when it sent nothing (then the client socket is still open). */
  readonly status: number | null;
  /** Why it sent nothing: it could not be reached, or it closed first (with `message`). */
  readonly failure: 'connect_error' | 'reset';
  readonly message: string;
  /** Bytes to the upstream (the handshake included) and from it. */
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** The raw HTTP/1.1 handshake sent upstream. */
export function handshakeFor(req: IncomingMessage, o: Pick<TunnelOptions, 'path' | 'headers'>): string {
  return requestHead(req.method ?? 'GET', o.path, { ...o.headers, connection: 'Upgrade', upgrade: String(req.headers.upgrade) }, '');
}

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/;
/** Bytes read before the status line must have ended. */
const MAX_STATUS_LINE = 1024;

export function tunnelWebSocket(req: IncomingMessage, client: Duplex, head: Buffer, o: TunnelOptions): Promise<TunnelResult> {
  const { target } = o;
  const upstream = target.tls
    ? tls.connect({ host: target.connectHost, port: target.port, ...(net.isIP(target.connectHost) === 0 ? { servername: target.connectHost } : {}), ALPNProtocols: ['http/1.1'] })
    : net.connect({ host: target.connectHost, port: target.port });
  return new Promise((resolve) => {
    let status: number | null = null;
    let statusLine = '';
    let ended = false;
    const end = (failure: TunnelResult['failure'], message: string): void => {
      if (ended) return;
      ended = true;
      stopConnectTimer();
      offEnded();
      upstream.destroy();
      // the handler writes the error on a client that got nothing yet
      if (status !== null) client.destroy();
      resolve({ status, failure, message, bytesIn: upstream.bytesWritten, bytesOut: upstream.bytesRead });
    };
    const stopConnectTimer = o.clock.timer(o.connectTimeoutMs, () => end('connect_error', `connect timeout after ${o.connectTimeoutMs} ms`));
    const offEnded = o.life.cancel.onAbort(() => end('reset', 'the request ended'));
    const readStatus = (chunk: Buffer): void => {
      statusLine += chunk.toString('latin1', 0, Math.min(chunk.length, MAX_STATUS_LINE));
      const m = STATUS_LINE.exec(statusLine);
      if (m === null && statusLine.length < MAX_STATUS_LINE && !statusLine.includes('\n')) return;
      upstream.off('data', readStatus);
      status = m === null ? 502 : Number(m[1]);
      o.onAnswer(status);
    };
    let connected = false;
    upstream.once(target.tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      stopConnectTimer();
      upstream.setNoDelay(true);
      upstream.on('data', readStatus);
      upstream.write(handshakeFor(req, o));
      if (head.length > 0) upstream.write(head);
      // either side closing ends both (end, below), and an upstream that closes before
      // answering must leave the client open for the handler's error
      upstream.pipe(client, { end: false });
      client.pipe(upstream, { end: false });
    });
    upstream.on('error', (err) => end(connected ? 'reset' : 'connect_error', err.message));
    upstream.on('close', () => end('reset', 'the upstream closed the connection before answering'));
    client.on('close', () => end('reset', 'the client closed the connection'));
    client.on('error', () => end('reset', 'the client connection failed'));
  });
}
