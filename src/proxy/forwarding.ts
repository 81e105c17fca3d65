/**
 * What the upstream is told about the client: one context for the header hygiene of both
 * a forwarded request and a WebSocket handshake (toUpstreamHeaders applies it).
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';
import type { ForwardContext } from '../http/headers.js';
import type { UpstreamTarget } from '../upstream/target.js';

/** What to do with client credentials toward the upstream, from the config. */
export function credentialPolicy(config: Config, keysOn: boolean): ForwardContext['credentials'] {
  if (config.upstreamApiKey !== null) return { authorization: `Bearer ${config.upstreamApiKey}` };
  return keysOn ? 'strip' : 'pass';
}

export function forwardContext(config: Config, target: UpstreamTarget, req: IncomingMessage, requestId: string, keysOn: boolean, http2: boolean): ForwardContext {
  return {
    // X-Forwarded-For gets the peer this proxy heard from (behind a trusted balancer, the
    // balancer), never the client address already taken from the chain: that would repeat it
    clientIp: req.socket.remoteAddress ?? 'unknown',
    trustProxy: config.trustProxy,
    requestId,
    upstreamHost: target.host,
    http2,
    credentials: credentialPolicy(config, keysOn),
  };
}
