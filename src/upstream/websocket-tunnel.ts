/**
 * WebSocket endpoints (`/v1/realtime`): an `Upgrade: websocket` request is tunnelled. The
 * proxy opens its own connection to the upstream, sends the client's handshake on (Host set
 * to the upstream, X-Forwarded-For and x-request-id added), and from then on copies bytes
 * both ways: the upstream's 101 (or its refusal) and every frame pass unchanged until either
 * side closes, which closes the other. Always HTTP/1.1: RFC 8441 WebSockets over h2 are rare
 * among LLM servers.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { HOP_BY_HOP, connectionTokens, type ForwardContext } from '../http/headers.js';
import { rawError } from '../http/raw-error.js';

export interface TunnelOptions {
  readonly origin: URL;
  readonly path: string;
  readonly requestId: string;
  readonly clientIp: string;
  readonly connectTimeoutMs: number;
  /** As for HTTP requests: pass the client's credentials, strip them, or replace them. */
  readonly credentials: ForwardContext['credentials'];
  /** Told once when the tunnel ends, with the bytes that went each way. */
  readonly onClose?: (outcome: 'closed' | 'connect_error', bytesIn: number, bytesOut: number) => void;
}

/** The raw HTTP/1.1 handshake sent upstream. */
export function handshakeFor(req: IncomingMessage, o: TunnelOptions): string {
  const named = connectionTokens(req.headers.connection);
  let out = `${req.method ?? 'GET'} ${o.path} HTTP/1.1\r\nhost: ${o.origin.host}\r\nconnection: Upgrade\r\nupgrade: ${String(req.headers.upgrade)}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'host' || name === 'x-forwarded-for' || name === 'x-request-id' || HOP_BY_HOP.has(name) || (named !== null && named.has(name) && name !== 'upgrade')) continue;
    if ((name === 'authorization' || name === 'api-key') && o.credentials !== 'pass') continue;
    out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  if (typeof o.credentials === 'object') out += `authorization: ${o.credentials.authorization}\r\n`;
  return `${out}x-forwarded-for: ${o.clientIp}\r\nx-request-id: ${o.requestId}\r\n\r\n`;
}

export function tunnelWebSocket(req: IncomingMessage, client: Duplex, head: Buffer, o: TunnelOptions): void {
  const port = Number(o.origin.port) || (o.origin.protocol === 'https:' ? 443 : 80);
  const upstream = o.origin.protocol === 'https:' ? tls.connect({ host: o.origin.hostname, port, servername: o.origin.hostname, ALPNProtocols: ['http/1.1'] }) : net.connect({ host: o.origin.hostname, port });
  let connected = false;
  let ended = false;
  const end = (outcome: 'closed' | 'connect_error'): void => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    upstream.destroy();
    client.destroy();
    o.onClose?.(outcome, upstream.bytesWritten, upstream.bytesRead);
  };
  const timer = setTimeout(() => refuse('connect timeout'), o.connectTimeoutMs);
  timer.unref();
  const refuse = (why: string): void => {
    if (connected || ended) return end('closed');
    rawError(client, 503, `The upstream could not be reached (${why}).`, 'service_unavailable_error', 'upstream_unreachable', { 'x-request-id': o.requestId, 'x-should-retry': 'false' });
    ended = true;
    clearTimeout(timer);
    upstream.destroy();
    o.onClose?.('connect_error', 0, 0);
  };
  upstream.once(o.origin.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
    connected = true;
    clearTimeout(timer);
    upstream.setNoDelay(true);
    upstream.write(handshakeFor(req, o));
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', (err) => refuse(err.message));
  client.on('error', () => end('closed'));
  upstream.on('close', () => end('closed'));
  client.on('close', () => end('closed'));
}
