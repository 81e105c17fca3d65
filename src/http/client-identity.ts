/**
 * Who is asking, for the per-client limiter. With client keys on, the id of the key the
 * client proved it holds. Without them, the client address, never a bearer token the proxy
 * cannot verify: a client sending a fresh random token on each request would otherwise get
 * a fresh bucket each time. The address is the peer's, or `X-Forwarded-For` only when
 * TRUST_PROXY says a balancer we trust sets it, and then its last entry (the one that
 * balancer appended; the entries before it are whatever the client claimed).
 */
import type { IncomingMessage } from 'node:http';

export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (!trustProxy) return peer;
  const xff = req.headers['x-forwarded-for'];
  const chain = Array.isArray(xff) ? xff.join(',') : xff;
  if (chain === undefined) return peer;
  const last = chain.slice(chain.lastIndexOf(',') + 1).trim();
  return last !== '' && last.length <= 64 ? last : peer;
}

export function clientKey(address: string, keyId: string | null): string {
  return keyId !== null ? `id:${keyId}` : `ip:${address}`;
}
