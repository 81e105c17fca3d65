/**
 * Whether a client may go on, decided before its body is read: its key (when keys are
 * required), then its limits (a request from its bucket, a place among its requests in
 * flight). Each refusal is a ProxyError with the headers it needs; an admitted request
 * carries its ticket on the client's limits (its token estimate is reserved once the body is
 * known, and everything is settled when it ends) and its rate-limit headers, which every
 * answer shows. Whether an upstream can take it is the upstreams' business.
 */
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.js';
import { clientKey } from '../http/client-identity.js';
import { presentedKey } from '../http/credentials.js';
import { formatDuration } from '../http/duration.js';
import type { BucketView, LimitReason, LimitStore, LimitTicket } from '../resilience/limit-store.js';
import type { ApiKeys } from '../security/api-keys.js';
import type { ClientPolicies } from './client-policies.js';
import type { RateHeaders } from './outcomes.js';

export interface AdmissionParts {
  readonly apiKeys: () => ApiKeys | null;
  readonly limits: LimitStore;
  readonly policies: ClientPolicies;
}

export type Admission =
  | { readonly ok: true; readonly keysOn: boolean; readonly keyId: string | null; readonly client: LimitTicket; readonly rateHeaders: RateHeaders }
  | { readonly ok: false; readonly error: ProxyError; readonly rateHeaders: RateHeaders; readonly limited: LimitReason | null; readonly keyId: string | null };

export async function admit(p: AdmissionParts, req: IncomingMessage, client: string): Promise<Admission> {
  const keys = p.apiKeys();
  let keyId: string | null = null;
  if (keys !== null) {
    const presented = presentedKey(req.headers);
    keyId = keys.match(presented);
    if (keyId === null) {
      const message = presented === undefined ? 'You did not provide an API key. Send it as "Authorization: Bearer <key>".' : 'Incorrect API key provided.';
      return { ok: false, error: new ProxyError('unauthorized', message), rateHeaders: undefined, limited: null, keyId: null };
    }
  }
  const policy = p.policies.for(keyId);
  const e = await p.limits.enter(clientKey(client, keyId), policy);
  const rateHeaders = limitHeaders(e.requests, e.tokens);
  if (e.ok) return { ok: true, keysOn: keys !== null, keyId, client: e.ticket, rateHeaders };
  const wait = formatDuration(e.retryAfterMs);
  const retryAfterSec = e.retryAfterMs / 1000;
  const error =
    e.reason === 'parallel'
      ? new ProxyError('concurrency_limited', `Too many requests in flight for this client: at most ${policy.maxParallel} at once. Please try again when one has finished.`, { retryAfterSec })
      : new ProxyError('rate_limited', `Rate limit reached for this client: ${policy.requests!.capacity} requests per ${policy.requests!.windowSec}s. Please try again in ${wait}.`, { retryAfterSec });
  return { ok: false, error, rateHeaders, limited: e.reason, keyId };
}

/** Refusal when the token estimate does not fit the client's tokens per minute. */
export function tokensRefused(tokens: BucketView, estimate: number, retryAfterMs: number): ProxyError {
  return new ProxyError('tokens_limited', `Rate limit reached for this client: ${tokens.limit} tokens per minute, this request needs about ${estimate}. Please try again in ${formatDuration(retryAfterMs)}.`, { retryAfterSec: retryAfterMs / 1000 });
}

/** `x-ratelimit-*` headers, as OpenAI sends them: for requests, and for tokens while a token limit applies. */
export function limitHeaders(requests: BucketView | null, tokens: BucketView | null): RateHeaders {
  if (requests === null && tokens === null) return undefined;
  const h: Record<string, string> = {};
  if (requests !== null) {
    h['x-ratelimit-limit-requests'] = String(requests.limit);
    h['x-ratelimit-remaining-requests'] = String(requests.remaining);
    h['x-ratelimit-reset-requests'] = formatDuration(requests.resetMs);
  }
  if (tokens !== null) {
    h['x-ratelimit-limit-tokens'] = String(tokens.limit);
    h['x-ratelimit-remaining-tokens'] = String(tokens.remaining);
    h['x-ratelimit-reset-tokens'] = formatDuration(tokens.resetMs);
  }
  return h;
}
