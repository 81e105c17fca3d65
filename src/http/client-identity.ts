/**
 * Who is asking, for the per-client limiter. A bearer token (or Azure-style `api-key`) is
 * the best key: many users behind one NAT stay apart. It is hashed at once, so the limiter
 * table never holds a secret. Without a key, the peer address; `X-Forwarded-For` only when
 * TRUST_PROXY says a balancer we trust sets it, and then its last entry (the one that
 * balancer appended; the entries before it are whatever the client claimed).
 */
import { createHash } from 'node:crypto';
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

export function clientKey(req: IncomingMessage, address: string): string {
  const auth = req.headers.authorization;
  let token: string | undefined;
  if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) token = auth.replace(/^bearer\s+/i, '').trim();
  else if (typeof req.headers['api-key'] === 'string') token = req.headers['api-key'];
  if (token !== undefined && token !== '') return `key:${createHash('sha256').update(token).digest('base64url').slice(0, 22)}`;
  return `ip:${address}`;
}
