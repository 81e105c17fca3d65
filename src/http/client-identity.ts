/**
 * Who is asking, for the per-client limiter. With PROXY_API_KEYS on, the id of the key the
 * client proved it holds. Otherwise a presented key is still the best tell (many users
 * behind one NAT stay apart); it is hashed at once, so the limiter table never holds a
 * secret. Without a key, the peer address: `X-Forwarded-For` only when TRUST_PROXY says a
 * balancer we trust sets it, and then its last entry (the one that balancer appended; the
 * entries before it are whatever the client claimed).
 */
import { sha256Base64url } from '../security/digest.js';
import type { IncomingMessage } from 'node:http';
import { presentedKey } from './credentials.js';

export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (!trustProxy) return peer;
  const xff = req.headers['x-forwarded-for'];
  const chain = Array.isArray(xff) ? xff.join(',') : xff;
  if (chain === undefined) return peer;
  const last = chain.slice(chain.lastIndexOf(',') + 1).trim();
  return last !== '' && last.length <= 64 ? last : peer;
}

export function clientKey(req: IncomingMessage, address: string, keyId: string | null): string {
  if (keyId !== null) return `id:${keyId}`;
  const token = presentedKey(req.headers);
  if (token !== undefined) return `key:${sha256Base64url(token).slice(0, 22)}`;
  return `ip:${address}`;
}
