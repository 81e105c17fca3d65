/**
 * Header hygiene for both directions, in one tested place.
 * RFC 9110 §7.6.1: a proxy removes the hop-by-hop fields (connection, keep-alive, te,
 * transfer-encoding, upgrade, proxy-*) and every field named in `Connection`. Note the
 * field is `Trailer` (RFC 9110 §6.6.2), not the `Trailers` typo some proxies strip.
 * HTTP/2 (RFC 9113 §8.2.2) forbids connection-specific fields outright, and pseudo-headers
 * (`:status`, ...) never go back to an HTTP/1.1 client.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The lower-case names listed in a `Connection` header value (also hop-by-hop). */
export function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  // the common values name only headers that are hop-by-hop anyway: no set to build
  if (value === undefined || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return null;
  const joined = Array.isArray(value) ? value.join(',') : value;
  const out = new Set<string>();
  for (const t of joined.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '') out.add(name);
  }
  return out;
}

export interface ForwardContext {
  /** The peer address of the client connection. */
  readonly clientIp: string;
  /** Trust the client's X-Forwarded-* (we sit behind a trusted balancer). */
  readonly trustProxy: boolean;
  readonly requestId: string;
  /** `host[:port]` of the upstream, for the Host / :authority header. */
  readonly upstreamHost: string;
  readonly http2: boolean;
  /**
   * The client's credentials toward the upstream: `pass` them on (an open proxy in front
   * of an upstream that checks keys itself), `strip` them (they were the proxy's own keys),
   * or a value that replaces them (UPSTREAM_API_KEY, as `Bearer …`).
   */
  readonly credentials: 'pass' | 'strip' | { readonly authorization: string };
}

/**
 * The headers to send upstream. `x-forwarded-for` gets the client address appended to a
 * trusted chain, or replaces an untrusted one (a client must not forge its own origin).
 */
export function toUpstreamHeaders(incoming: IncomingHttpHeaders, ctx: ForwardContext): OutgoingHttpHeaders {
  const named = connectionTokens(incoming.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || (named !== null && named.has(name))) continue;
    if (name === 'host' || name === 'x-forwarded-for' || name === 'x-forwarded-proto' || name === 'x-forwarded-host' || name === 'x-request-id') continue;
    if ((name === 'authorization' || name === 'api-key') && ctx.credentials !== 'pass') continue;
    out[name] = incoming[name];
  }
  if (typeof ctx.credentials === 'object') out['authorization'] = ctx.credentials.authorization;
  const priorFor = incoming['x-forwarded-for'];
  out['x-forwarded-for'] = ctx.trustProxy && priorFor ? `${Array.isArray(priorFor) ? priorFor.join(', ') : priorFor}, ${ctx.clientIp}` : ctx.clientIp;
  const priorProto = incoming['x-forwarded-proto'];
  out['x-forwarded-proto'] = ctx.trustProxy && typeof priorProto === 'string' && priorProto !== '' ? priorProto : 'http';
  const priorHost = incoming['x-forwarded-host'];
  const host = ctx.trustProxy && typeof priorHost === 'string' && priorHost !== '' ? priorHost : incoming.host;
  if (host !== undefined) out['x-forwarded-host'] = host;
  out['x-request-id'] = ctx.requestId;
  if (!ctx.http2) out['host'] = ctx.upstreamHost;
  return out;
}

/**
 * The upstream answer's headers as they go to the client: hop-by-hop and pseudo-headers
 * dropped, everything else untouched, and our request id set. An upstream id that differs
 * from ours is kept as `x-upstream-request-id` so both can be correlated.
 */
export function toClientHeaders(upstream: IncomingHttpHeaders, requestId: string): OutgoingHttpHeaders {
  const named = connectionTokens(upstream.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name) || (named !== null && named.has(name))) continue;
    out[name] = upstream[name];
  }
  const theirs = upstream['x-request-id'];
  if (typeof theirs === 'string' && theirs !== requestId) out['x-upstream-request-id'] = theirs;
  out['x-request-id'] = requestId;
  return out;
}
