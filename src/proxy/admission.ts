/**
 * Whether a client may go on, decided before its body is read: its key (when keys are
 * required), then its bucket. Each refusal is a ProxyError with the headers it needs; an
 * admitted request carries its rate-limit headers (every answer shows them). Whether an
 * upstream can take it is the upstreams' business (each has its own breaker).
 */
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.js';
import { clientKey } from '../http/client-identity.js';
import { presentedKey } from '../http/credentials.js';
import { formatDuration } from '../http/duration.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import type { ApiKeys } from '../security/api-keys.js';

export interface AdmissionParts {
  readonly apiKeys: () => ApiKeys | null;
  readonly limiter: RateLimiter | null;
  readonly rateLimitWindowSec: number;
}

export type Admission =
  | { readonly ok: true; readonly keysOn: boolean; readonly rateHeaders: Record<string, string> | undefined }
  | { readonly ok: false; readonly error: ProxyError; readonly rateHeaders: Record<string, string> | undefined };

export function admit(p: AdmissionParts, req: IncomingMessage, client: string, now: number): Admission {
  const keys = p.apiKeys();
  let keyId: string | null = null;
  if (keys !== null) {
    const presented = presentedKey(req.headers);
    keyId = keys.match(presented);
    if (keyId === null) {
      const message = presented === undefined ? 'You did not provide an API key. Send it as "Authorization: Bearer <key>".' : 'Incorrect API key provided.';
      return { ok: false, error: new ProxyError('unauthorized', message), rateHeaders: undefined };
    }
  }
  let rateHeaders: Record<string, string> | undefined;
  if (p.limiter !== null) {
    const d = p.limiter.check(clientKey(client, keyId), now);
    rateHeaders = {
      'x-ratelimit-limit-requests': String(d.limit),
      'x-ratelimit-remaining-requests': String(d.remaining),
      'x-ratelimit-reset-requests': formatDuration(d.resetMs),
    };
    if (!d.allowed) {
      const message = `Rate limit reached for this client: ${d.limit} requests per ${p.rateLimitWindowSec}s. Please try again in ${formatDuration(d.retryAfterMs)}.`;
      return { ok: false, error: new ProxyError('rate_limited', message, { retryAfterSec: d.retryAfterMs / 1000 }), rateHeaders };
    }
  }
  return { ok: true, keysOn: keys !== null, rateHeaders };
}
