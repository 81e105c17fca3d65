/**
 * The credential a request presents: `Authorization: Bearer <key>` as the OpenAI SDKs send
 * it, or `api-key: <key>` as Azure-style clients do. One reader, so the limiter, the key
 * check and the admin check can never disagree on what was presented.
 */
import type { IncomingHttpHeaders } from 'node:http';

const BEARER = /^bearer[ \t]+/i;

export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string' && BEARER.test(auth)) {
    const token = auth.replace(BEARER, '').trim();
    return token === '' ? undefined : token;
  }
  const apiKey = headers['api-key'];
  return typeof apiKey === 'string' && apiKey.trim() !== '' ? apiKey.trim() : undefined;
}
